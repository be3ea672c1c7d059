"""text/csv: label in the first column (`;label_size=0`: none), no header; gzip by magic bytes or suffix.

Reading streams with pyarrow's CSV reader (C++ parsing and gzip decompression, straight to
float32, a few MB per block), so a channel larger than memory reads batch by batch. When pyarrow
rejects a block, the file is scanned once more in Python to name the exact line and cell:
`train/part-0.csv line 17: expected 31 columns (label + 30 features), found 30`.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import DEFAULT_BATCH_ROWS, Format, Table, as_rows, check_labels, register
from nbsage.formats import compression

CONTENT_TYPE = "text/csv"
RULE = "text/csv channels hold numbers only, label first, no header"
BLOCK_BYTES = 4 << 20  # pyarrow block: big enough to parse in parallel, small enough to stay in cache


def locate_error(path: Path, expected_columns: int | None, label_columns: int = 1,
                 reason: str | None = None) -> DataError:
    """Scan a CSV file and describe its first bad line (or say why it could not be read)."""
    try:
        with compression.open_text(path, errors="replace") as f:
            for lineno, row in enumerate(csv.reader(f), start=1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if expected_columns is None:
                    expected_columns = len(row)
                if len(row) != expected_columns:
                    return DataError(
                        f"{path} line {lineno}: expected {expected_columns} columns "
                        f"({_layout(expected_columns, label_columns)}), found {len(row)}")
                for col, cell in enumerate(row, start=1):
                    what = ("label" if col == 1 else "weight") if col <= label_columns else f"column {col}"
                    if not cell.strip():
                        return DataError(f"{path} line {lineno}, {what}: empty cell ({RULE}; every cell "
                                         "needs a number)")
                    try:
                        float(cell)
                    except ValueError:
                        return DataError(f"{path} line {lineno}, {what}: {cell!r} is not a number ({RULE})")
    except compression.GZIP_ERRORS as e:
        return compression.corrupt(path, e)
    except csv.Error as e:
        return DataError(f"{path}: not valid CSV ({e}); {RULE}")
    return DataError(f"{path}: could not be read as text/csv ({reason or 'unknown reason'}); {RULE}")


def _layout(columns: int, label_columns: int) -> str:
    if label_columns == 0:
        return f"{columns} features"
    head = "label" if label_columns == 1 else "label + weight"
    return f"{head} + {columns - label_columns} features"


def _first_row_width(path: Path) -> int | None:
    """Columns of the first non-empty line, or None for a file with no rows."""
    try:
        with compression.open_text(path, errors="replace") as f:
            for line in f:
                if line.strip():
                    return len(next(csv.reader([line])))
    except compression.GZIP_ERRORS as e:
        raise compression.corrupt(path, e) from None
    return None


_NUMPY_TYPES = {"double": np.float64, "float": np.float32, "halffloat": np.float16,
                "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
                "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}


def column_values(array) -> np.ndarray:
    """A null-free numeric pyarrow Array as a numpy view of its buffer (no pandas import)."""
    dtype = _NUMPY_TYPES.get(str(array.type))
    if dtype is None or array.null_count:
        return array.to_numpy(zero_copy_only=False)
    n = len(array)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=array.offset + n)[array.offset:]


def fill_column(out: np.ndarray, column) -> None:  # kept for callers outside nbsage.formats
    """Copy a null-free numeric pyarrow column (Array or ChunkedArray) into `out` from its buffers.

    (pyarrow's own to_numpy imports pandas, which costs a job start 0.3-0.9 s.)
    """
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    start = 0
    for chunk in chunks:
        n = len(chunk)
        out[start:start + n] = column_values(chunk)
        start += n


ROW_BLOCK = 8192  # rows filled at a time: the block of the row-major matrix stays in cache
_PARALLEL_CELLS = 1 << 21  # below this a fill is too quick to share out
_pool = None
_pool_pid = None


def _fill_pool():
    """Threads for filling large matrices (numpy copies release the GIL); made on first use.

    A process forked after the pool was made has none of its threads: it makes its own.
    """
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="nbsage-fill")
        _pool_pid = os.getpid()
    return _pool


def fill_rows(batches, labelled: bool, weights: bool) -> Table:
    """pyarrow RecordBatches of numeric columns -> one Table; the label (and weight) first.

    The matrix is allocated once and filled a block of rows at a time, blocks shared out among
    threads: writing a column into a row-major matrix is a strided write, cheap while the block
    stays in cache and costly across a whole channel.
    """
    leading = int(labelled) + int(weights and labelled)
    n = sum(b.num_rows for b in batches)
    width = batches[0].num_columns - leading if batches else 0
    features = np.empty((n, width), dtype=np.float32)
    labels = np.empty(n, dtype=np.float32) if labelled else None
    w = np.empty(n, dtype=np.float32) if leading == 2 else None
    blocks = []
    start = 0
    for batch in batches:
        columns = [column_values(c) for c in batch.columns]
        rows = batch.num_rows
        if labelled:
            labels[start:start + rows] = columns[0]
        if w is not None:
            w[start:start + rows] = columns[1]
        blocks += [(start, a, min(rows, a + ROW_BLOCK), columns[leading:]) for a in range(0, rows, ROW_BLOCK)]
        start += rows

    def fill(block) -> None:
        offset, a, b, columns = block
        out = features[offset + a:offset + b]
        for j, values in enumerate(columns):
            out[:, j] = values[a:b]

    threads = min(8, os.cpu_count() or 1)
    if features.size >= _PARALLEL_CELLS and threads > 1 and len(blocks) > 1:
        list(_fill_pool().map(fill, blocks, chunksize=max(1, len(blocks) // (threads * 4))))
    else:
        for block in blocks:
            fill(block)
    return Table(features, labels, w)


def batch_to_table(batch, labelled: bool, weights: bool) -> Table:
    """A pyarrow RecordBatch (or Table) of numeric columns -> Table; the label (and weight) first."""
    return fill_rows(batch.to_batches() if hasattr(batch, "to_batches") else [batch], labelled, weights)


class ArrowFormat(Format):
    """A format pyarrow decodes into record batches of numeric columns (CSV, Parquet).

    `read_table` keeps the decoded batches of every file and fills the result once, without the
    copy that stacking per-batch matrices would cost.
    """

    def arrow_batches(self, path: Path, batch_rows: int | None, *, labelled: bool, weights: bool) -> Iterator:
        raise NotImplementedError

    def read_file(self, path: Path, batch_rows: int | None, *, labelled: bool = True, weights: bool = False,
                  num_features: int | None = None, **options) -> Iterator[Table]:
        for batch in self.arrow_batches(path, batch_rows, labelled=labelled, weights=weights):
            yield fill_rows([batch], labelled, weights)

    def read_table(self, files, *, labelled: bool = True, weights: bool = False, num_features: int | None = None,
                   **options) -> Table:
        from nbsage.formats import describe_files
        files = [Path(f) for f in files]
        leading = int(labelled) + int(weights and labelled)
        batches, first = [], None
        for path in files:
            for batch in self.arrow_batches(path, None, labelled=labelled, weights=weights):
                if not batch.num_rows:
                    continue
                width = batch.num_columns - leading
                if num_features is not None and width != num_features:
                    raise DataError(f"{path}: {width} features per record, expected {num_features} "
                                    "as in the train channel")
                if first is None:
                    first = (path, width)
                elif width != first[1]:
                    raise DataError(f"{path}: {width} features per record, and {first[0].name} has {first[1]}; "
                                    "every file of a channel needs the same columns")
                batches.append(batch)
        if not batches:
            raise DataError("no rows: " + describe_files(files))
        return fill_rows(batches, labelled, weights)


@register
class CSVFormat(ArrowFormat):
    """text/csv: one record per line, the label first, no header."""

    content_type = CONTENT_TYPE
    suffix = ".csv"

    def arrow_batches(self, path: Path, batch_rows: int | None, *, labelled: bool = True,
                      weights: bool = False) -> Iterator:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        width = _first_row_width(path)
        if width is None:
            return
        leading = int(labelled) + int(weights and labelled)
        if width <= leading:
            raise DataError(f"{path}: found {width} column(s); text/csv needs the label"
                            f"{' and the weight' if leading == 2 else ''} first, then at least one feature")
        names = [f"c{i}" for i in range(width)]
        convert = pacsv.ConvertOptions(column_types={c: pa.float32() for c in names}, null_values=[""],
                                       strings_can_be_null=False)
        parse = pacsv.ParseOptions(delimiter=",")
        try:
            if batch_rows is None:  # the whole file, parsed by pyarrow's threads
                table = pacsv.read_csv(compression.arrow_stream(path), parse_options=parse, convert_options=convert,
                                       read_options=pacsv.ReadOptions(column_names=names))
                batches = table.to_batches()
            else:  # a stream, block by block
                block = max(1 << 20, min(BLOCK_BYTES * 4, batch_rows * width * 12))
                batches = pacsv.open_csv(compression.arrow_stream(path), parse_options=parse, convert_options=convert,
                                         read_options=pacsv.ReadOptions(column_names=names, block_size=block))
            for batch in batches:
                if any(column.null_count for column in batch.columns):
                    raise locate_error(path, width, leading, "an empty cell")
                yield batch
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
            raise locate_error(path, width, leading, " ".join(str(e).split())) from None

    def read_features(self, body: bytes, num_features: int | None = None) -> np.ndarray:
        return read_features(body)

    def write(self, obj, path_or_file, labels=None, **options) -> None:
        """Rows as CSV (label first when labels are given); scipy.sparse is written densely."""
        import pyarrow as pa
        import pyarrow.csv as pacsv
        rows, _ = as_rows(obj, "text/csv writer")
        labels = check_labels(labels, rows.shape[0])
        out, close = compression.open_output(path_or_file)
        try:
            step = max(1, (4 << 20) // max(1, rows.shape[1] * 4))
            for start in range(0, rows.shape[0], step):
                part = rows[start:start + step]
                part = part.toarray() if hasattr(part, "toarray") else part
                cols = [pa.array(np.ascontiguousarray(part[:, j])) for j in range(part.shape[1])]
                if labels is not None:
                    cols.insert(0, pa.array(np.asarray(labels[start:start + step])))
                table = pa.Table.from_arrays(cols, names=[f"c{i}" for i in range(len(cols))])
                pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
        finally:
            if close:
                out.close()


def read_matrix(path: Path) -> np.ndarray:
    """All columns of one CSV file as a float32 matrix."""
    parts = [t.features for t in CSVFormat().read_file(Path(path), None, labelled=False)]
    if not parts:
        return np.empty((0, 0), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def read_table(files: list[Path], weights: bool = False, num_features: int | None = None,
               labelled: bool = True) -> Table:
    """A text/csv channel: label (and weight) first, then features."""
    return CSVFormat().read_table(files, labelled=labelled, weights=weights, num_features=num_features)


def iter_batches(files: list[Path], batch_rows: int = DEFAULT_BATCH_ROWS, weights: bool = False,
                 labelled: bool = True) -> Iterator[Table]:
    """A text/csv channel as Tables of batch_rows rows, read as a stream."""
    return CSVFormat().iter_batches(files, batch_rows, labelled=labelled, weights=weights)


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
