"""A PipelineModel endpoint: raw CSV rows through a preprocessing script and XGBoost, as in-process."""
from __future__ import annotations

import numpy as np
import pytest

from nbsage.errors import EndpointError, ModelError, ValidationError
from pipelines.pipeline_data import CODE, frame, raw_rows, to_csv

PREPROCESS_ENV = {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}


def models(folder, session, prep_env=PREPROCESS_ENV):
    from nbsage.model import Model
    prep = Model(str(folder / "preprocessor.tar.gz"), entry_point="inference.py", source_dir=str(CODE),
                 env=prep_env, name="preprocess", sagemaker_session=session)
    xgb = Model(str(folder / "xgboost.tar.gz"), algorithm="xgboost", name="xgb", sagemaker_session=session)
    return [prep, xgb]


@pytest.fixture(scope="module")
def endpoint(pipeline_parts, module_session):
    from nbsage.pipeline import PipelineModel
    from nbsage.serializers import CSVSerializer
    _, _, folder, _ = pipeline_parts
    pipeline = PipelineModel(models=models(folder, module_session), name="prep-xgb", sagemaker_session=module_session)
    predictor = pipeline.deploy(instance_type="local", serializer=CSVSerializer())
    yield predictor
    predictor.delete_endpoint()


def test_raw_rows_in_predictions_out_equal_to_calling_both_in_process(endpoint, pipeline_parts):
    prep, booster, _, _ = pipeline_parts
    rows = raw_rows(25, seed=7)
    answer = endpoint.predict(to_csv(rows))
    served = np.array([float(r[0]) for r in answer], dtype=np.float32)
    expected = booster.inplace_predict(prep.transform(frame(rows)).astype(np.float32))
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-6)


def test_one_raw_row_answers_one_prediction(endpoint, pipeline_parts):
    prep, booster, _, _ = pipeline_parts
    row = [(52.0, 61000.0, "lyon")]
    served = float(endpoint.predict(to_csv(row))[0][0])
    assert served == pytest.approx(float(booster.inplace_predict(prep.transform(frame(row)))[0]), abs=1e-6)


def test_describe_lists_one_deployed_image_per_stage(endpoint):
    variant = endpoint.describe()["ProductionVariants"][0]
    assert [i["SpecifiedImage"] for i in variant["DeployedImages"]] == ["nbsage-inference", "xgboost"]


def test_a_failing_stage_is_named_and_the_endpoint_keeps_serving(endpoint):
    with pytest.raises(ModelError) as caught:
        endpoint.predict("forty,61000,lyon\n")
    assert "pipeline stage 1 of 2 (model 'preprocess'" in caught.value.message
    assert len(endpoint.predict("40,61000,lyon\n")) == 1


def test_target_model_on_a_pipeline_endpoint_names_what_it_serves(endpoint):
    with pytest.raises(EndpointError, match="serial inference pipeline of 2 models, not a multi-model endpoint"):
        endpoint.predict("40,61000,lyon\n", target_model="model-a.tar.gz")


def test_pipeline_model_takes_one_to_fifteen_models(pipeline_parts, module_session):
    from nbsage.pipeline import PipelineModel
    _, _, folder, _ = pipeline_parts
    with pytest.raises(ValidationError, match="1 to 15 models"):
        PipelineModel(models=[])
    with pytest.raises(ValidationError, match="1 to 15 models"):
        PipelineModel(models=models(folder, module_session) * 8)
    with pytest.raises(ValidationError, match="not an nbsage Model"):
        PipelineModel(models=["s3://bucket/model.tar.gz"])


def test_a_stage_that_fails_to_load_fails_the_deploy_naming_it(session, pipeline_parts, tmp_path):
    from nbsage.model import Model
    from nbsage.pipeline import PipelineModel
    from support import make_tarball
    _, _, folder, _ = pipeline_parts
    broken = make_tarball(tmp_path, "def model_fn(model_dir):\n    raise RuntimeError('weights.bin is missing')\n")
    stages = [Model(str(folder / "xgboost.tar.gz"), algorithm="xgboost", name="xgb", sagemaker_session=session),
              Model(str(broken), name="postprocess", sagemaker_session=session)]
    with pytest.raises(EndpointError) as caught:
        PipelineModel(stages, sagemaker_session=session).deploy(endpoint_name="broken-pipeline")
    assert "pipeline stage 2 of 2 (model 'postprocess'" in str(caught.value)
    assert "weights.bin is missing" in str(caught.value)
    from nbsage.serving.endpoints import describe_endpoint
    assert describe_endpoint(session, "broken-pipeline")["EndpointStatus"] == "Failed"
