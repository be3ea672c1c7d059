"""Content types between stages: each answer's type is the next request's; a type the next stage
cannot read fails naming both stages (the serial pipeline handler, loaded as the model server does)."""
from __future__ import annotations

import json
import tarfile

import pytest

from nbsage.runtime.serial_pipeline import PipelineStageError, load

TEXT_STAGE = '''
def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return body.upper(), "text/plain"
'''


def write_pipeline(root, pipeline_parts, first_script):
    _, _, folder, _ = pipeline_parts
    (root / "01-shout" / "model" / "code").mkdir(parents=True)
    (root / "01-shout" / "model" / "code" / "inference.py").write_text(first_script)
    (root / "02-xgb" / "model").mkdir(parents=True)
    with tarfile.open(folder / "xgboost.tar.gz") as tar:
        tar.extractall(root / "02-xgb" / "model", filter="data")
    stages = [{"Name": "shout", "Directory": "01-shout/model", "EntryPoint": "inference.py"},
              {"Name": "xgb", "Directory": "02-xgb/model", "Algorithm": "xgboost"}]
    (root / "pipeline.json").write_text(json.dumps(stages))
    return load(root)


def test_a_type_the_next_stage_cannot_read_names_both_stages(tmp_path, pipeline_parts):
    handler = write_pipeline(tmp_path, pipeline_parts, TEXT_STAGE)
    with pytest.raises(PipelineStageError) as caught:
        handler.invoke_request(b"1,2,3\n", "text/csv", "text/csv", {})
    message = str(caught.value)
    assert caught.value.status == 415 and caught.value.stage == 1
    assert "pipeline stage 2 of 2 (model 'xgb', xgboost) cannot read 'text/plain'" in message
    assert "pipeline stage 1 of 2 (model 'shout'" in message


def test_the_last_stage_answers_the_clients_accept(tmp_path, pipeline_parts):
    passthrough = TEXT_STAGE.replace("body.upper(), \"text/plain\"", "body, content_type")
    handler = write_pipeline(tmp_path, pipeline_parts, passthrough)
    body, content_type, _ = handler.invoke_request(b"1,0,0,1,0,0\n", "text/csv", "application/json", {})
    assert content_type == "application/json" and "score" in json.loads(body)["predictions"][0]


def test_an_empty_answer_between_stages_names_the_stage_that_gave_it(tmp_path, pipeline_parts):
    silent = TEXT_STAGE.replace("body.upper(), \"text/plain\"", "\"\", \"text/csv\"")
    handler = write_pipeline(tmp_path, pipeline_parts, silent)
    with pytest.raises(PipelineStageError, match=r"pipeline stage 1 of 2 \(model 'shout'.* answered an empty body"):
        handler.invoke_request(b"1,0,0,1,0,0\n", "text/csv", "text/csv", {})
