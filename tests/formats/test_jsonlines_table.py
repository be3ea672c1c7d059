"""application/jsonlines as a channel of labelled records: {"features": [...], "label": y}, dense or
sparse, gzip; a record missing a required field names its file and line."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from nbsage.errors import DataError
from nbsage.formats import jsonlines, read_features, read_table


def lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_dense_sparse_and_data_shaped_records_read_into_one_table(tmp_path):
    path = lines(tmp_path / "t.jsonl", [
        {"features": [1, 2, 0], "label": 1},
        {"features": {"keys": [2], "shape": [3], "values": [5]}, "label": 0},
        {"data": {"features": {"values": [0, 0, 1]}}, "label": [1]},
    ])
    table = read_table([path], "application/jsonlines")
    assert table.features.toarray().tolist() == [[1, 2, 0], [0, 0, 5], [0, 0, 1]]
    assert table.labels.tolist() == [1, 0, 1]


def test_a_record_missing_its_label_names_the_file_and_line(tmp_path):
    path = lines(tmp_path / "t.jsonl", [{"features": [1], "label": 1}, {"features": [2]}])
    with pytest.raises(DataError, match=r"t\.jsonl line 2: record has no 'label' field \(it has 'features'\)"):
        read_table([path], "application/jsonlines")


def test_a_record_missing_its_features_names_the_file_and_line(tmp_path):
    path = lines(tmp_path / "t.jsonl", [{"label": 1, "x": [1]}])
    with pytest.raises(DataError, match=r"line 1: record has no 'features' field \(it has 'label', 'x'\)"):
        read_table([path], "application/jsonlines")


def test_unlabelled_records_need_no_label(tmp_path):
    path = lines(tmp_path / "t.jsonl", [{"features": [1, 2]}])
    assert read_table([path], "application/jsonlines;label_size=0").labels is None


def test_a_line_that_is_not_json_names_the_line(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"features": [1], "label": 1}\n{"features": [1\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        read_table([tmp_path / "t.jsonl"], "application/jsonlines")


def test_gzipped_without_the_suffix_is_read(tmp_path):
    (tmp_path / "t").write_bytes(gzip.compress(b'{"features": [1, 2], "label": 0}\n'))
    assert read_table([tmp_path / "t"], "application/jsonlines").features.tolist() == [[1, 2]]


def test_require_fields_is_the_check_algorithms_use(tmp_path):
    path = lines(tmp_path / "ts.jsonl", [{"start": "2020-01-01", "target": [1, 2]}, {"target": [3]}])
    with pytest.raises(DataError, match=r"ts\.jsonl line 2: record has no 'start' field"):
        list(jsonlines.iter_records([path], required=("start", "target")))


def test_inference_requests_go_through_the_same_registry():
    body = b'{"features": [1, 2]}\n{"features": [3, 4]}\n'
    assert read_features(body, "application/jsonlines").tolist() == [[1, 2], [3, 4]]
    assert read_features(b'{"instances": [{"features": [5]}]}', "application/json").tolist() == [[5]]


def test_written_records_carry_weights_when_given(tmp_path):
    jsonlines.write_rows(np.eye(2), tmp_path / "w.jsonl", labels=[1, 0], weights=[2, 1])
    first = json.loads((tmp_path / "w.jsonl").read_text().splitlines()[0])
    assert first == {"features": [1.0, 0.0], "label": 1, "weight": 2}
    assert read_table([tmp_path / "w.jsonl"], "application/jsonlines", weights=True).weights.tolist() == [2, 1]
