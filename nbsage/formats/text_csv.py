"""text/csv: label in the first column (`;label_size=0`: none), no header; gzip by magic bytes or suffix.

Parsed by pyarrow's CSV reader (C++ parsing and gzip decompression), straight to float32 columns.
`read_table` parses every file first — a CSV file's row count is known only then — in pieces of
whole lines (a large plain file is cut into several, a zero-copy slice each of the file mapped
into memory), several pieces at once on nbsage's threads, each by pyarrow's serial reader; then
allocates the result once and copies the columns into its rows (`nbsage.formats.row_copy`).
`iter_batches` streams a few MB per block, so a channel larger than memory reads batch by batch.
When pyarrow rejects a block, the file is scanned once more in Python to name the exact line and
cell: `train/part-0.csv line 17: expected 31 columns (label + 30 features), found 30`.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from nbsage.errors import DataError, InvalidRequest, UnsupportedContentType
from nbsage.formats import DEFAULT_BATCH_ROWS, Table, as_frame, as_rows, check_labels, describe_files, register
from nbsage.formats import compression
from nbsage.formats.row_copy import ArrowFormat, empty_table, fill, finish, settle, worker_pool

CONTENT_TYPE = "text/csv"
RULE = "text/csv channels hold numbers only, label first, no header"
BLOCK_BYTES = 4 << 20  # iter_batches' pyarrow block: big enough to parse in parallel, small enough for cache
PIECE_BYTES = 16 << 20  # read_table parses a large plain file in pieces of about this size, side by side


def locate_error(path: Path, expected_columns: int | None, label_columns: int = 1,
                 reason: str | None = None) -> DataError:
    """Scan a CSV file and describe its first bad line (or say why it could not be read)."""
    reader = None
    try:
        with compression.open_text(path, errors="replace") as f:
            reader = csv.reader(f)
            for row in reader:
                lineno = reader.line_num
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
                        hint = next((f"; the cell holds {words}: text/csv is comma-separated, with '.' "
                                     "for decimals" for sep, words in SEPARATORS.items() if sep in cell), "")
                        return DataError(f"{path} line {lineno}, {what}: {cell!r} is not a number ({RULE}){hint}")
    except compression.GZIP_ERRORS as e:
        return compression.corrupt(path, e)
    except csv.Error as e:
        return _csv_error(path, reader.line_num if reader else 1, e)
    return DataError(f"{path}: could not be read as text/csv ({reason or 'unknown reason'}); {RULE}")


def _csv_error(path: Path, lineno: int, error: csv.Error) -> DataError:
    """Python's csv error as one line naming the file and line (its field limit: a cell over 128 KiB)."""
    if "field limit" in str(error):
        return DataError(f"{path} line {lineno}: a cell is longer than {csv.field_size_limit() // 1024} KiB "
                         f"({RULE}; is a quote left open or a newline missing?)")
    return DataError(f"{path} line {lineno}: not valid CSV ({error}); {RULE}")


SEPARATORS = {";": "';'", "\t": "a tab", "|": "'|'"}


def _separator_hint(path: Path) -> str:
    """', and its first line is separated by ';'' when another separator is found, else ''."""
    try:
        with compression.open_text(path, errors="replace") as f:
            line = next((line for line in f if line.strip()), "")
    except (OSError, *compression.GZIP_ERRORS):
        return ""
    for sep, words in SEPARATORS.items():
        if line.count(sep) >= 1 and "," not in line:
            return f"; its first line is separated by {words}: text/csv is comma-separated"
    return ""


def _layout(columns: int, label_columns: int) -> str:
    if label_columns == 0:
        return f"{columns} features"
    head = "label" if label_columns == 1 else "label + weight"
    return f"{head} + {columns - label_columns} features"


