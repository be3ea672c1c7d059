"""Contract tests run over every registered tabular format: what is written reads back exactly,
streaming batches equal the whole read, gzip is found by magic bytes, and the registry finds each
format by content type and alias."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from nbsage import formats
from nbsage.errors import DataError, UnsupportedContentType
from nbsage.formats import Format, Table, format_for, iter_batches, read_table, write

TABULAR = ["text/csv", "text/libsvm", "application/x-parquet", "application/x-recordio-protobuf",
           "application/jsonlines"]
SPARSE = [ct for ct in TABULAR if format_for(ct).sparse]


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(523, 7)).astype(np.float32)
    x[x < -1] = 0  # some zeros, so libsvm and sparse writers leave cells out
    y = rng.integers(0, 3, 523).astype(np.float32)
    return x, y


def dense(features):
    return features.toarray() if hasattr(features, "toarray") else features


@pytest.mark.parametrize("content_type", TABULAR)
def test_written_rows_read_back_exactly(tmp_path, rows, content_type):
    x, y = rows
    path = tmp_path / f"train{format_for(content_type).suffix}"
    write(x, path, content_type, labels=y)
    table = read_table([path], content_type)
    np.testing.assert_array_equal(dense(table.features), x)
    np.testing.assert_array_equal(table.labels, y)


@pytest.mark.parametrize("content_type", TABULAR)
def test_streamed_batches_have_batch_rows_and_equal_the_whole_read(tmp_path, rows, content_type):
    x, y = rows
    suffix = format_for(content_type).suffix
    files = [tmp_path / f"part-{i}{suffix}" for i in range(3)]
    for i, f in enumerate(files):
        write(x[i * 200:(i + 1) * 200], f, content_type, labels=y[i * 200:(i + 1) * 200])
    batches = list(iter_batches(files, content_type, batch_rows=64, num_features=7))
    assert [b.num_rows for b in batches] == [64] * 8 + [11]
    features, labels = batches[3]  # a batch unpacks as (features, labels)
    np.testing.assert_array_equal(dense(features), x[192:256])
    np.testing.assert_array_equal(labels, y[192:256])
    whole = read_table(files, content_type)
    np.testing.assert_array_equal(dense(whole.features), x)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), whole.labels)


@pytest.mark.parametrize("content_type", TABULAR)
def test_gzip_is_found_by_magic_bytes_and_by_suffix(tmp_path, rows, content_type):
    x, y = rows
    suffix = format_for(content_type).suffix
    plain = tmp_path / f"train{suffix}"
    write(x, plain, content_type, labels=y)
    if content_type == "application/x-parquet":  # Parquet compresses inside the file
        return
    by_suffix = tmp_path / f"a{suffix}.gz"
    write(x, by_suffix, content_type, labels=y)
    assert by_suffix.read_bytes()[:2] == b"\x1f\x8b"
    by_magic = tmp_path / f"b{suffix}"
    with open(plain, "rb") as src, gzip.open(by_magic, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for path in (by_suffix, by_magic):
        np.testing.assert_array_equal(read_table([path], content_type).labels, y)


@pytest.mark.parametrize("content_type", TABULAR)
def test_a_gz_file_that_is_not_gzip_names_the_file(tmp_path, rows, content_type):
    x, y = rows
    path = tmp_path / "train.data.gz"
    write(x, tmp_path / "plain", content_type, labels=y)
    (tmp_path / "plain").rename(path)
    if content_type == "application/x-parquet":
        pytest.skip("Parquet files are not gzipped as a whole")
    with pytest.raises(DataError, match=r"train\.data\.gz: named \.gz but is not a gzip file"):
        read_table([path], content_type)


@pytest.mark.parametrize("content_type", TABULAR)
def test_dataframes_are_written_like_arrays(tmp_path, rows, content_type):
    x, y = rows
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(7)])
    path = tmp_path / f"train{format_for(content_type).suffix}"
    write(frame, path, content_type, labels=pd.Series(y))
    np.testing.assert_array_equal(dense(read_table([path], content_type).features), x)


@pytest.mark.parametrize("content_type", TABULAR)
def test_a_dataframe_with_text_is_refused_naming_the_column(tmp_path, content_type):
    frame = pd.DataFrame({"label": [1, 0], "city": ["Oslo", "Lima"]})
    with pytest.raises(DataError, match="column 'city'"):
        write(frame, tmp_path / "x", content_type)


@pytest.mark.parametrize("content_type", SPARSE)
def test_sparse_matrices_round_trip_as_sparse(tmp_path, rows, content_type):
    x, y = rows
    s = sp.csr_matrix(x)
    path = tmp_path / f"train{format_for(content_type).suffix}"
    write(s, path, content_type, labels=y)
    table = read_table([path], content_type, num_features=7)
    assert sp.issparse(table.features) and table.features.shape == (523, 7)
    np.testing.assert_array_equal(table.features.toarray(), x)


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-recordio-protobuf", "application/jsonlines",
                                          "application/x-parquet"])
def test_label_size_0_reads_every_column_as_a_feature(tmp_path, rows, content_type):
    x, _ = rows
    path = tmp_path / f"test{format_for(content_type).suffix}"
    write(x, path, content_type + ";label_size=0")
    table = read_table([path], content_type + ";label_size=0")
    assert table.labels is None
    np.testing.assert_array_equal(dense(table.features), x)


def test_every_content_type_and_alias_finds_its_format():
    for ct in formats.content_types():
        fmt = format_for(ct)
        assert isinstance(fmt, Format) and (ct == fmt.content_type or ct in fmt.aliases)
    assert format_for("text/csv; label_size=1") is format_for("csv")
    assert format_for("application/x-jsonlines") is format_for("application/jsonlines")
    manifest = format_for("application/x-recordio", s3_data_type="AugmentedManifestFile")
    assert manifest is not format_for("application/x-recordio")
    assert format_for("application/jsonlines", "AugmentedManifestFile") is manifest


def test_an_unknown_content_type_names_the_readable_ones():
    with pytest.raises(UnsupportedContentType, match="'text/tab-separated-values' has no reader.*text/csv"):
        format_for("text/tab-separated-values")


def test_the_module_helpers_current_callers_use_still_work(tmp_path, rows):
    x, y = rows
    path = tmp_path / "train.csv"
    write(x, path, "text/csv", labels=y)
    assert formats.module_for("text/csv").read_table([path]).num_features == 7
    assert formats.label_size("text/csv;label_size=0") == 0 and formats.label_size(None) == 1
    table = read_table([path], "text/csv")
    assert isinstance(table, Table) and (table.num_rows, table.num_features) == (523, 7)


def test_a_channel_with_no_rows_says_so(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="no rows"):
        read_table([tmp_path / "empty.csv"], "text/csv")


def test_files_of_one_channel_need_the_same_columns(tmp_path, rows):
    x, y = rows
    write(x, tmp_path / "a.csv", "text/csv", labels=y)
    write(x[:, :5], tmp_path / "b.csv", "text/csv", labels=y)
    with pytest.raises(DataError, match=r"b\.csv: 5 features per record, and a\.csv has 7"):
        read_table([tmp_path / "a.csv", tmp_path / "b.csv"], "text/csv")


def test_a_channel_larger_than_the_batch_is_read_with_bounded_memory(tmp_path):
    """A ~48 MB channel streamed in 2,000-row batches never holds more than a few batches."""
    import tracemalloc
    rng = np.random.default_rng(1)
    block = rng.normal(size=(20000, 60)).astype(np.float32)
    for i in range(5):
        write(block, tmp_path / f"part-{i}.pbr", "application/x-recordio-protobuf", labels=block[:, 0])
    total = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert total > 24e6
    tracemalloc.start()
    rows = 0
    for x, y in iter_batches(sorted(tmp_path.iterdir()), "application/x-recordio-protobuf", batch_rows=2000):
        rows += x.shape[0]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rows == 100000
    assert peak < total / 8, f"peak {peak / 1e6:.1f} MB for a {total / 1e6:.1f} MB channel"


@pytest.mark.parametrize("spelling, canonical", [
    ("csv", "text/csv"), ("Text/CSV; label_size=1", "text/csv"), ("text/x-libsvm", "text/libsvm"),
    ("parquet", "application/x-parquet"), ("recordio-protobuf", "application/x-recordio-protobuf"),
    ("application/x-recordio-protobuf", "application/x-recordio-protobuf"), ("jsonlines", "application/jsonlines"),
    ("application/x-jsonlines", "application/jsonlines"), ("image/jpg", "image/jpeg"), ("", "")])
def test_one_normaliser_serves_the_formats_the_algorithms_and_the_model_server(spelling, canonical):
    from nbsage.algorithms import base
    from nbsage import inference_contract as inference
    assert formats.normalize_content_type(spelling) == canonical
    assert base.normalize_content_type is formats.normalize_content_type
    if canonical:
        assert inference.check_content_type(spelling, (canonical,)) == canonical


def test_a_file_name_suggests_its_content_type_through_gzip():
    assert formats.content_type_of("s3://b/train/part-0.csv.gz") == "text/csv"
    assert formats.content_type_of("data.pbr") == "application/x-recordio-protobuf"
    assert formats.content_type_of("blob") is None
