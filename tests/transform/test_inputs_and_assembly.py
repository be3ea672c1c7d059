"""Input objects (S3Prefix folders and key prefixes, ManifestFile) and how answers are assembled per record."""
from __future__ import annotations

import json

import pytest

from nbsage.errors import DataError
from nbsage.transform import data_processing as dp
from nbsage.transform.engine import Settings, _output, _request_body
from nbsage.transform.inputs import list_objects
from nbsage.transform.records import Batch


def test_a_prefix_lists_objects_under_it_with_their_relative_names_and_skips_hidden_files(tmp_path):
    (tmp_path / "in" / "dir").mkdir(parents=True)
    for name in ("part-0.csv", "part-1.csv", "dir/part-2.csv", "other.csv", "_SUCCESS", ".part-0.csv.crc"):
        (tmp_path / "in" / name).write_text("1\n")
    assert [o.relative for o in list_objects(str(tmp_path / "in"))] == [
        "dir/part-2.csv", "other.csv", "part-0.csv", "part-1.csv"]
    assert [o.relative for o in list_objects(str(tmp_path / "in" / "part-"))] == ["part-0.csv", "part-1.csv"]
    assert [o.relative for o in list_objects(str(tmp_path / "in" / "other.csv"))] == ["other.csv"]
    with pytest.raises(DataError, match="holds no objects"):
        list_objects(str(tmp_path / "nothing-here"))


def test_a_manifest_names_objects_relative_to_its_prefix(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "x.csv").write_text("1\n")
    (tmp_path / "data" / "y.csv").write_text("2\n")
    manifest = tmp_path / "m.manifest"
    manifest.write_text(json.dumps([{"prefix": str(tmp_path / "data") + "/"}, "a/x.csv", "y.csv"]))
    assert [o.relative for o in list_objects(str(manifest), "ManifestFile")] == ["a/x.csv", "y.csv"]
    manifest.write_text(json.dumps([{"prefix": str(tmp_path / "data")}, "missing.csv"]))
    with pytest.raises(DataError, match=r"item 2: .*missing\.csv does not exist"):
        list_objects(str(manifest), "ManifestFile")


def _settings(**processing) -> Settings:
    return Settings(split_type="Line", content_type="application/jsonlines", accept="application/jsonlines",
                    assemble_with="Line", processing=dp.DataProcessing.from_request(processing))


def test_json_lines_records_are_filtered_joined_under_sagemaker_output_and_filtered_again():
    settings = _settings(InputFilter="$.features", JoinSource="Input", OutputFilter="$['id','SageMakerOutput']")
    batch = Batch(b'{"id": 1, "features": [1, 2]}\n{"id": 2, "features": [3, 4]}\n', 1, 2)
    assert _request_body(batch, settings) == b'[1,2]\n[3,4]\n'
    out = _output(batch, b'{"score": 0.1}\n{"score": 0.9}', settings)
    assert [json.loads(line) for line in out.splitlines()] == [
        {"id": 1, "SageMakerOutput": {"score": 0.1}}, {"id": 2, "SageMakerOutput": {"score": 0.9}}]


def test_without_data_processing_an_answer_gets_one_newline_with_assemble_with_line():
    settings = Settings(split_type="Line", assemble_with="Line")
    batch = Batch(b"1,2\n3,4\n", 1, 2)
    assert _request_body(batch, settings) is batch.body
    assert _output(batch, b"0.1\n0.2", settings) == b"0.1\n0.2\n"
    assert _output(batch, b"0.1\n0.2\n", settings) == b"0.1\n0.2\n"
    assert _output(batch, b"0.1\n0.2", Settings(assemble_with="None")) == b"0.1\n0.2"