def _first_row_width(path: Path) -> int | None:
    """Columns of the first non-empty line, or None for a file with no rows."""
    try:
        with compression.open_text(path, errors="replace") as f:
            for lineno, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        return len(next(csv.reader([line])))
                    except csv.Error as e:
                        raise _csv_error(path, lineno, e) from None
    except compression.GZIP_ERRORS as e:
        raise compression.corrupt(path, e) from None
    return None


@dataclass
class Piece:
    """A run of whole lines of a file, parsed on its own: the whole file, or a part of a large plain one."""

    path: Path
    width: int
    start: int = 0
    stop: int | None = None  # None: to the end (a gzip file is read from its start to its end)
    mapped: object = None    # the memory-mapped file the part lies in

    def source(self):
        """A pyarrow input stream over the piece."""
        import pyarrow as pa
        if self.mapped is None:
            return compression.arrow_stream(self.path)
        return pa.BufferReader(self.mapped.slice(self.start, self.stop - self.start))


def pieces(path: Path, width: int, share: tuple[int, int] | None = None) -> list[Piece]:
    """A file cut into runs of whole lines of about PIECE_BYTES, to parse side by side.

    A gzip file is one piece: it can only be decompressed from its start. With `share` =
    (start, stop), only the lines that begin in those bytes of the (plain) file.
    """
    import pyarrow as pa
    size = path.stat().st_size
    if share is None and (size <= PIECE_BYTES or compression.is_gzip(path)):
        return [Piece(path, width)]
    mapped = pa.memory_map(str(path)).read_buffer()  # pieces are zero-copy slices of the page cache
    start, stop = (0, size) if share is None else (_line_start(mapped, share[0]), _line_start(mapped, share[1]))
    count = max(1, -(-(stop - start) // PIECE_BYTES))
    cuts = [start]
    for k in range(1, count):
        cut = _line_end(mapped, max(cuts[-1], start + (stop - start) * k // count))
        if cut >= stop:
            break
        if cut > cuts[-1]:
            cuts.append(cut)
    cuts.append(stop)
    return [Piece(path, width, a, b, mapped) for a, b in zip(cuts, cuts[1:]) if b > a]


def _line_start(data, pos: int) -> int:
    """The offset of the first line that begins at or after `pos` (the size when there is none)."""
    return 0 if pos <= 0 else min(data.size, _line_end(data, pos - 1))


def host_byte_shares(files: list[Path], rank: int, size: int) -> list[tuple[Path, int, int]] | None:
    """Host `rank` of `size`'s share of a channel's plain CSV files: (file, start, stop) byte ranges,
    an equal part of the files' bytes taken in order; a line belongs to the host its first byte falls
    to. None when a file is gzip (it can only be read from its start)."""
    sizes = []
    for path in files:
        if compression.is_gzip(path):
            return None
        sizes.append(path.stat().st_size)
    total = sum(sizes)
    low, high = total * rank // size, total * (rank + 1) // size
    shares, offset = [], 0
    for path, n in zip(files, sizes):
        start, stop = max(low - offset, 0), min(high - offset, n)
        if start < stop:
            shares.append((path, start, stop))
        offset += n
    return shares


def _line_end(data, pos: int) -> int:
    """The offset just past the first newline at or after `pos` (the size when there is none)."""
    step = 1 << 16
    while pos < data.size:
        at = data.slice(pos, min(step, data.size - pos)).to_pybytes().find(b"\n")
        if at >= 0:
            return pos + at + 1
        pos += step
    return data.size


def _options(width: int, block: int | None = None, threads: bool = True) -> dict:
    """pyarrow's read, parse and convert options for rows of `width` cells: float32, no header.

    Only an empty cell is missing (pyarrow's default list of null spellings costs a tenth of the
    parse); quoted cells are accepted.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    names = [f"c{i}" for i in range(width)]
    read = pacsv.ReadOptions(column_names=names, use_threads=threads, **({"block_size": block} if block else {}))
    convert = pacsv.ConvertOptions(column_types={c: pa.float32() for c in names}, null_values=[""],
                                   strings_can_be_null=False)
    return dict(read_options=read, parse_options=pacsv.ParseOptions(delimiter=","), convert_options=convert)


@register
class CSVFormat(ArrowFormat):
    """text/csv: one record per line, the label first, no header."""

    content_type = CONTENT_TYPE
    suffix = ".csv"

    def _layout(self, path: Path, leading: int) -> int | None:
        """Columns per row of a file, from its first row (None: no rows); at least one feature."""
        width = _first_row_width(path)
        if width is not None and width <= leading:
            raise DataError(f"{path}: found {width} column(s); text/csv needs the label"
                            f"{' and the weight' if leading == 2 else ''} first, then at least one feature"
                            + _separator_hint(path))
        return width

    def _parse(self, piece: Piece, leading: int, threads: bool):
        """A piece's rows as a pyarrow Table of float32 columns, checked: no empty cell."""
        import pyarrow as pa
        import pyarrow.csv as pacsv
        try:
            data = pacsv.read_csv(piece.source(), **_options(piece.width, threads=threads))
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
            raise locate_error(piece.path, piece.width, leading, " ".join(str(e).split())) from None
        if any(column.null_count for column in data.columns):
            raise locate_error(piece.path, piece.width, leading, "an empty cell")
        return data

    def _parse_all(self, work: list[Piece], leading: int) -> list:
        """Every piece parsed, in order: several at once on nbsage's threads, each by pyarrow's serial
        reader; a lone piece by pyarrow's threads.

        (pyarrow's threaded reader spends up to half as much CPU again as its serial reader on the
        same rows; parsing pieces side by side keeps the cores busy without that.)
        """
        if len(work) == 1:
            return [self._parse(work[0], leading, threads=True)]
        return list(worker_pool().map(lambda piece: self._parse(piece, leading, threads=False), work))

    def arrow_batches(self, path: Path, batch_rows: int | None, *, labelled: bool = True,
                      weights: bool = False) -> Iterator:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        leading = int(labelled) + int(weights and labelled)
        width = self._layout(path, leading)
        if width is None:
            return
        if batch_rows is None:  # the whole file
            for data in self._parse_all(pieces(path, width), leading):
                yield from data.to_batches()
            return
        block = max(1 << 20, min(BLOCK_BYTES * 4, batch_rows * width * 12))
        try:  # a stream, block by block
            for batch in pacsv.open_csv(compression.arrow_stream(path), **_options(width, block)):
                if any(column.null_count for column in batch.columns):
                    raise locate_error(path, width, leading, "an empty cell")
                yield batch
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
            raise locate_error(path, width, leading, " ".join(str(e).split())) from None

    def read_table(self, files, *, labelled: bool = True, weights: bool = False, num_features: int | None = None,
                   host_share: tuple[int, int] | None = None, **options) -> Table:
        """Every row of the channel in one Table: every file parsed (in pieces, several at once),
        then the result allocated once and the columns copied into its rows.

        (A CSV file's row count is known only once it is parsed.)

        `host_share` = (rank, size): only host `rank` of `size`'s part of the rows — the lines that
        begin in its equal part of the files' bytes (`host_byte_shares`) — and nothing else is
        parsed. Plain files only: with a gzip file each host reads every row and keeps rows
        rank, rank+size, ...
        """
        files = [Path(f) for f in files]
        leading = int(labelled) + int(weights and labelled)
        shares = None
        if host_share is not None:
            shares = {path: (start, stop) for path, start, stop in host_byte_shares(files, *host_share) or []}
            if not shares and any(compression.is_gzip(f) for f in files):
                table = self.read_table(files, labelled=labelled, weights=weights, num_features=num_features)
                rows = slice(host_share[0], None, host_share[1])
                return Table(table.features[rows], None if table.labels is None else table.labels[rows],
                             None if table.weights is None else table.weights[rows])
        work, first = [], None
        for path in files:
            width = self._layout(path, leading)
            if width is None:
                continue
            if num_features is not None and width - leading != num_features:
                raise DataError(f"{path}: {width - leading} features per record, expected {num_features} "
                                "as in the train channel")
            if first is None:
                first = (path, width)
            elif width != first[1]:
                raise DataError(f"{path}: {width - leading} features per record, and {first[0].name} has "
                                f"{first[1] - leading}; every file of a channel needs the same columns")
            if shares is None:
                work += pieces(path, width)
            elif path in shares:
                work += pieces(path, width, shares[path])
        if not work and (shares is None or first is None):
            raise DataError("no rows: " + describe_files(files))
        if not work:  # this host's share is empty (fewer lines than hosts)
            return empty_table(0, first[1] - leading, labelled, leading == 2)
        parts = self._parse_all(work, leading)
        table = empty_table(sum(data.num_rows for data in parts), first[1] - leading, labelled, leading == 2)
        start, pending = 0, []
        try:
            for data in parts:
                pending += fill(table, start, data.to_batches(), leading)
                start += data.num_rows
            finish(pending)
        finally:
            settle(pending)  # on an error too: no thread is left writing into the table
        return table

    def read_features(self, body: bytes, num_features: int | None = None) -> np.ndarray:
        return read_features(body, num_features)

    def write_channel(self, data, path: Path, *, labelled: bool = True) -> None:
        """Headerless, index-free CSV of the data as given: each column keeps its own type's text
        (`1.0` for floats, `40` for integers), as pandas writes it."""
        as_frame(data).to_csv(path, header=False, index=False)

    def read_frame(self, data: bytes, name: str, header: bool | None = None):
        """A CSV file (`.tsv`: tab-separated) as a DataFrame; a header row is detected unless `header` says."""
        import pandas as pd
        if header is None:
            header = has_header(data[:65536])
        sep = "\t" if name.lower().removesuffix(".gz").endswith(".tsv") else ","
        return pd.read_csv(io.BytesIO(data), header=0 if header else None, sep=sep)

    def write_records(self, records: list, *, column=None, envelope: str | None = None) -> bytes:
        """One line per record: its `column` value (a list as comma-separated cells), or, when column
        is a list of keys, one cell per key (a list value as one quoted JSON cell, `"[0.1, 0.9]"`)."""
        if column is None:
            raise UnsupportedContentType("a text/csv response writes one field of each record; none was named")
        if isinstance(column, str):
            return "\n".join(_cell(r[column]) for r in records).encode()
        return "\n".join(",".join(f'"{json.dumps(r[k])}"' if isinstance(r[k], list) else json.dumps(r[k])
                                   for k in column) for r in records).encode()

    def read_array(self, body):
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
        try:
            return np.genfromtxt(io.StringIO(text), delimiter=",")
        except ValueError as exc:
            raise InvalidRequest(f"the request body is not valid CSV: {' '.join(str(exc).split())}") from None

    def write_array(self, prediction) -> bytes:
        out = io.StringIO()
        array = np.asarray(prediction)
        np.savetxt(out, array if array.ndim else array.reshape(1), delimiter=",", fmt="%s")
        return out.getvalue().encode("utf-8")

    def decode_array(self, body: bytes, dtype=None, allow_pickle: bool = False):
        return np.genfromtxt(io.StringIO(body.decode("utf-8")), delimiter=",",
                             dtype=dtype if dtype is not None else float)

    def decode(self, body: bytes):
        """Rows of numbers as a float array."""
        return self.decode_array(body)

    def decode_frame(self, body: bytes):
        """Model responses have no header row: every line is data."""
        import pandas as pd
        return pd.read_csv(io.BytesIO(body), header=None)

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


SMALL_REQUEST_BYTES = 2048  # below this a request is parsed cell by cell: pyarrow's set-up costs more
# requests of this size are cut into blocks parsed side by side on pyarrow's threads (a 1,000-row
# request in about 60% of the one-thread time) while the machine has an idle core; on busy cores
# the blocks wait for each other (a third slower than one thread). Larger requests are batches
# (batch transform's MultiRecord payloads), which arrive MaxConcurrentTransforms at a time and keep
# the cores busy already: there, threads only add CPU.
THREADED_REQUEST_BYTES = (64 << 10, 1 << 20)
COMPILED_REQUEST_BYTES = 64 << 10  # a request of this size starts loading csv_kernel (then read by it from 2 KiB)


def read_features(body: bytes | str, num_features: int | None = None) -> np.ndarray:
    """A text/csv inference request: rows of features only, no label. With `num_features` the first
    row's width is checked before the rest is parsed, so a body of the wrong shape is refused at once.

    A body of more than a few rows is read by the compiled kernel of `csv_kernel` once it is loaded
    (plain decimal cells, exactly as `float()` reads them; the first batch-sized body,
    COMPILED_REQUEST_BYTES, starts loading it), else by pyarrow's CSV reader (a 1,000-row request in
    a tenth of the time of `float()` on every cell); when neither reads it, or pyarrow reads it
    differently from Python's `float()` could (a quoted or empty cell), the cell-by-cell parser reads
    it again to answer the same as always: the rows, or an error naming the line and the cell.
    """
    if num_features is not None:
        _check_first_row(body, num_features)
    if len(body) >= SMALL_REQUEST_BYTES:
        rows = _read_features_compiled(body, load=len(body) >= COMPILED_REQUEST_BYTES)
        if rows is None:
            rows = _read_features_whole(body)
        if rows is not None:
            return rows
    return _read_features_by_cell(body)


def _read_features_compiled(body: bytes | str, wait: bool = False, load: bool = True) -> np.ndarray | None:
    """The body's rows read by the compiled kernel (`csv_kernel`), or None: a body it does not read
    exactly as `float()` would (the general parsers then answer), or the kernel is not loaded yet
    (`load`: start loading it in the background if it is not; `wait`: and wait for it)."""
    read = _KERNEL.get("read") if not load else _kernel_reader(wait)
    if read is None:
        return None
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    width = _first_width(data)
    return None if width is None else read(data, width)


_KERNEL: dict = {}  # "thread": the thread loading csv_kernel; "read": its read_rows, once compiled
_KERNEL_LOCK = threading.Lock()


def _kernel_reader(wait: bool = False):
    """csv_kernel.read_rows once numba has compiled it (or loaded it from its cache), else None.

    The first call starts the loading in a thread of its own (not a daemon: a process that exits
    meanwhile waits for the compiler instead of stopping it halfway), so no request waits for
    numba's import and compilation (one to three seconds of a core); requests go to pyarrow until
    then. Not in a batch container (SAGEMAKER_BATCH): there each of MaxConcurrentTransforms workers
    would spend that load on a short job, and a job reads hundreds of MB before the faster parse
    pays it back; an endpoint's server lives long and idles between requests.
    """
    read = _KERNEL.get("read")
    if read is None:
        with _KERNEL_LOCK:
            if "thread" not in _KERNEL:
                wanted = _kernel_wanted()
                _KERNEL["thread"] = threading.Thread(target=_load_kernel, name="nbsage-csv-kernel") if wanted else None
                if _KERNEL["thread"] is not None:
                    _KERNEL["thread"].start()
        if wait and _KERNEL["thread"] is not None:
            _KERNEL["thread"].join()
            read = _KERNEL.get("read")
    return read


def _kernel_wanted() -> bool:
    """Whether this process loads the compiled reader: everywhere but in a batch container."""
    return os.environ.get("SAGEMAKER_BATCH", "").lower() != "true"


def _load_kernel() -> None:
    try:
        from nbsage.formats import csv_kernel
        csv_kernel.warm()
    except Exception as exc:  # noqa: BLE001 - without the kernel, pyarrow reads every request
        logging.getLogger(__name__).warning("text/csv requests are read by pyarrow: the compiled reader "
                                            "did not load (%s)", " ".join(str(exc).split()))
        return
    _KERNEL["read"] = csv_kernel.read_rows


def _read_features_whole(body: bytes | str, threads: bool | None = None) -> np.ndarray | None:
    """The body's rows parsed at once by pyarrow (float64, then float32, as `float()` then numpy
    would round them), or None where only the cell-by-cell parser can answer. `threads`: parse
    blocks on pyarrow's threads (None: by THREADED_REQUEST_BYTES and a free core)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    width = _first_width(data)
    if width is None or b'"' in data:  # no rows, or a quote (pyarrow unquotes; float() does not)
        return None
    names, options = _request_options(width)
    low, high = THREADED_REQUEST_BYTES
    if threads is None:
        threads = low <= len(data) < high and _idle_core()
    try:
        if threads:  # blocks parsed side by side
            block = max(low, len(data) // (2 * _cores()))
            batches = pacsv.read_csv(pa.py_buffer(data), read_options=pacsv.ReadOptions(
                column_names=names, use_threads=True, block_size=block), **options).to_batches()
        else:  # one thread: the streaming reader, a tenth less set-up than read_csv on a small body
            read = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=min(len(data) + 1, 1 << 20))
            batches = list(pacsv.open_csv(pa.py_buffer(data), read_options=read, **options))
    except (pa.ArrowInvalid, UnicodeDecodeError):  # an empty cell too (no null spellings): by cell
        return None
    count = sum(batch.num_rows for batch in batches)
    if count == 0:
        return None
    rows = np.empty((count, width), dtype=np.float32)
    start = 0
    for batch in batches:  # each column into its place in the rows (float64 -> float32 on the way)
        stop = start + batch.num_rows
        for j, column in enumerate(batch.columns):
            rows[start:stop, j] = column.to_numpy()
        start = stop
    return rows


@functools.lru_cache(maxsize=64)
def _request_options(width: int) -> tuple[list[str], dict]:
    """Column names and pyarrow's parse and convert options for requests of `width` cells a row, made
    once per width. No null spellings: an empty cell fails the parse (the cell-by-cell parser then
    names it), which costs less than looking for nulls in every cell (a quarter of the parse)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    names = [f"c{i}" for i in range(width)]
    return names, dict(parse_options=pacsv.ParseOptions(delimiter=",", quote_char=False),
                       convert_options=pacsv.ConvertOptions(column_types={c: pa.float64() for c in names},
                                                            null_values=[], strings_can_be_null=False))


def _idle_core() -> bool:
    """Whether a core is free: the 1-minute load average leaves at least one of this process's cores."""
    try:
        return os.getloadavg()[0] + 1 <= _cores()
    except OSError:
        return False


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _first_width(data: bytes) -> int | None:
    """Cells in the first non-blank line (None: every line is blank)."""
    start = 0
    while start < len(data):  # line by line from the start (split() would copy the rest of the body)
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        line = data[start:end]
        if line.strip():
            return line.count(b",") + 1
        start = end + 1
    return None


def _read_features_by_cell(body: bytes | str) -> np.ndarray:
    """A request parsed line by line, `float()` on every cell: exact errors for a bad line or cell."""
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


def _check_first_row(body: bytes | str, num_features: int) -> None:
    newline, comma = (b"\n", b",") if isinstance(body, bytes) else ("\n", ",")
    start, lineno = 0, 1
    while start < len(body):
        end = body.find(newline, start)
        end = len(body) if end < 0 else end
        line = body[start:end]
        if line.strip():
            width = line.count(comma) + 1
            if width != num_features:
                raise DataError(f"text/csv request line {lineno} has {width} features, and the model expects "
                                f"{num_features} features per row"
                                + (" (send features only, no label column)" if width == num_features + 1 else ""))
            return
        start, lineno = end + 1, lineno + 1


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def has_header(head: bytes) -> bool:
    """A CSV starts with a header when its first row has no numbers and the second row has some."""
    lines = head.decode("utf-8", errors="replace").splitlines()
    rows = list(csv.reader(lines[:2]))
    if len(rows) < 2 or not rows[0]:
        return bool(rows) and rows[0] != [] and not any(_is_number(c) for c in rows[0]) and len(lines) == 1
    return not any(_is_number(c) for c in rows[0] if c.strip()) and any(_is_number(c) for c in rows[1])


def _cell(v) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(_cell(x) for x in v)
    return str(v) if isinstance(v, int) else repr(float(v))


ARROW_WRITE_VALUES = 256  # from this many numbers an answer is formatted by pyarrow (below, its set-up costs more)
# pyarrow's shortest float32 text is numpy's, character for character, for non-integral values in
# [1e-4, 1e6) (checked over every exponent); elsewhere the two spell exponents and integers apart
# ('1e-05' / '0.00001', '3.0' / '3'), so those few cells are formatted by numpy.
_ARROW_SAME_TEXT = (np.nextafter(np.float32(1e-4), np.float32(1)), np.float32(1e6))  # float32(1e-4) < 1e-4


def write_rows(rows) -> bytes:
    """Predictions as text/csv: one row per line, each number as `str(numpy.float32(v))` writes it.

    A numeric array is formatted in one call, by pyarrow's C++ formatter when it is large (a fifth of
    numpy's time; numpy's text kept for the values the two spell apart) and by numpy otherwise (the
    same shortest float32 text, cell by cell identical); anything else (strings, mixed objects)
    value by value.
    """
    arr = np.asarray(rows)
    if arr.dtype.kind in "biuf" and arr.ndim in (1, 2) and arr.size >= ARROW_WRITE_VALUES:
        return _write_arrow(arr.astype(np.float32).reshape(arr.shape[0], -1))
    if arr.dtype.kind in "biuf" and arr.ndim in (1, 2):
        cells = arr.astype(np.float32).astype(str).tolist()
        lines = cells if arr.ndim == 1 else (",".join(row) for row in cells)
        return "\n".join(lines).encode()
    out = io.StringIO()
    if arr.ndim == 1:
        out.write("\n".join(_fmt(v) for v in arr))
    else:
        out.write("\n".join(",".join(_fmt(v) for v in row) for row in arr))
    return out.getvalue().encode()


def _write_arrow(values: np.ndarray) -> bytes:
    """float32 rows as text/csv by pyarrow: each column cast to text, numpy's text where they differ.
    One column (a prediction a row, the usual answer) is joined by newlines in one call; several
    are written by pyarrow's CSV writer."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    columns = [_arrow_text(np.ascontiguousarray(values[:, j])) for j in range(values.shape[1])]
    if len(columns) == 1:
        import pyarrow.compute as pc
        lines = pa.ListArray.from_arrays(pa.array([0, len(columns[0])], pa.int32()), columns[0])
        return pc.binary_join(lines, "\n")[0].as_buffer().to_pybytes()
    table = pa.Table.from_arrays(columns, names=[f"c{j}" for j in range(len(columns))])
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return out.getvalue().to_pybytes()[:-1]  # no newline after the last row, as numpy's answer


def _arrow_text(column: np.ndarray):
    """A float32 column as pyarrow strings, each as `str(numpy.float32(v))` writes it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    low, high = _ARROW_SAME_TEXT
    size = np.abs(column)
    other = ~((size >= low) & (size < high) & (column != np.trunc(column)))  # NaN compares False: numpy's
    text = pc.cast(pa.array(column), pa.string())
    if other.any():
        text = pc.replace_with_mask(text, pa.array(other), pa.array(column[other].astype(str).tolist()))
    return text


def _fmt(v) -> str:
    return str(np.float32(v)) if not isinstance(v, (str, bytes)) else str(v)
