"""application/x-parquet: numeric columns, label first; unsupported columns named before reading."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbsage.errors import DataError
from nbsage.formats import iter_batches, read_table, write


def test_int_float_and_bool_columns_read_as_float32(tmp_path):
    pq.write_table(pa.table({"y": [1, 0], "a": [0.5, 1.5], "b": [True, False], "c": pa.array([3, 4], pa.int8())}),
                   tmp_path / "t.parquet")
    table = read_table([tmp_path / "t.parquet"], "application/x-parquet")
    assert table.features.tolist() == [[0.5, 1, 3], [1.5, 0, 4]] and table.labels.tolist() == [1, 0]


def test_a_string_column_is_named_with_its_type(tmp_path):
    pq.write_table(pa.table({"y": [1], "city": ["Oslo"]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t\.parquet: column 'city' has type string, which is not supported"):
        read_table([tmp_path / "t.parquet"], "application/x-parquet")


def test_a_list_column_is_refused_too(tmp_path):
    pq.write_table(pa.table({"y": [1], "v": pa.array([[1.0, 2.0]])}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match="column 'v' has type list<"):
        read_table([tmp_path / "t.parquet"], "application/x-parquet")


def test_a_missing_value_names_the_column_and_row(tmp_path):
    pq.write_table(pa.table({"y": [1, 0, 1], "x": [1.0, None, 2.0]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"column 'x', row 2: missing value"):
        read_table([tmp_path / "t.parquet"], "application/x-parquet")


def test_a_file_that_is_not_parquet_says_what_it_starts_with(tmp_path):
    (tmp_path / "t.parquet").write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"t\.parquet: not a readable Parquet file \(it starts with b'1,2,'"):
        read_table([tmp_path / "t.parquet"], "application/x-parquet")


def test_row_groups_stream_in_batches(tmp_path):
    x = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    write(x, tmp_path / "t.parquet", "application/x-parquet", labels=np.arange(1000), row_group_rows=300)
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_row_groups == 4
    batches = list(iter_batches([tmp_path / "t.parquet"], "application/x-parquet", batch_rows=256))
    assert [b.num_rows for b in batches] == [256, 256, 256, 232]
    np.testing.assert_array_equal(np.concatenate([b.features for b in batches]), x)


def test_the_writer_names_the_label_column_and_keeps_dataframe_names(tmp_path):
    import pandas as pd
    write(pd.DataFrame({"age": [30, 40]}), tmp_path / "t.parquet", "application/x-parquet", labels=[1, 0])
    assert pq.read_schema(tmp_path / "t.parquet").names == ["label", "age"]
