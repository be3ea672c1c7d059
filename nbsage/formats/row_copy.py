"""pyarrow's numeric columns into nbsage's rows: the C-ordered float32 matrix the algorithms train on.

The copy of columns into rows is the part of a CSV or Parquet read pyarrow does not do. It goes
through a small float32 staging tile (columns x rows, kept in cache): the columns are copied into
it contiguously, then the tile is transposed into the rows with sequential writes — two to four
times as fast as writing each column down the row-major matrix with a stride. Columns that are
all float32 already (CSV) are staged by pyarrow (`to_tensor`, column-major: no Python per column,
which counts with CSV's small blocks); others are cast into a per-thread numpy tile.
Large copies are shared out among a few threads (numpy copies release the GIL), and the result
is allocated from pyarrow's memory pool, whose pages an earlier read has already mapped.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import wait
from typing import Iterator

import numpy as np

from nbsage.formats import Format, Table

TILE_COLUMNS = 128     # columns staged at a time (wide tables go through in column groups)
TILE_CELLS = 1 << 19   # float32 cells of a staging tile: 2 MB, in cache while it is transposed
STAGED_MIN_WIDTH = 8   # narrower rows, and fewer rows, are cheaper written column by column
STAGED_MIN_ROWS = 1024
ROW_BLOCK = 8192       # rows per block when written column by column
PARALLEL_CELLS = 1 << 21  # below this a copy is too quick to share out among threads

_NUMPY_TYPES = {"double": np.float64, "float": np.float32, "halffloat": np.float16,
                "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
                "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}
_staging = threading.local()
_pool = None
_pool_pid = None


def column_values(array) -> np.ndarray:
    """A null-free numeric pyarrow Array as a numpy view of its buffer (no pandas import)."""
    dtype = _NUMPY_TYPES.get(str(array.type))
    if dtype is None or array.null_count:
        return array.to_numpy(zero_copy_only=False)
    n = len(array)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=array.offset + n)[array.offset:]


def worker_pool():
    """nbsage's threads for parsing and copying (pyarrow and numpy release the GIL); made on first use.

    A process forked after the pool was made has none of its threads: it makes its own.
    """
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="nbsage-fill")
        _pool_pid = os.getpid()
    return _pool


def empty(*shape: int) -> np.ndarray:
    """An uninitialised, writable float32 array from pyarrow's memory pool.

    The pool that holds the decoded columns keeps freed memory for reuse, so a read after an
    earlier one writes into pages already mapped: a fresh numpy allocation of the matrix costs a
    page fault per 4 KiB on first write (about 12 ms for 80 MB), a fifth of a whole Parquet read.
    """
    import pyarrow as pa
    return np.frombuffer(pa.allocate_buffer(int(np.prod(shape)) * 4), dtype=np.float32).reshape(shape)


def empty_table(rows: int, width: int, labelled: bool, weights: bool) -> Table:
    """An uninitialised Table of `rows` x `width` features (and labels, and weights)."""
    return Table(empty(rows, width), empty(rows) if labelled else None, empty(rows) if weights else None)


def _tile(width: int) -> tuple[int, int]:
    """(columns, rows) of a staging tile for rows of `width` features."""
    columns = min(width, TILE_COLUMNS)
    return columns, max(1024, TILE_CELLS // columns)


def _staging_tile(columns: int, rows: int) -> np.ndarray:
    """This thread's float32 staging tile, `columns` x at least `rows`.

    Its rows are an odd number of cache lines apart: a power-of-two stride would put the same
    element of every column in the same cache set, and the transpose would run several times slower.
    """
    stride = ((rows + 15) // 16 | 1) * 16
    tile = getattr(_staging, "tile", None)
    if tile is None or tile.shape != (columns, stride):
        tile = _staging.tile = np.empty((columns, stride), np.float32)
    return tile


def _fill_block(out: np.ndarray, columns: list, a: int, b: int) -> None:
    """Rows a..b of `columns` (1-d numeric arrays) into `out`, those rows of a float32 matrix."""
    width = len(columns)
    if width < STAGED_MIN_WIDTH or b - a < STAGED_MIN_ROWS:
        for j, values in enumerate(columns):
            out[:, j] = values[a:b]
        return
    group, rows = _tile(width)
    tile = _staging_tile(group, rows)
    for j0 in range(0, width, group):
        part = columns[j0:j0 + group]
        staged = tile[:len(part), :b - a]
        for j, values in enumerate(part):
            staged[j] = values[a:b]  # a contiguous cast to float32
        np.copyto(out[:, j0:j0 + len(part)], staged.T)  # the transpose: sequential writes


def _tensor_rows(rows: int) -> int:
    """Rows of a column-major tile: at most `rows`, and not a multiple of 256.

    (Columns 1 KiB apart, or a multiple of it, put a row's elements of every column in a few cache
    sets: the transposing copy runs 1.5x slower at 256 rows' spacing, 4x at 1,024.)
    """
    return rows - 16 if rows % 256 == 0 and rows > 16 else rows


def _fill_tensor(out: Table, rows: slice, batch, leading: int) -> None:
    """`batch` (float32 columns only) into `rows` of `out`: staged by pyarrow, transposed by numpy.

    pyarrow copies the columns into one column-major tile (C++, no Python per column, the GIL
    released), then numpy writes it into the rows in one transposing copy.
    """
    tile = batch.to_tensor(row_major=False).to_numpy()
    if out.labels is not None:
        out.labels[rows] = tile[:, 0]
    if out.weights is not None:
        out.weights[rows] = tile[:, 1]
    np.copyto(out.features[rows], tile[:, leading:])


def fill(table: Table, start: int, batches, leading: int) -> list:
    """Copy pyarrow RecordBatches of null-free numeric columns into `table` from row `start`.

    The first `leading` columns are the label (and the weight); the rest go to `table.features`.
    Blocks of rows are given to threads when the copy is large enough to gain from it: the
    futures of those blocks are returned (none when it was all copied here), to be passed to
    `finish` before the rows are used.
    """
    import pyarrow as pa
    width = table.features.shape[1]
    staged = width >= STAGED_MIN_WIDTH
    block_rows = _tile(width)[1] if staged else ROW_BLOCK
    f32 = pa.float32()
    first, jobs = start, []  # jobs: (function, arguments)
    for batch in batches:
        n = batch.num_rows
        if staged and n and batch.num_columns <= TILE_COLUMNS and all(t == f32 for t in batch.schema.types):
            step = max(1024, TILE_CELLS // batch.num_columns)
            a = 0
            while a < n:
                b = a + _tensor_rows(min(step, n - a))
                jobs.append((_fill_tensor, (table, slice(start + a, start + b), batch.slice(a, b - a), leading)))
                a = b
            start += n
            continue
        columns = [column_values(c) for c in batch.columns]
        if table.labels is not None:
            table.labels[start:start + n] = columns[0]
        if table.weights is not None:
            table.weights[start:start + n] = columns[1]
        features = table.features[start:start + n]
        jobs += [(_fill_block, (features[a:min(n, a + block_rows)], columns[leading:], a, min(n, a + block_rows)))
                 for a in range(0, n, block_rows)]
        start += n

    cells = (start - first) * width
    if cells >= PARALLEL_CELLS and len(jobs) > 1 and (os.cpu_count() or 1) > 1:
        pool = worker_pool()
        return [pool.submit(run, *args) for run, args in jobs]
    for run, args in jobs:
        run(*args)
    return []


def finish(futures: list) -> None:
    """Wait for the copies `fill` gave to threads; raises what a copy raised."""
    for future in futures:
        future.result()


def settle(futures: list) -> None:
    """Wait for every copy, failed or not (on an error: no thread is left writing into the table)."""
    wait(futures)


class ArrowFormat(Format):
    """A format pyarrow decodes into record batches of numeric columns (CSV, Parquet)."""

    def arrow_batches(self, path, batch_rows: int | None, *, labelled: bool, weights: bool) -> Iterator:
        """One file's rows as pyarrow RecordBatches of null-free numeric columns, checked."""
        raise NotImplementedError

    def read_file(self, path, batch_rows: int | None, *, labelled: bool = True, weights: bool = False,
                  num_features: int | None = None, **options) -> Iterator[Table]:
        leading = int(labelled) + int(weights and labelled)
        for batch in self.arrow_batches(path, batch_rows, labelled=labelled, weights=weights):
            table = empty_table(batch.num_rows, batch.num_columns - leading, labelled, leading == 2)
            finish(fill(table, 0, [batch], leading))
            yield table
