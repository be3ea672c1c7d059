"""Values a channel parses but an algorithm cannot train on: inf features, NaN labels, labels out of range.

A format reads `inf` and `nan` as numbers (they are, to pyarrow and to float()), so a bad value
used to surface as the C++ stack trace of the library that met it first. These checks run on the
parsed Table (a vectorised pass, only on the rows already in memory) and, when a row is bad, find
its file and line by counting records again, so the error reads
`train.csv line 17: the label is nan; every row needs a finite label`.
An empty or NaN feature is *not* refused: XGBoost and SageMaker read it as a missing value.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import compression
from nbsage.formats.rows import Table

# content types with one record per non-blank line, whose lines can be counted to name a row's line
LINE_FORMATS = {"text/csv", "text/libsvm", "application/jsonlines"}


def locate_row(files, content_type: str, row: int) -> str:
    """`<file> line N` (text formats) or `<file> record N` for the channel's `row`-th record (0-based)."""
    files = [Path(f) for f in files]
    if content_type in LINE_FORMATS:
        for path in files:
            try:
                with compression.open_text(path, errors="replace") as f:
                    for lineno, line in enumerate(f, start=1):
                        if not line.strip():
                            continue
                        if row == 0:
                            return f"{path} line {lineno}"
                        row -= 1
            except (OSError, *compression.GZIP_ERRORS):
                break
    where = str(files[0]) if len(files) == 1 else f"the channel's {len(files)} files"
    return f"{where} record {row + 1}"


def _first_row(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _first_infinite_feature(features) -> tuple[int, float] | None:
    """(row, value) of the first infinite feature, None when every feature is finite or missing."""
    if hasattr(features, "tocsr"):  # scipy.sparse: look at the stored values only
        matrix = features.tocsr()
        at = _first_row(np.isinf(matrix.data))
        if at is None:
            return None
        return int(np.searchsorted(matrix.indptr, at, side="right") - 1), float(matrix.data[at])
    features = np.asarray(features)
    if features.size == 0 or not np.issubdtype(features.dtype, np.floating):
        return None
    bad = np.isinf(features)
    row = _first_row(bad.any(axis=1) if bad.ndim == 2 else bad)
    if row is None:
        return None
    values = features[row][np.isinf(features[row])] if features.ndim == 2 else features[row:row + 1]
    return row, float(values.flat[0])


def check_finite(table: Table, files, content_type: str) -> None:
    """Refuse a NaN or infinite label or weight, and an infinite feature, naming the file and line."""
    for name, column in (("label", table.labels), ("weight", table.weights)):
        if column is None:
            continue
        row = _first_row(~np.isfinite(np.asarray(column, dtype=np.float64)))
        if row is not None:
            raise DataError(f"{locate_row(files, content_type, row)}: the {name} is {float(column[row])}; "
                            f"every row needs a finite {name}")
    found = _first_infinite_feature(table.features)
    if found is not None:
        row, value = found
        raise DataError(f"{locate_row(files, content_type, row)}: a feature is {value} (too large for float32 "
                        "or written as inf); features must be finite numbers (an empty cell or nan is a "
                        "missing value)")


def check_label_range(table: Table, files, content_type: str, low: float, high: float, rule: str) -> None:
    """Refuse labels outside [low, high], saying which values were found and where the first is."""
    labels = np.asarray(table.labels)
    bad = (labels < low) | (labels > high)
    row = _first_row(bad)
    if row is None:
        return
    found = np.unique(labels[bad])
    shown = ", ".join(f"{v:g}" for v in found[:5]) + (f" and {found.size - 5} more" if found.size > 5 else "")
    raise DataError(f"{rule} needs labels in [{low:g}, {high:g}]; found {shown} "
                    f"(first at {locate_row(files, content_type, row)})")
