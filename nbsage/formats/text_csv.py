"""text/csv: label in the first column, no header; gzip by file suffix.

The fast path parses with pyarrow's multi-threaded CSV reader. When that fails, or yields a
non-numeric column, the file is scanned once more in Python to name the exact line and cell, so
the error says `train/part-0.csv line 17: expected 31 columns (label + 30 features), found 30`.
"""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import Table


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace", newline="")


def locate_error(path: Path, expected_columns: int | None, label_columns: int = 1) -> DataError:
    """Scan a CSV file and describe its first bad line."""
    with _open_text(path) as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if expected_columns is None:
                expected_columns = len(row)
            if len(row) != expected_columns:
                return DataError(
                    f"{path} line {lineno}: expected {expected_columns} columns "
                    f"(label + {expected_columns - label_columns} features), found {len(row)}")
            for col, cell in enumerate(row, start=1):
                try:
                    float(cell)
                except ValueError:
                    what = "label" if col <= label_columns else f"column {col}"
                    return DataError(f"{path} line {lineno}, {what}: {cell!r} is not a number "
                                     "(text/csv channels hold numbers only, label first, no header)")
    return DataError(f"{path}: could not be read as text/csv (label first, no header)")


def read_matrix(path: Path) -> np.ndarray:
    """All columns of one CSV file as a float32 matrix."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    try:
        if path.stat().st_size == 0:
            return np.empty((0, 0), dtype=np.float32)
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(delimiter=","))
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
        if isinstance(e, OSError) and not isinstance(e, pa.ArrowInvalid) and "gzip" in str(e).lower():
            raise DataError(f"{path}: not a valid gzip file ({e})") from None
        raise locate_error(path, None) from None
    for column in table.columns:
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                or pa.types.is_null(column.type)):
            raise locate_error(path, table.num_columns)
        if column.null_count:
            raise _missing_value(path, table)
    matrix = np.empty((table.num_rows, table.num_columns), dtype=np.float32)
    for j, column in enumerate(table.columns):
        fill_column(matrix[:, j], column)
    return matrix


_NUMPY_TYPES = {"double": np.float64, "float": np.float32, "halffloat": np.float16,
                "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
                "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}


def fill_column(out: np.ndarray, column) -> None:
    """Copy a null-free numeric pyarrow column into `out` straight from its buffers.

    (pyarrow's own to_numpy imports pandas, which costs a job start 0.3-0.9 s.)
    """
    start = 0
    for chunk in column.chunks:
        n = len(chunk)
        dtype = _NUMPY_TYPES.get(str(chunk.type))
        if dtype is None or chunk.null_count:
            out[start:start + n] = chunk.to_numpy(zero_copy_only=False)
        else:
            out[start:start + n] = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=chunk.offset + n)[chunk.offset:]
        start += n


def _missing_value(path: Path, table) -> DataError:
    for j, column in enumerate(table.columns):
        if column.null_count:
            import pyarrow.compute as pc
            row = int(pc.index(pc.is_null(column), True).as_py())
            return DataError(f"{path} line {row + 1}, column {j + 1}: empty cell "
                             "(text/csv channels need a number in every cell)")
    return DataError(f"{path}: empty cell")


def read_table(files: list[Path], weights: bool = False, num_features: int | None = None) -> Table:
    leading = 2 if weights else 1
    parts = []
    width = None
    for path in files:
        m = read_matrix(path)
        if m.shape[0] == 0:
            continue
        if width is None:
            width = m.shape[1]
        elif m.shape[1] != width:
            raise DataError(f"{path} line 1: expected {width} columns (as in {files[0].name}), found {m.shape[1]}")
        parts.append(m)
    if not parts:
        raise DataError("no rows: " + (", ".join(map(str, files)) if files else "the channel has no files"))
    if width <= leading:
        raise DataError(f"{files[0]}: found {width} column(s); text/csv needs the label"
                        f"{' and the weight' if weights else ''} first, then at least one feature")
    data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    features = np.ascontiguousarray(data[:, leading:])
    if num_features is not None and features.shape[1] != num_features:
        raise DataError(f"{files[0]}: found {features.shape[1]} features, expected {num_features} as in the train channel")
    return Table(features=features, labels=data[:, 0].copy(), weights=data[:, 1].copy() if weights else None)


def read_features(body: bytes | str) -> np.ndarray:
    """A text/csv inference request: rows of features only, no label."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    rows = []
    width = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise DataError(f"text/csv request line {lineno}: expected {width} values as in line 1, found {len(cells)}")
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            bad = next(c for c in cells if not _is_number(c))
            raise DataError(f"text/csv request line {lineno}: {bad.strip()!r} is not a number") from None
    if not rows:
        raise DataError("text/csv request has no rows")
    return np.asarray(rows, dtype=np.float32)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def write_rows(rows) -> bytes:
    """Predictions as text/csv: one row per line."""
    arr = np.asarray(rows)
    out = io.StringIO()
    if arr.ndim == 1:
        out.write("\n".join(_fmt(v) for v in arr))
    else:
        out.write("\n".join(",".join(_fmt(v) for v in row) for row in arr))
    return out.getvalue().encode()


def _fmt(v) -> str:
    return str(np.float32(v)) if not isinstance(v, (str, bytes)) else str(v)
