"""RecordIO-protobuf: byte-compatible with the SageMaker Python SDK both ways, and clear errors."""
from __future__ import annotations

import io
import os
import struct

import numpy as np
import pytest
import scipy.sparse as sp

from nbsage.errors import DataError
from nbsage.formats import read_table
from nbsage.formats import recordio_protobuf as rp

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
sdk = pytest.importorskip("sagemaker.amazon.common")


@pytest.fixture
def dense():
    rng = np.random.default_rng(0)
    return rng.normal(size=(257, 13)).astype(np.float32), rng.integers(0, 3, 257).astype(np.float32)


def test_dense_float32_bytes_equal_the_sdk_writer(dense):
    X, y = dense
    f = io.BytesIO()
    sdk.write_numpy_to_dense_tensor(f, X, y)
    assert rp.encode_dense(X, y) == f.getvalue()
    f = io.BytesIO()
    sdk.write_numpy_to_dense_tensor(f, X)
    assert rp.encode_dense(X) == f.getvalue()


def test_files_the_sdk_writes_read_back_exactly(dense, tmp_path):
    X, y = dense
    for features, labels in ((X, y), (X.astype(np.float64), y.astype(np.float64)), (X, np.arange(257))):
        f = io.BytesIO()
        sdk.write_numpy_to_dense_tensor(f, features, labels)
        got_x, got_y = rp.decode(f.getvalue())
        np.testing.assert_array_equal(got_x, features.astype(np.float32))
        np.testing.assert_array_equal(got_y, labels.astype(np.float32))


def test_files_nbsage_writes_read_back_exactly_with_the_sdk_reader(dense):
    X, y = dense
    records = sdk.read_records(io.BytesIO(rp.encode_dense(X, y)))
    assert len(records) == len(X)
    for i in (0, 100, 256):
        np.testing.assert_array_equal(np.array(records[i].features["values"].float32_tensor.values, np.float32), X[i])
        assert records[i].label["values"].float32_tensor.values[0] == y[i]


def test_sparse_round_trip_both_ways():
    S = sp.random(40, 25, density=0.15, format="csr", dtype=np.float32, random_state=1)
    labels = np.arange(40, dtype=np.float32)
    f = io.BytesIO()
    sdk.write_spmatrix_to_sparse_tensor(f, S, labels)
    assert rp.encode_sparse(S, labels) == f.getvalue()
    M, got = rp.decode(f.getvalue())
    assert (M != S).nnz == 0 and M.shape == S.shape
    np.testing.assert_array_equal(got, labels)
    records = sdk.read_records(io.BytesIO(rp.encode_sparse(S, labels)))
    assert list(records[3].features["values"].float32_tensor.shape) == [25]


def test_framing_and_padding_are_as_specified():
    payload_lengths = []
    data = rp.encode_dense(np.ones((3, 3), dtype=np.float32), np.zeros(3, dtype=np.float32))
    offset = 0
    while offset < len(data):
        magic, word = struct.unpack_from("<II", data, offset)
        assert magic == 0xCED7230A and word >> 29 == 0
        length = word & ((1 << 29) - 1)
        payload_lengths.append(length)
        offset += 8 + length + (4 - length % 4) % 4
        assert offset % 4 == 0
    assert offset == len(data) and len(payload_lengths) == 3


def test_multi_part_records_are_reassembled():
    record = rp._record([1.0, 2.0], 1.0).SerializeToString()
    head, tail = record[:5], record[5:]
    parts = b""
    for cflag, part in ((1, head), (3, tail)):
        parts += rp._MAGIC_BYTES + struct.pack("<I", (cflag << 29) | len(part)) + part + b"\0" * ((4 - len(part) % 4) % 4)
    # dmlc puts the magic back between parts; a payload split at a magic occurrence round-trips
    joined = list(rp.iter_payloads(io.BytesIO(parts)))
    assert joined == [head + rp._MAGIC_BYTES + tail]


