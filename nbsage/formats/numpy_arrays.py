"""application/x-npy and application/x-npz: NumPy's own files, as the SDK's NumpySerializer and
SparseMatrixSerializer send them and NumpyDeserializer reads them.

A table is one 2-D array with the label in column 0: `.npy` dense (`np.save`), `.npz` a scipy
sparse matrix (`scipy.sparse.save_npz`). Pickled (object) arrays are never loaded from files; a
response body is loaded with pickles only when the caller allows them.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import numpy as np

from nbsage.errors import DataError, InvalidRequest
from nbsage.formats import Format, Table, as_rows, check_labels, compression, register

NPY = "application/x-npy"
NPZ = "application/x-npz"


def _split(matrix, path: Path, labelled: bool) -> Table:
    if matrix.ndim != 2:
        raise DataError(f"{path}: holds an array of shape {matrix.shape}; a table is a 2-D array "
                        "(label in column 0, then the features)")
    if not labelled:
        return Table(matrix, None)
    if matrix.shape[1] < 2:
        raise DataError(f"{path}: {matrix.shape[1]} column(s); labelled rows need the label in column 0 "
                        "and at least one feature")
    labels = matrix[:, 0].toarray().ravel() if hasattr(matrix, "tocsr") else matrix[:, 0]
    return Table(matrix[:, 1:], np.asarray(labels, dtype=np.float32))


def _stacked(obj, labels, what: str):
    rows, _ = as_rows(obj, what)
    labels = check_labels(labels, rows.shape[0])
    if labels is None:
        return rows
    if hasattr(rows, "tocsr"):
        import scipy.sparse as sp
        return sp.hstack([sp.csr_matrix(labels.reshape(-1, 1).astype(rows.dtype)), rows], format="csr")
    return np.column_stack([labels.astype(rows.dtype), rows])


def _save(path_or_file, save) -> None:
    out, close = compression.open_output(path_or_file)
    try:
        save(out)
    finally:
        if close:
            out.close()


@register
class NpyFormat(Format):
    """application/x-npy: one dense array in NumPy's .npy format."""

    content_type = NPY
    suffix = ".npy"

    def read_file(self, path: Path, batch_rows, *, labelled: bool = True, weights: bool = False,
                  num_features=None, **options) -> Iterator[Table]:
        try:
            with compression.open_binary(path) as f:
                matrix = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path}: not a .npy array ({e})") from None
        yield _split(matrix, Path(path), labelled)

    def write(self, obj, path_or_file, labels=None, **options) -> None:
        """Rows (label in column 0 when labels are given); scipy.sparse is written densely."""
        matrix = _stacked(obj, labels, "application/x-npy writer")
        dense = matrix.toarray() if hasattr(matrix, "toarray") else matrix
        _save(path_or_file, lambda out: np.save(out, dense, allow_pickle=False))

    def read_array(self, body):
        """Never with pickles: a pickle in a request would run code."""
        raw = body.encode("latin-1") if isinstance(body, str) else bytes(body)
        try:
            return np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as exc:
            raise InvalidRequest(f"the request body is not a readable .npy array: {exc}") from None

    def write_array(self, prediction) -> bytes:
        out = io.BytesIO()
        np.save(out, np.asarray(prediction))
        return out.getvalue()

    def decode_array(self, body: bytes, dtype=None, allow_pickle: bool = False):
        return np.load(io.BytesIO(body), allow_pickle=allow_pickle)


@register
class NpzFormat(Format):
    """application/x-npz: a scipy sparse matrix (`scipy.sparse.save_npz`), or any .npz archive as a response."""

    content_type = NPZ
    suffix = ".npz"
    sparse = True

    def read_file(self, path: Path, batch_rows, *, labelled: bool = True, weights: bool = False,
                  num_features=None, **options) -> Iterator[Table]:
        import scipy.sparse as sp
        try:
            with compression.open_binary(path) as f:
                matrix = sp.load_npz(io.BytesIO(f.read())).tocsr()
        except (ValueError, OSError, EOFError, KeyError) as e:
            raise DataError(f"{path}: not a scipy sparse matrix (.npz, scipy.sparse.save_npz) ({e})") from None
        yield _split(matrix.astype(np.float32), Path(path), labelled)

    def write(self, obj, path_or_file, labels=None, **options) -> None:
        """Rows as one CSR matrix (label in column 0 when labels are given)."""
        import scipy.sparse as sp
        matrix = sp.csr_matrix(_stacked(obj, labels, "application/x-npz writer"))
        _save(path_or_file, lambda out: sp.save_npz(out, matrix))

    def read_array(self, body):
        """A request's sparse matrix, as the toolkit decodes it (scipy.sparse.load_npz)."""
        import scipy.sparse
        raw = body.encode("latin-1") if isinstance(body, str) else bytes(body)
        try:
            return scipy.sparse.load_npz(io.BytesIO(raw))
        except (ValueError, OSError, KeyError) as exc:
            raise InvalidRequest(f"the request body is not a readable .npz sparse matrix: {exc}") from None

    def decode_array(self, body: bytes, dtype=None, allow_pickle: bool = False):
        """The archive as np.load returns it (its arrays by name), as the SDK's NumpyDeserializer does."""
        return np.load(io.BytesIO(body), allow_pickle=allow_pickle)
