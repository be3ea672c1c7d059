"""Contract tests generated from the formats registry, as scikit-learn's estimator_checks run over
every estimator: every registered format round-trips a table (or declares why it cannot hold one),
every channel writer's file reads back as the frame it was given, and every response format reads
back the records it wrote. A new Format is checked by being registered; nothing here names one."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from nbsage import formats
from nbsage.errors import InvalidRequest, UnsupportedContentType


def _id(fmt) -> str:
    return fmt.content_type + ("" if fmt.s3_data_type == "S3Prefix" else f"[{fmt.s3_data_type}]")


FORMATS = formats.registered()
TABLES = [f for f in FORMATS if not f.not_a_table]
CHANNEL_WRITERS = formats.channel_content_types()
RESPONSE_WRITERS = formats.content_types_with("write_records")
REQUEST_READERS = formats.content_types_with("read_request")

FRAME = pd.DataFrame({"label": [0.0, 1.0, 2.0, 1.0], "x1": [1.5, -2.0, 0.0, 4.25], "x2": [0.5, 0.0, 3.0, 2.0]})


@pytest.fixture
def rows():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(97, 5)).astype(np.float32)
    x[x < -0.8] = 0  # zeros, which sparse writers leave out
    y = rng.integers(0, 4, 97).astype(np.float32)
    return x, y


def dense(features):
    return features.toarray() if hasattr(features, "toarray") else np.asarray(features)


def test_the_registry_lists_every_format_module_and_names_each_content_type_once():
    assert formats.names() == sorted(set(formats.names()))
    assert set(formats.names()) >= {"text/csv", "text/libsvm", "application/x-parquet", "application/jsonlines",
                                    "application/x-recordio-protobuf", "application/json"}
    for fmt in FORMATS:
        assert formats.format_for(fmt.content_type, fmt.s3_data_type) is fmt
        for alias in fmt.aliases:
            assert formats.format_for(alias, fmt.s3_data_type) is fmt


@pytest.mark.parametrize("fmt", FORMATS, ids=_id)
def test_a_format_that_is_not_rows_of_numbers_says_why_it_cannot_hold_a_table(fmt):
    if not fmt.tabular:
        assert fmt.not_a_table, f"{_id(fmt)} is not tabular and does not declare why"


@pytest.mark.parametrize("fmt", FORMATS, ids=_id)
def test_every_format_round_trips_a_labelled_table(tmp_path, rows, fmt):
    if fmt.not_a_table:
        pytest.skip(f"{_id(fmt)} cannot hold a table: {fmt.not_a_table}")
    x, y = rows
    path = tmp_path / f"table{fmt.suffix}"
    fmt.write(x, path, labels=y)
    table = fmt.read_table([path])
    np.testing.assert_array_equal(dense(table.features), x)
    np.testing.assert_array_equal(table.labels, y)


@pytest.mark.parametrize("fmt", [f for f in TABLES if f.sparse], ids=_id)
def test_every_sparse_format_round_trips_a_sparse_table_as_sparse(tmp_path, rows, fmt):
    x, y = rows
    path = tmp_path / f"sparse{fmt.suffix}"
    fmt.write(sp.csr_matrix(x), path, labels=y)
    table = fmt.read_table([path], num_features=x.shape[1])
    assert hasattr(table.features, "tocsr")
    np.testing.assert_array_equal(table.features.toarray(), x)
    np.testing.assert_array_equal(table.labels, y)


@pytest.mark.parametrize("content_type", CHANNEL_WRITERS)
def test_data_in_memory_written_as_a_channel_loads_back_with_the_same_values(tmp_path, content_type):
    path, ct = formats.write_channel(FRAME, tmp_path, "train", content_type)
    assert ct == content_type and path.name == f"train{formats.format_for(ct).suffix}"
    frame = formats.read_frame(path.read_bytes(), path.name, ct)
    values = np.column_stack([np.asarray(frame[c], dtype=float) for c in frame.columns])  # sparse columns too
    np.testing.assert_allclose(values, FRAME.to_numpy())


@pytest.mark.parametrize("content_type", CHANNEL_WRITERS)
def test_a_channel_file_is_gzipped_when_the_channel_says_gzip(tmp_path, content_type):
    path, _ = formats.write_channel(FRAME, tmp_path, "train", content_type, compression="Gzip")
    assert path.name.endswith(".gz") and path.read_bytes()[:2] == b"\x1f\x8b"


def test_aliases_and_parameters_name_the_same_channel_writer(tmp_path):
    for spelling in ("csv", "TEXT/CSV", "text/csv; label_size=1"):
        assert formats.write_channel(FRAME, tmp_path / spelling.replace("/", "_"), "t", spelling)[1] == "text/csv"


def test_a_content_type_no_channel_writer_has_is_refused_naming_the_writable_ones(tmp_path):
    with pytest.raises(UnsupportedContentType, match=r"cannot write in-memory data as 'image/png'.*text/csv"):
        formats.write_channel(FRAME, tmp_path, "train", "image/png")


@pytest.mark.parametrize("accept", RESPONSE_WRITERS)
def test_every_response_format_reads_back_the_records_it_wrote(accept):
    records = [{"score": 0.25, "predicted_label": 0}, {"score": 0.75, "predicted_label": 1}]
    body = formats.write_records(records, accept, column="predicted_label")
    decoded = formats.decode(body, accept)
    if isinstance(decoded, dict):
        decoded = decoded["predictions"]
    if isinstance(decoded, np.ndarray):
        assert decoded.tolist() == [0, 1]
    else:
        assert decoded == records


@pytest.mark.parametrize("content_type", REQUEST_READERS)
def test_every_request_format_gives_each_instance_with_where_it_came_from(content_type):
    instances = [{"start": "2024-01-01", "target": [1, 2]}, {"start": "2024-02-01", "target": [3]}]
    body = formats.write_records(instances, content_type, envelope="instances")
    request = formats.read_request(body, content_type)
    assert [value for _, value in request.instances] == instances
    assert all(where for where, _ in request.instances)
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        formats.read_request(b'{"instances": [', content_type)


ARRAY_WRITERS = formats.array_writers()


@pytest.mark.parametrize("content_type", ARRAY_WRITERS)
def test_every_array_a_default_output_fn_writes_its_default_input_fn_reads_back(content_type):
    prediction = np.array([[0.25, 1.0], [3.5, -2.0]])
    np.testing.assert_array_equal(formats.read_array(formats.write_array(prediction, content_type), content_type),
                                  prediction)


def test_the_default_array_readers_and_writers_are_the_toolkits():
    assert formats.array_readers() == ["application/json", "application/x-npy", "application/x-npz", "text/csv"]
    assert ARRAY_WRITERS == ["application/json", "application/x-npy", "text/csv"]
    sparse = sp.random(3, 4, density=0.5, format="csr", random_state=0)
    buf = io.BytesIO()
    sp.save_npz(buf, sparse)  # as the SDK's SparseMatrixSerializer sends it
    assert (formats.read_array(buf.getvalue(), "application/x-npz") != sparse).nnz == 0
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        formats.read_array("[1, 2", "application/json")
