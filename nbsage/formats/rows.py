"""Rows as the formats and their callers hold them: the `Table` a reader returns, and turning what
users hold (DataFrames, NumPy arrays, scipy.sparse matrices, label-first or not) into rows and back.

Shared by every Format; pandas and scipy are imported only by the functions that need them, so
that `nbsage.formats` stays light to import.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

from nbsage.errors import DataError


@dataclass
class Table:
    """Labelled rows: features (n x d, dense float32 ndarray or CSR), labels (n,), weights (n,) or None.

    Unpacks as `(features, labels)`, so a batch reads `for x, y in fmt.iter_batches(files)`.
    Image formats hold a list of images as features and a list of annotations as labels.
    """

    features: Any
    labels: Any
    weights: Any = None

    @property
    def num_rows(self) -> int:
        return self.features.shape[0] if hasattr(self.features, "shape") else len(self.features)

    @property
    def num_features(self) -> int:
        return self.features.shape[1]

    def __iter__(self):
        yield self.features
        yield self.labels


def as_rows(obj, what: str = "data"):
    """(matrix, column names or None): a dense float32 ndarray or a CSR matrix from what users hold.

    DataFrames must be numeric; a non-numeric column is named in the error.
    """
    if hasattr(obj, "tocsr") and hasattr(obj, "nnz"):
        return obj.tocsr(), None
    import numpy as np
    names = None
    if hasattr(obj, "dtypes") and hasattr(obj, "columns"):  # a pandas DataFrame
        from pandas.api.types import is_bool_dtype, is_numeric_dtype
        names = [str(c) for c in obj.columns]
        for name, dtype in obj.dtypes.items():
            if not (is_numeric_dtype(dtype) or is_bool_dtype(dtype)):
                raise DataError(f"{what}: column {name!r} has dtype {dtype}, which is not numeric; "
                                "encode it as numbers first")
        obj = obj.to_numpy(dtype=np.float32, na_value=np.nan)
    arr = np.asarray(obj)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{what}: an array of {arr.dtype} values is not numeric")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise DataError(f"{what}: rows need a 2-D array, got shape {arr.shape}")
    return arr, names


def check_labels(labels, rows: int):
    """labels as a 1-D float32 array with one label per row (or None)."""
    if labels is None:
        return None
    import numpy as np
    if hasattr(labels, "toarray"):
        labels = labels.toarray()
    if hasattr(labels, "to_numpy"):
        labels = labels.to_numpy()
    labels = np.asarray(labels)
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.ravel()
    if labels.ndim != 1 or labels.shape[0] != rows:
        raise DataError(f"labels must be 1-D with one label per row ({rows}), got shape {labels.shape}")
    return labels


def describe_files(files) -> str:
    """The files of a channel, for an error message."""
    return ", ".join(map(str, files)) if files else "the channel has no files"


def _stack(parts: list[Table]) -> Table:
    if len(parts) == 1:
        return parts[0]
    import numpy as np
    weights = None
    if any(hasattr(p.features, "tocsr") for p in parts):
        import scipy.sparse as sp
        width = max(p.features.shape[1] for p in parts)
        features = sp.vstack([sp.csr_matrix(p.features, shape=(p.features.shape[0], width))
                              if hasattr(p.features, "tocsr") else sp.csr_matrix(p.features) for p in parts],
                             format="csr")
    else:
        features = np.concatenate([p.features for p in parts])
    labels = None if parts[0].labels is None else np.concatenate([p.labels for p in parts])
    if any(p.weights is not None for p in parts):
        weights = np.concatenate([p.weights if p.weights is not None else np.ones(p.num_rows, np.float32)
                                  for p in parts])
    return Table(features, labels, weights)


def _concat_records(parts: list[Table]) -> Table:
    features, labels = [], []
    for p in parts:
        features.extend(p.features)
        labels.extend(p.labels)
    return Table(features, labels)


def _take(table: Table, start: int, stop: int) -> Table:
    return Table(table.features[start:stop], None if table.labels is None else table.labels[start:stop],
                 None if table.weights is None else table.weights[start:stop])


def _rebatch(chunks: Iterator[Table], batch_rows: int) -> Iterator[Table]:
    """Chunks of any size -> Tables of exactly batch_rows rows (the last may be shorter)."""
    pending: list[Table] = []
    count = 0
    for chunk in chunks:
        n = chunk.num_rows
        if not pending and n == batch_rows:
            yield chunk
            continue
        start = 0
        while start < n:
            take = min(batch_rows - count, n - start)
            pending.append(chunk if (start == 0 and take == n) else _take(chunk, start, start + take))
            count += take
            start += take
            if count == batch_rows:
                yield _stack(pending)
                pending, count = [], 0
    if pending:
        yield _stack(pending)


def source_name(path_or_file) -> str:
    """How an error names what was read: the path, or the stream's name."""
    if isinstance(path_or_file, (str, os.PathLike)):
        return str(path_or_file)
    return getattr(path_or_file, "name", "stream")


def label_first(data, what: str, labelled: bool = True):
    """(features, labels) of label-first data in memory: dense float ndarray or CSR; labels None if unlabelled."""
    import numpy as np
    if hasattr(data, "tocsr"):
        matrix = data.tocsr()
    else:
        if hasattr(data, "to_numpy"):
            data = data.to_numpy()
        try:
            matrix = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{what} holds numbers only, and this data has non-numeric values; encode them "
                            "first or write it as text/csv") from None
        if matrix.ndim == 1:
            matrix = matrix.reshape(-1, 1)
    if not labelled:
        return matrix, None
    if matrix.shape[1] < 2:
        raise DataError(f"{what} needs the label first and at least one feature")
    labels = matrix[:, 0].toarray().ravel() if hasattr(matrix, "tocsr") else matrix[:, 0]
    return matrix[:, 1:], labels


def as_frame(data):
    """A pandas DataFrame of a DataFrame, an ndarray or a scipy.sparse matrix (columns 0, 1, ...)."""
    if hasattr(data, "to_csv"):
        return data
    import numpy as np
    import pandas as pd
    arr = data.toarray() if hasattr(data, "toarray") else np.asarray(data)
    return pd.DataFrame(arr.reshape(-1, 1) if arr.ndim == 1 else arr)


def label_first_frame(features, labels):
    """Columns numbered as a headerless CSV: column 0 the label (when there is one), then the features."""
    import numpy as np
    import pandas as pd
    if hasattr(features, "tocsr"):
        frame = pd.DataFrame.sparse.from_spmatrix(features)
    else:
        frame = pd.DataFrame(np.asarray(features))
    if labels is not None:
        frame.columns = range(1, frame.shape[1] + 1)
        frame.insert(0, 0, np.asarray(labels))
    return frame
