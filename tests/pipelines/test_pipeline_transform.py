"""Batch transform through an inference pipeline (and through a compiled model): each record batch goes
through the stages in order, as the pipeline endpoint serves them, and the `.out` rows are its answers."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.pipeline_data import frame, raw_rows, to_csv
from pipelines.test_pipeline_endpoint import models

pytestmark = pytest.mark.filterwarnings("ignore:.*UBJSON:UserWarning")


def _numbers(text: str) -> np.ndarray:
    return np.array([float(line.split(",")[0]) for line in text.splitlines() if line.strip()])


@pytest.fixture(scope="module")
def raw_folder(tmp_path_factory):
    """Two CSV files of raw rows (age, income, city), one in a sub-folder."""
    folder = tmp_path_factory.mktemp("raw")
    (folder / "day=2").mkdir()
    files = {"a.csv": raw_rows(40, seed=11), "day=2/b.csv": raw_rows(25, seed=12)}
    for name, rows in files.items():
        (folder / name).write_text(to_csv(rows))
    return folder, files


def test_a_transform_through_a_pipeline_writes_the_endpoints_answers(pipeline_parts, module_session, raw_folder,
                                                                     tmp_path):
    from nbsage.pipeline import PipelineModel
    from nbsage.serializers import CSVSerializer
    from nbsage.transformer import TransformJob
    prep, booster, models_folder, _ = pipeline_parts
    data, files = raw_folder
    pipeline = PipelineModel(models=models(models_folder, module_session), name="prep-xgb-batch",
                             sagemaker_session=module_session)
    transformer = pipeline.transformer(instance_count=2, instance_type="local", strategy="MultiRecord",
                                       assemble_with="Line", accept="text/csv", output_path=str(tmp_path / "out"),
                                       max_payload=1)
    job = transformer.transform(str(data), content_type="text/csv", split_type="Line", logs=False)
    assert TransformJob(job.name, module_session).describe()["TransformJobStatus"] == "Completed"
    assert module_session.store.find_model("prep-xgb-batch")["Containers"][1]["Algorithm"] == "xgboost"

    predictor = pipeline.deploy(instance_type="local", serializer=CSVSerializer())
    try:
        for name, rows in files.items():
            out = _numbers((tmp_path / "out" / f"{name}.out").read_text())
            served = np.array([float(r[0]) for r in predictor.predict(to_csv(rows))])
            assert out.shape == (len(rows),)
            np.testing.assert_allclose(out, served, rtol=0, atol=1e-6)
            expected = booster.inplace_predict(prep.transform(frame(rows)).astype(np.float32))
            np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    finally:
        predictor.delete_endpoint()


def test_a_failing_stage_fails_the_transform_naming_the_stage_and_the_file(pipeline_parts, module_session,
                                                                             tmp_path):
    from nbsage.errors import JobFailed
    from nbsage.pipeline import PipelineModel
    _, _, models_folder, _ = pipeline_parts
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.csv").write_text("40,61000,lyon\nforty,61000,lyon\n")
    transformer = PipelineModel(models=models(models_folder, module_session), sagemaker_session=module_session) \
        .transformer(instance_count=1, instance_type="local", strategy="MultiRecord", assemble_with="Line",
                     output_path=str(tmp_path / "out"))
    with pytest.raises(JobFailed) as caught:
        transformer.transform(str(tmp_path / "in"), content_type="text/csv", split_type="Line", logs=False)
    reason = str(caught.value)
    assert "bad.csv lines 1-2" in reason  # a 500 (the script's error) is not bisected: the batch is named
    assert "pipeline stage 1 of 2 (model 'preprocess'" in reason


def test_a_compiled_model_transforms_as_the_native_model(pipeline_parts, module_session, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxmltools")
    from nbsage.model import Model
    prep, booster, models_folder, rows = pipeline_parts
    features = prep.transform(frame(rows[:60])).astype(np.float32)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "features.csv").write_text(
        "".join(",".join(repr(float(v)) for v in row) + "\n" for row in features))
    model = Model(str(models_folder / "xgboost.tar.gz"), algorithm="xgboost", sagemaker_session=module_session)
    model.compile("ml_c5", input_shape={"data": [1, features.shape[1]]}, output_path=str(tmp_path / "compiled"))
    transformer = model.transformer(instance_count=1, strategy="MultiRecord", assemble_with="Line",
                                    accept="text/csv", output_path=str(tmp_path / "out"))
    transformer.transform(str(tmp_path / "in"), content_type="text/csv", split_type="Line", logs=False)
    out = _numbers((tmp_path / "out" / "features.csv.out").read_text())
    np.testing.assert_allclose(out, booster.inplace_predict(features), rtol=0, atol=1e-5)


def test_the_dask_place_runs_a_pipeline_with_its_archives_shipped_to_the_workers(pipeline_parts, module_session,
                                                                                  raw_folder, tmp_path, cluster):
    from nbsage.pipeline import PipelineModel
    prep, booster, models_folder, _ = pipeline_parts
    data, files = raw_folder
    transformer = PipelineModel(models=models(models_folder, module_session), sagemaker_session=module_session) \
        .transformer(instance_count=2, instance_type="local", strategy="MultiRecord", assemble_with="Line",
                     accept="text/csv", output_path=str(tmp_path / "out"), backend="dask",
                     scheduler=cluster.scheduler_address)
    job = transformer.transform(str(data), content_type="text/csv", split_type="Line", logs=False)
    assert job.describe()["nbsage:Backend"] == "dask"
    for name, rows in files.items():
        expected = booster.inplace_predict(prep.transform(frame(rows)).astype(np.float32))
        np.testing.assert_allclose(_numbers((tmp_path / "out" / f"{name}.out").read_text()), expected, atol=1e-6)
