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


@pytest.mark.parametrize("width", [3, 20, 300])  # column by column; staged; staged in column groups
def test_a_channel_reads_into_one_c_ordered_float32_matrix_whatever_the_width(tmp_path, monkeypatch, width):
    from nbsage.formats import parquet, row_copy
    monkeypatch.setattr(row_copy, "PARALLEL_CELLS", 0)  # small files, shared out among threads all the same,
    monkeypatch.setattr(row_copy, "TILE_CELLS", 0)  # in the smallest blocks (1,024 rows)
    monkeypatch.setattr(parquet, "UNIT_CELLS", 2000 * (width + 2))  # and decoded a few row groups at a time
    rng = np.random.default_rng(0)
    parts = []
    for i, rows in enumerate([3000, 0, 2500, 1]):
        x = rng.normal(size=(rows, width))
        y, w = rng.integers(0, 2, rows), rng.random(rows)
        columns = {"y": y, "w": w, **{f"f{j}": x[:, j] for j in range(width)}}
        columns["f0"] = (x[:, 0] > 0)  # a bool column among the floats
        pq.write_table(pa.table(columns), tmp_path / f"part-{i}.parquet", row_group_size=700)
        parts.append((np.column_stack([columns["f0"], x[:, 1:]]), y, w))
    table = read_table(sorted(tmp_path.glob("*.parquet")), "application/x-parquet", weights=True)
    assert table.features.dtype == np.float32 and table.features.flags.c_contiguous
    assert table.features.flags.writeable
    np.testing.assert_array_equal(table.features, np.concatenate([p[0] for p in parts]).astype(np.float32))
    np.testing.assert_array_equal(table.labels, np.concatenate([p[1] for p in parts]).astype(np.float32))
    np.testing.assert_array_equal(table.weights, np.concatenate([p[2] for p in parts]).astype(np.float32))


def test_a_missing_value_in_a_later_row_group_names_its_row_in_the_file(tmp_path, monkeypatch):
    from nbsage.formats import parquet
    monkeypatch.setattr(parquet, "UNIT_CELLS", 200)  # a row group at a time
    x = [float(i) for i in range(500)]
    x[321] = None
    pq.write_table(pa.table({"y": [1.0] * 500, "x": x}), tmp_path / "t.parquet", row_group_size=100)
    with pytest.raises(DataError, match=r"t\.parquet: column 'x', row 322: missing value"):
        read_table([tmp_path / "t.parquet"], "application/x-parquet")


def test_files_of_another_width_are_refused_before_a_row_is_decoded(tmp_path):
    pq.write_table(pa.table({"y": [1.0], "a": [0.5], "b": [1.5]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"y": [1.0], "a": [0.5]}), tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet: 1 features per record, and a\.parquet has 2"):
        read_table([tmp_path / "a.parquet", tmp_path / "b.parquet"], "application/x-parquet")
