"""DataProcessing: SageMaker's JSONPath subset, JoinSource=Input and OutputFilter on CSV and JSON records."""
from __future__ import annotations

import pytest

from nbsage.errors import DataError, ValidationError
from nbsage.transform import data_processing as dp

ROW = ["id7", "1", "2", "3", "4", "5", "6"]


@pytest.mark.parametrize("path, expected", [
    ("$", ROW), ("$[1:]", ROW[1:]), ("$[0,5:]", ["id7", "5", "6"]), ("$[1:3]", ["1", "2", "3"]),
    ("$[0,-1]", ["id7", "6"]), ("$[-1]", "6"), ("$[*]", ROW),
])
def test_csv_rows_take_index_paths_with_slices_that_include_their_end(path, expected):
    assert dp.JSONPath(path).select(ROW) == expected


def test_json_paths_select_keys_and_keep_the_shape():
    record = {"id": 3, "features": [1, 2], "SageMakerOutput": {"score": 0.5}}
    assert dp.JSONPath("$['id','SageMakerOutput']").select(record) == {"id": 3, "SageMakerOutput": {"score": 0.5}}
    assert dp.JSONPath("$.features").select(record) == [1, 2]
    assert dp.JSONPath("$.SageMakerOutput.score").select(record) == 0.5


@pytest.mark.parametrize("path", ["$[", "features", "$[1,]", "$..a", "$[a]", "$" + "[0]" * 25])
def test_a_path_that_does_not_parse_names_the_field_and_what_is_accepted(path):
    with pytest.raises(ValidationError, match=r"OutputFilter .*(does not parse|characters long)"):
        dp.DataProcessing.from_request({"OutputFilter": path})


def test_an_index_outside_the_record_is_an_error_naming_it():
    with pytest.raises(DataError, match="index 9 is outside the record's 7 columns"):
        dp.JSONPath("$[9]").select(ROW)


def test_join_appends_csv_columns_and_nests_json_answers():
    assert dp.join(["a", "1"], ["0.5"], "text/csv") == ["a", "1", "0.5"]
    assert dp.join({"id": 1}, {"score": 2}, "application/json") == {"id": 1, "SageMakerOutput": {"score": 2}}
    assert dp.join([1, 2], 0.5, "application/json") == {"SageMakerInput": [1, 2], "SageMakerOutput": 0.5}
    with pytest.raises(DataError, match="already has a key 'SageMakerOutput'"):
        dp.join({"SageMakerOutput": 1}, 2, "application/json")


def test_a_batch_answer_is_split_into_one_item_per_record():
    assert dp.split_answer(b"0.1\n0.2\n", "text/csv", 2) == [["0.1"], ["0.2"]]
    assert dp.split_answer(b'{"predictions": [{"score": 1}, {"score": 2}]}', "application/json", 2) == \
        [{"score": 1}, {"score": 2}]
    with pytest.raises(DataError, match="answered 1 text/csv records for a request of 2"):
        dp.split_answer(b"0.1\n", "text/csv", 2)


def test_join_source_needs_line_split_and_assembly_for_csv():
    processing = dp.DataProcessing.from_request({"JoinSource": "Input"})
    with pytest.raises(ValidationError, match="needs split_type='Line'"):
        processing.check("text/csv", "text/csv", "None", "Line")
    with pytest.raises(ValidationError, match="needs assemble_with='Line'"):
        processing.check("text/csv", "text/csv", "Line", "None")
    with pytest.raises(ValidationError, match="needs ContentType in text/csv"):
        processing.check("application/x-recordio-protobuf", "text/csv", "Line", "Line")
