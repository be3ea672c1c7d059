"""application/x-parquet: first column the label, the rest numeric features."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import Table
from nbsage.formats.text_csv import fill_column


def read_table(files: list[Path], weights: bool = False, num_features: int | None = None) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq
    parts = []
    for path in files:
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
        for name, column in zip(table.column_names, table.columns):
            if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                    or pa.types.is_boolean(column.type)):
                raise DataError(f"{path}: column {name!r} has type {column.type}, which is not supported; "
                                "application/x-parquet channels need numeric (int, float or bool) columns, label first")
            if column.null_count:
                raise DataError(f"{path}: column {name!r} has {column.null_count} missing value(s)")
        if table.num_rows == 0:
            continue
        matrix = np.empty((table.num_rows, table.num_columns), dtype=np.float32)
        for j, column in enumerate(table.columns):
            fill_column(matrix[:, j], column)
        parts.append(matrix)
    if not parts:
        raise DataError("no rows: " + (", ".join(map(str, files)) if files else "the channel has no files"))
    widths = {p.shape[1] for p in parts}
    if len(widths) > 1:
        raise DataError(f"Parquet files of one channel have different column counts: {sorted(widths)}")
    data = np.concatenate(parts) if len(parts) > 1 else parts[0]
    leading = 2 if weights else 1
    if data.shape[1] <= leading:
        raise DataError(f"{files[0]}: needs the label{' and weight' if weights else ''} column then features")
    return Table(features=np.ascontiguousarray(data[:, leading:]), labels=data[:, 0].copy(),
                 weights=data[:, 1].copy() if weights else None)