def test_truncated_file_names_the_record(tmp_path):
    data = rp.encode_dense(np.ones((4, 5), dtype=np.float32), np.ones(4, dtype=np.float32))
    path = tmp_path / "train.pbr"
    path.write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"train.pbr: truncated RecordIO file: record 3"):
        read_table([path], "application/x-recordio-protobuf")


def test_wrong_magic_number_names_the_byte_offset(tmp_path):
    path = tmp_path / "bad.pbr"
    path.write_bytes(b"\x01\x02\x03\x04" + b"\x00" * 12)
    with pytest.raises(DataError, match=r"bad.pbr: record 0 at byte 0: wrong magic number 0x04030201"):
        read_table([path], "application/x-recordio-protobuf")


def test_channel_reads_as_a_labelled_table(dense, tmp_path):
    X, y = dense
    (tmp_path / "a.pbr").write_bytes(rp.encode_dense(X[:100], y[:100]))
    (tmp_path / "b.pbr").write_bytes(rp.encode_dense(X[100:], y[100:]))
    table = read_table([tmp_path / "a.pbr", tmp_path / "b.pbr"], "application/x-recordio-protobuf")
    np.testing.assert_array_equal(table.features, X)
    np.testing.assert_array_equal(table.labels, y)


# ---- streaming (iter_batches) --------------------------------------------------------------------
def test_batches_of_an_sdk_written_file_equal_the_whole_file(dense, tmp_path):
    X, y = dense
    with open(tmp_path / "train.pbr", "wb") as f:
        sdk.write_numpy_to_dense_tensor(f, X, y)
    batches = list(rp.iter_batches([tmp_path / "train.pbr"], batch_rows=100))
    assert [b.num_rows for b in batches] == [100, 100, 57]
    np.testing.assert_array_equal(np.concatenate([b.features for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), y)


def test_a_file_that_changes_layout_midway_falls_back_to_protobuf_for_the_rest(dense, tmp_path):
    X, y = dense
    S = sp.csr_matrix(np.where(X[:50] > 0, X[:50], 0))
    (tmp_path / "mixed.pbr").write_bytes(rp.encode_dense(X, y) + rp.encode_sparse(S, y[:50]))
    batches = list(rp.iter_batches([tmp_path / "mixed.pbr"], batch_rows=128))
    assert sum(b.num_rows for b in batches) == 307
    table = read_table([tmp_path / "mixed.pbr"], "application/x-recordio-protobuf")
    np.testing.assert_array_equal(table.features.toarray()[257:], S.toarray())


def test_errors_deep_in_a_streamed_file_count_records_from_the_start(dense, tmp_path):
    X, y = dense
    data = rp.encode_dense(X, y)
    (tmp_path / "cut.pbr").write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"cut\.pbr: truncated RecordIO file: record 256 at byte \d+ declares"):
        list(rp.iter_batches([tmp_path / "cut.pbr"], batch_rows=100))
    size = len(data) // 257
    bad = bytearray(data)
    bad[size * 200:size * 200 + 4] = b"\x00\x00\x00\x00"
    (tmp_path / "magic.pbr").write_bytes(bytes(bad))
    with pytest.raises(DataError, match=rf"magic\.pbr: record 200 at byte {size * 200}: wrong magic number 0x00000000"):
        list(rp.iter_batches([tmp_path / "magic.pbr"], batch_rows=64))


def test_records_without_labels_are_refused_for_training_and_read_with_label_size_0(dense, tmp_path):
    X, _ = dense
    (tmp_path / "x.pbr").write_bytes(rp.encode_dense(X))
    with pytest.raises(DataError, match=r"x\.pbr: record 0 has no label\['values'\]"):
        read_table([tmp_path / "x.pbr"], "application/x-recordio-protobuf")
    table = read_table([tmp_path / "x.pbr"], "application/x-recordio-protobuf;label_size=0")
    assert table.labels is None and table.features.shape == X.shape


def test_frame_parts_equals_frame_when_the_payload_holds_no_magic():
    payload = bytes(range(200))
    assert rp.frame_parts(payload) == rp.frame(payload)
