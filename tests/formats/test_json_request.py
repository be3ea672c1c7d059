"""SageMaker's common JSON / JSON Lines inference request shapes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nbsage.errors import InvalidRequest, NBSageError
from nbsage.formats.json_request import read_instances


def body(doc) -> bytes:
    return json.dumps(doc).encode()


def test_dense_features_records():
    x = read_instances(body({"instances": [{"features": [1.5, 16.0, 14.0]}, {"features": [0, 1, 2]}]}))
    assert x.dtype == np.float32
    assert x.tolist() == [[1.5, 16.0, 14.0], [0.0, 1.0, 2.0]]


def test_data_features_values_records():
    x = read_instances(body({"instances": [{"data": {"features": {"values": [1.5, 16.0, 14.0, 23.0]}}}]}))
    assert x.tolist() == [[1.5, 16.0, 14.0, 23.0]]


def test_sparse_records_become_dense_rows_of_their_shape():
    doc = {"instances": [{"data": {"features": {"keys": [1, 3], "shape": [5], "values": [1, 4]}}},
                         {"features": [0, 0, 2, 0, 0]}]}
    assert read_instances(body(doc)).tolist() == [[0, 1, 0, 4, 0], [0, 0, 2, 0, 0]]


def test_sparse_output_keeps_the_matrix_sparse():
    doc = {"instances": [{"data": {"features": {"keys": [3, 1], "shape": [2000], "values": [4, 1]}}}]}
    m = read_instances(body(doc), sparse=True)
    assert m.shape == (1, 2000) and m.nnz == 2
    assert m[0, 1] == 1 and m[0, 3] == 4


def test_jsonlines_holds_one_record_per_line_and_skips_blank_lines():
    text = '{"features": [1, 2]}\n\n{"data": {"features": {"values": [3, 4]}}}\n'
    x = read_instances(text.encode(), "application/jsonlines")
    assert x.tolist() == [[1, 2], [3, 4]]


def test_content_type_parameters_are_ignored():
    x = read_instances(body({"instances": [{"features": [1]}]}), "application/json; charset=utf-8")
    assert x.shape == (1, 1)


def test_a_single_record_or_a_list_of_records_is_accepted():
    assert read_instances(body({"features": [1, 2]})).tolist() == [[1, 2]]
    assert read_instances(body([{"features": [1, 2]}, [3, 4]])).tolist() == [[1, 2], [3, 4]]
    assert read_instances(body([1.5, 2])).tolist() == [[1.5, 2]]


def test_num_features_is_checked_against_every_record():
    doc = {"instances": [{"features": [1, 2, 3]}, {"features": [1, 2]}]}
    with pytest.raises(InvalidRequest, match=r"instances\[0\]: has 3 features; the model expects 2"):
        read_instances(body(doc), num_features=2)
    sparse = {"instances": [{"data": {"features": {"keys": [0], "shape": [10], "values": [1]}}}]}
    with pytest.raises(InvalidRequest, match=r"instances\[0\]: has 10 features; the model expects 4"):
        read_instances(body(sparse), num_features=4)


def test_records_of_different_widths_name_the_odd_record():
    doc = {"instances": [{"features": [1, 2, 3]}, {"features": [1, 2, 3]}, {"features": [1, 2]}]}
    with pytest.raises(InvalidRequest, match=r"instances\[2\]: has 2 features; instances\[0\] has 3"):
        read_instances(body(doc))


def test_invalid_json_names_line_and_column():
    with pytest.raises(InvalidRequest, match="not valid JSON.*line 1 column"):
        read_instances(b'{"instances": [{"features": [1, 2}]}')


def test_missing_instances_says_what_is_expected():
    with pytest.raises(InvalidRequest, match=r"no 'instances' \(found 'rows'\).*\"instances\""):
        read_instances(body({"rows": [[1, 2]]}))
    with pytest.raises(InvalidRequest, match="'instances' must be a list"):
        read_instances(body({"instances": {"features": [1]}}))


def test_a_record_that_is_not_an_object_names_its_index():
    with pytest.raises(InvalidRequest, match=r"instances\[1\]: a record must be an object, found str"):
        read_instances(body({"instances": [{"features": [1]}, "1,2"]}))


def test_a_record_without_features_names_its_keys_and_the_accepted_shapes():
    with pytest.raises(InvalidRequest, match=r"instances\[0\]: .*neither 'features' nor 'data' "
                                             r"\(it has 'values'\); expected \{\"features\""):
        read_instances(body({"instances": [{"values": [1, 2]}]}))
    with pytest.raises(InvalidRequest, match=r"'data' must be an object with 'features'"):
        read_instances(body({"instances": [{"data": [1, 2]}]}))


def test_a_value_that_is_not_a_number_is_named():
    with pytest.raises(InvalidRequest, match=r"instances\[0\]: 'features'\[1\] = \"x\" is not a number"):
        read_instances(body({"instances": [{"features": [1, "x"]}]}))
    with pytest.raises(InvalidRequest, match=r"values\[0\] = true is not a number"):
        read_instances(body({"instances": [{"data": {"features": {"values": [True]}}}]}))
    with pytest.raises(InvalidRequest, match="'features' must be a list of numbers or an object "
                                             "with 'values', found str"):
        read_instances(body({"instances": [{"features": "1,2,3"}]}))


def test_sparse_errors_name_the_problem():
    def sparse(**features):
        return body({"instances": [{"data": {"features": features}}]})
    with pytest.raises(InvalidRequest, match=r"keys\[1\] = 7 is not a feature index in \[0, 4\]"):
        read_instances(sparse(keys=[0, 7], shape=[5], values=[1, 2]))
    with pytest.raises(InvalidRequest, match="'keys' has 2 entries and 'values' 1"):
        read_instances(sparse(keys=[0, 1], shape=[5], values=[1]))
    with pytest.raises(InvalidRequest, match=r"'shape'.*one-element list"):
        read_instances(sparse(keys=[0], shape=[5, 2], values=[1]))
    with pytest.raises(InvalidRequest, match=r"'shape' missing"):
        read_instances(sparse(keys=[0], values=[1]))
    with pytest.raises(InvalidRequest, match="key 1 appears more than once"):
        read_instances(sparse(keys=[1, 1], shape=[5], values=[1, 2]))


def test_jsonlines_errors_name_the_line():
    with pytest.raises(InvalidRequest, match="line 2 is not valid JSON"):
        read_instances(b'{"features": [1]}\n{"features": [1\n', "application/jsonlines")
    with pytest.raises(InvalidRequest, match=r"application/jsonlines request, line 3: 'features'\[0\]"):
        read_instances(b'{"features": [1]}\n\n{"features": [null]}\n', "application/jsonlines")


def test_empty_and_undecodable_requests_are_rejected():
    with pytest.raises(InvalidRequest, match="no records"):
        read_instances(body({"instances": []}))
    with pytest.raises(InvalidRequest, match="no records"):
        read_instances(b"\n\n", "application/jsonlines")
    with pytest.raises(InvalidRequest, match="not UTF-8"):
        read_instances(b"\xff\xfe", "application/json")


def test_errors_are_400_nbsage_errors():
    with pytest.raises(NBSageError) as info:
        read_instances(b"[")
    assert info.value.status == 400
