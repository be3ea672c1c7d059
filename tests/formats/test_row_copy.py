"""Columns into rows: every way of copying gives the same C-ordered float32 matrix."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from nbsage.formats import row_copy


def batches(columns: np.ndarray, rows_each: list[int], dtype) -> list:
    out, start = [], 0
    for rows in rows_each:
        part = columns[start:start + rows]
        out.append(pa.record_batch([pa.array(part[:, j].astype(dtype)) for j in range(part.shape[1])],
                                   names=[f"c{j}" for j in range(part.shape[1])]))
        start += rows
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])  # staged by pyarrow; cast by numpy
@pytest.mark.parametrize("width", [3, 20, 200])  # column by column; one tile; column groups (numpy)
@pytest.mark.parametrize("leading", [0, 1, 2])  # no label; label; label and weight
def test_batches_land_in_their_rows_whatever_the_path(monkeypatch, dtype, width, leading):
    monkeypatch.setattr(row_copy, "PARALLEL_CELLS", 0)  # shared out among threads all the same,
    monkeypatch.setattr(row_copy, "TILE_CELLS", 0)  # in the smallest tiles (1,024 rows, less a spacing)
    rng = np.random.default_rng(width)
    columns = rng.integers(-1000, 1000, size=(5000, leading + width)).astype(dtype)
    rows_each = [2048, 1, 0, 1024, 1927]  # tiles of 1,024 and 2,048 rows are cut: their columns would collide
    table = row_copy.empty_table(10 + len(columns), width, leading >= 1, leading == 2)
    row_copy.finish(row_copy.fill(table, 10, batches(columns, rows_each, dtype), leading))
    np.testing.assert_array_equal(table.features[10:], columns[:, leading:].astype(np.float32))
    assert table.features.flags.c_contiguous and table.features.dtype == np.float32
    if leading:
        np.testing.assert_array_equal(table.labels[10:], columns[:, 0].astype(np.float32))
    if leading == 2:
        np.testing.assert_array_equal(table.weights[10:], columns[:, 1].astype(np.float32))


def test_small_copies_are_done_before_fill_returns():
    columns = np.arange(40, dtype=np.float32).reshape(4, 10)
    table = row_copy.empty_table(4, 9, True, False)
    assert row_copy.fill(table, 0, batches(columns, [4], np.float32), 1) == []
    np.testing.assert_array_equal(table.features, columns[:, 1:])


def test_tensor_tiles_are_never_a_multiple_of_256_rows():
    assert row_copy._tensor_rows(2048) == 2032 and row_copy._tensor_rows(2278) == 2278
    assert row_copy._tensor_rows(256) % 256 and row_copy._tensor_rows(16) == 16
