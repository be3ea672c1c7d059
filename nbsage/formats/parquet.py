"""application/x-parquet: the first column the label, the rest numeric features.

Read with pyarrow from memory-mapped files: for `read_table` every file's schema and row count
first (from the footers), then the result allocated once and each file decoded (pyarrow's threads)
and copied into its rows; row batches for `iter_batches`. Columns must be int, float or bool
without missing values; any other type is named with its file and column before a row is read.

The copy of the decoded columns into rows is `nbsage.formats.row_copy`, shared with text/csv.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import DEFAULT_BATCH_ROWS, Table, as_frame, as_rows, check_labels, describe_files, register
from nbsage.formats.row_copy import ArrowFormat, empty_table, fill, finish, settle

UNIT_CELLS = 1 << 26    # read_table decodes a larger file in runs of row groups of about this many cells

CONTENT_TYPE = "application/x-parquet"
RULE = "application/x-parquet channels need numeric (int, float or bool) columns, label first"


def _open(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:  # mapped: pages are decoded from the page cache, not first copied into read buffers
        return pq.ParquetFile(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as e:
        with open(path, "rb") as f:
            head = f.read(4)
        why = (f"it starts with {head!r}, Parquet files start with b'PAR1'" if head != b"PAR1"
               else " ".join(str(e).split()))
        raise DataError(f"{path}: not a readable Parquet file ({why})") from None


def check_schema(path: Path, schema) -> None:
    """Every column numeric, or a DataError naming the file, column and type."""
    import pyarrow as pa
    for field in schema:
        t = field.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise DataError(f"{path}: column {field.name!r} has type {t}, which is not supported; {RULE}")


def _check_nulls(path: Path, data, first_row: int) -> None:
    for name, column in zip(data.column_names, data.columns):
        if column.null_count:
            import pyarrow.compute as pc
            row = int(pc.index(pc.is_null(column), True).as_py())
            raise DataError(f"{path}: column {name!r}, row {first_row + row + 1}: missing value "
                            f"({column.null_count} in this part); {RULE}, and no missing values")


def _as_numbers(data):
    """bool columns as uint8 (numpy reads Arrow's bit-packed booleans only through a cast)."""
    import pyarrow as pa
    if not any(pa.types.is_boolean(f.type) for f in data.schema):
        return data
    cols = [c.cast(pa.uint8()) if pa.types.is_boolean(c.type) else c for c in data.columns]
    return type(data).from_arrays(cols, names=data.column_names)


def _pieces(pf, rows: int) -> list[list[int] | None]:
    """A file's row groups in runs of at least `rows` rows (None: the whole file in one)."""
    meta = pf.metadata
    if meta.num_row_groups <= 1 or meta.num_rows <= rows:
        return [None]
    pieces, run, count = [], [], 0
    for i in range(meta.num_row_groups):
        run.append(i)
        count += meta.row_group(i).num_rows
        if count >= rows:
            pieces.append(run)
            run, count = [], 0
    if run:
        pieces.append(run)
    return pieces


@register
class ParquetFormat(ArrowFormat):
    """application/x-parquet: one record per row, label first."""

    content_type = CONTENT_TYPE
    suffix = ".parquet"

    def _checked(self, path: Path, leading: int):
        """The file opened, its columns checked: all numeric, and more than the label (and weight)."""
        pf = _open(path)
        schema = pf.schema_arrow
        check_schema(path, schema)
        if len(schema) <= leading:
            raise DataError(f"{path}: has {len(schema)} column(s); needs the label"
                            f"{' and weight' if leading == 2 else ''} column then features")
        return pf

    def _whole(self, path: Path, pf, row_groups: list[int] | None = None, first_row: int = 0):
        """The file's rows (those of `row_groups`: None, all) as one pyarrow Table, checked.

        Decoded by pyarrow's threads, a column chunk each.
        """
        import pyarrow as pa
        try:  # (pq.read_table would import pandas: 0.3-0.9 s at a job's start)
            data = pf.read() if row_groups is None else pf.read_row_groups(row_groups)
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(e).split())})") from None
        expected = (pf.metadata.num_rows if row_groups is None
                    else sum(pf.metadata.row_group(i).num_rows for i in row_groups))
        if data.num_rows != expected:
            raise DataError(f"{path}: not a readable Parquet file (its footer declares {expected} rows "
                            f"from row {first_row + 1}, its pages hold {data.num_rows})")
        _check_nulls(path, data, first_row)
        return _as_numbers(data)

    def arrow_batches(self, path: Path, batch_rows: int | None, *, labelled: bool = True,
                      weights: bool = False) -> Iterator:
        import pyarrow as pa
        pf = self._checked(path, int(labelled) + int(weights and labelled))
        if pf.metadata.num_rows == 0:
            return
        if batch_rows is None:  # the whole file
            yield from self._whole(path, pf).to_batches()
            return
        try:
            row = 0
            for batch in pf.iter_batches(batch_size=batch_rows):
                _check_nulls(path, batch, row)
                yield _as_numbers(batch)
                row += batch.num_rows
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(e).split())})") from None

    def read_table(self, files, *, labelled: bool = True, weights: bool = False, num_features: int | None = None,
                   **options) -> Table:
        """Every row of the channel in one Table, allocated once from the files' footers.

        A file (or a run of row groups of a large one) is decoded while the one before it is
        copied into its rows, so no more than two files' columns are held besides the result.
        """
        files = [Path(f) for f in files]
        leading = int(labelled) + int(weights and labelled)
        parts, first = [], None
        for path in files:
            pf = self._checked(path, leading)
            if pf.metadata.num_rows == 0:
                continue
            width = len(pf.schema_arrow) - leading
            if num_features is not None and width != num_features:
                raise DataError(f"{path}: {width} features per record, expected {num_features} "
                                "as in the train channel")
            if first is None:
                first = (path, width)
            elif width != first[1]:
                raise DataError(f"{path}: {width} features per record, and {first[0].name} has {first[1]}; "
                                "every file of a channel needs the same columns")
            parts.append((path, pf))
        if not parts:
            raise DataError("no rows: " + describe_files(files))
        table = empty_table(sum(pf.metadata.num_rows for _, pf in parts), first[1], labelled, leading == 2)
        start, pending = 0, []
        try:
            for path, pf in parts:
                row = 0
                for groups in _pieces(pf, UNIT_CELLS // (first[1] + leading)):
                    data = self._whole(path, pf, groups, row)
                    finish(pending)
                    pending = fill(table, start + row, data.to_batches(), leading)
                    row += data.num_rows
                start += row
            finish(pending)
        finally:
            settle(pending)  # on an error too: no thread is left writing into the table
        return table

    def write_channel(self, data, path: Path, *, labelled: bool = True) -> None:
        """The data as one Parquet file, keeping a DataFrame's column types (names become strings)."""
        frame = as_frame(data).copy()
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(path, index=False)

    def read_frame(self, data: bytes, name: str, header: bool | None = None):
        import io

        import pandas as pd
        return pd.read_parquet(io.BytesIO(data))

    def write(self, obj, path_or_file, labels=None, row_group_rows: int = 1 << 20, **options) -> None:
        """Rows as a Parquet file: a `label` column first (when labels are given), then the features.

        DataFrames keep their column names; arrays get `f0`, `f1`, ...; scipy.sparse is written densely.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq
        rows, names = as_rows(obj, "application/x-parquet writer")
        labels = check_labels(labels, rows.shape[0])
        names = names or [f"f{j}" for j in range(rows.shape[1])]
        if labels is not None:
            names = ["label", *names]
        writer = None
        try:
            for start in range(0, max(rows.shape[0], 1), row_group_rows):
                part = rows[start:start + row_group_rows]
                part = part.toarray() if hasattr(part, "toarray") else part
                cols = [pa.array(np.ascontiguousarray(part[:, j])) for j in range(part.shape[1])]
                if labels is not None:
                    cols.insert(0, pa.array(np.asarray(labels[start:start + row_group_rows])))
                table = pa.Table.from_arrays(cols, names=names)
                if writer is None:
                    sink = str(path_or_file) if not hasattr(path_or_file, "write") else path_or_file
                    if isinstance(sink, str):
                        Path(sink).parent.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(sink, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def read_table(files: list[Path], weights: bool = False, num_features: int | None = None,
               labelled: bool = True) -> Table:
    """An application/x-parquet channel: label (and weight) first, then features."""
    return ParquetFormat().read_table(files, labelled=labelled, weights=weights, num_features=num_features)


def iter_batches(files: list[Path], batch_rows: int = DEFAULT_BATCH_ROWS, labelled: bool = True) -> Iterator[Table]:
    """An application/x-parquet channel as Tables of batch_rows rows."""
    return ParquetFormat().iter_batches(files, batch_rows, labelled=labelled)
