"""Transform jobs end to end: real model servers, real files, one small XGBoost model for the module."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from nbsage.errors import JobFailed, ValidationError
from nbsage.model import Model
from nbsage.transformer import Transformer, TransformJob

pytestmark = pytest.mark.filterwarnings("ignore:.*UBJSON:UserWarning")
FEATURES = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model.tar.gz, booster, rows): a 4-feature binary XGBoost model and 300 rows."""
    import xgboost as xgb
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(300, FEATURES)), 4)
    y = (X[:, 0] + X[:, 1] > 0).astype(float)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 5)
    booster.save_model(str(folder / "xgboost-model"))
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "xgboost-model", arcname="xgboost-model")
    return archive, booster, X


def _csv(rows, ids=None) -> str:
    lines = [",".join(([str(ids[i])] if ids is not None else []) + [f"{v:g}" for v in row]) for i, row in enumerate(rows)]
    return "\n".join(lines) + "\n"


def _predict(booster, rows):
    import xgboost as xgb
    return booster.predict(xgb.DMatrix(np.asarray(rows, dtype=np.float32)))


def _numbers(path: Path) -> np.ndarray:
    return np.array([float(line) for line in path.read_text().splitlines()])


def test_a_folder_of_csv_files_becomes_one_out_per_file_in_order_on_two_instances(session, trained, tmp_path):
    archive, booster, X = trained
    (tmp_path / "in" / "day=2").mkdir(parents=True)
    (tmp_path / "in" / "a.csv").write_text(_csv(X[:120]))
    (tmp_path / "in" / "day=2" / "b.csv").write_text(_csv(X[120:300]))
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        instance_count=2, strategy="MultiRecord", assemble_with="Line", accept="text/csv",
        output_path=str(tmp_path / "out"), max_payload=1, max_concurrent_transforms=2)
    job = transformer.transform(str(tmp_path / "in"), content_type="text/csv", split_type="Line", logs=False)

    np.testing.assert_allclose(_numbers(tmp_path / "out" / "a.csv.out"), _predict(booster, X[:120]), rtol=1e-5)
    np.testing.assert_allclose(_numbers(tmp_path / "out" / "day=2" / "b.csv.out"), _predict(booster, X[120:]),
                               rtol=1e-5)
    desc = transformer.describe()
    assert desc["TransformJobStatus"] == "Completed" and desc["TransformJobName"] == job.name
    assert desc["TransformInput"]["SplitType"] == "Line" and desc["BatchStrategy"] == "MultiRecord"
    assert desc["TransformResources"]["InstanceCount"] == 2 and desc["MaxPayloadInMB"] == 1
    assert desc["nbsage:RecordsTransformed"] == 300 and desc["nbsage:Progress"] == (2, 2)
    assert any("2 model servers serving" in line for line in job.logs())
    # the job is a job kind of its own in the store, and a fresh handle reads it by name
    assert session.store.list_jobs(kind="transform")[0]["name"] == job.name
    assert Transformer.attach(job.name, session).describe()["ModelName"] == transformer.model_name


def test_a_record_the_model_rejects_fails_the_job_naming_file_and_line_and_keeps_the_good_outputs(
        session, trained, tmp_path):
    archive, booster, X = trained
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.csv").write_text(_csv(X[:20]))
    lines = _csv(X[20:40]).splitlines()
    lines[6] = "1,2,3"  # line 7 has 3 features; the model takes 4
    (tmp_path / "in" / "bad.csv").write_text("\n".join(lines) + "\n")
    big = tmp_path / "in" / "huge.csv"  # one 10 MB line: no 6 MB request can hold it
    big.write_bytes(b"1,2,3,4\n" + b"1" * (10 << 20) + b"\n")
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        strategy="MultiRecord", assemble_with="Line", output_path=str(tmp_path / "out"))
    with pytest.raises(JobFailed) as failed:
        transformer.transform(str(tmp_path / "in"), content_type="text/csv", split_type="Line", logs=False)

    reason = transformer.describe()["FailureReason"]
    assert reason.startswith("ClientError: bad.csv line 7: the model answered 400")
    assert "has 3 features, and the model expects 4" in reason and "1 more object failed" in reason
    assert reason.endswith("the .out file of the 1 object that succeeded is kept")
    assert "huge.csv line 2: a record of 10.0 MB does not fit in MaxPayloadInMB=6" in "\n".join(
        transformer.latest_transform_job.logs())
    assert "transform job" in str(failed.value)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.csv.out"]  # no partial .out left
    np.testing.assert_allclose(_numbers(tmp_path / "out" / "good.csv.out"), _predict(booster, X[:20]), rtol=1e-5)


def test_an_output_path_that_cannot_be_written_is_refused_before_a_job_is_recorded(session, trained, tmp_path):
    archive, _, X = trained
    (tmp_path / "in.csv").write_text(_csv(X[:3]))
    (tmp_path / "taken").write_text("a file where the output folder would go")
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        output_path=str(tmp_path / "taken" / "out"))
    with pytest.raises(ValidationError, match=r"output_path .*taken/out cannot be written"):
        transformer.transform(str(tmp_path / "in.csv"), content_type="text/csv", split_type="Line")
    assert session.store.list_jobs(kind="transform") == []


def test_a_filter_that_does_not_parse_is_refused_naming_the_field(session, trained, tmp_path):
    archive, _, _ = trained
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer()
    with pytest.raises(ValidationError, match=r"InputFilter '\$\[1:' does not parse"):
        transformer.transform(str(tmp_path), content_type="text/csv", split_type="Line", input_filter="$[1:",
                              join_source="Input")
    with pytest.raises(ValidationError, match=r"the transform input .*nothing-here holds no objects"):
        transformer.transform(str(tmp_path / "nothing-here"), content_type="text/csv", split_type="Line")
    with pytest.raises(ValidationError, match="no model named 'chrun'; did you mean 'churn'"):
        Model(archive, algorithm="xgboost", name="churn", sagemaker_session=session).transformer()
        Transformer("chrun", sagemaker_session=session).transform(str(tmp_path))
    assert session.store.list_jobs(kind="transform") == []


def test_gzip_objects_on_s3_are_transformed_into_s3(session, trained, tmp_path, s3_bucket):
    import gzip
    archive, booster, X = trained
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="in/part-0.csv.gz", Body=gzip.compress(_csv(X[:30]).encode()))
    client.put_object(Bucket=bucket, Key="in/part-1.csv.gz", Body=gzip.compress(_csv(X[30:40]).encode()))
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        assemble_with="Line", output_path=f"s3://{bucket}/out", strategy="MultiRecord")
    job = transformer.transform(f"s3://{bucket}/in/part-", content_type="text/csv", split_type="Line",
                                compression_type="Gzip", logs=False)
    body = client.get_object(Bucket=bucket, Key="out/part-1.csv.gz.out")["Body"].read().decode()
    np.testing.assert_allclose([float(v) for v in body.split()], _predict(booster, X[30:40]), rtol=1e-5)
    assert job.describe()["nbsage:ObjectsTransformed"] == 2


def test_the_dask_place_spreads_the_objects_over_two_workers_each_running_a_model_server(
        session, trained, tmp_path, cluster):
    archive, booster, X = trained
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"part-{i}.csv").write_text(_csv(X[i * 50:(i + 1) * 50]))
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        instance_count=2, assemble_with="Line", output_path=str(tmp_path / "out"), strategy="MultiRecord",
        backend="dask", scheduler=cluster.scheduler_address)
    job = transformer.transform(str(tmp_path / "in"), content_type="text/csv", split_type="Line", logs=False)
    for i in range(3):
        np.testing.assert_allclose(_numbers(tmp_path / "out" / f"part-{i}.csv.out"),
                                   _predict(booster, X[i * 50:(i + 1) * 50]), rtol=1e-5)
    desc = job.describe()
    assert desc["nbsage:Backend"] == "dask" and desc["nbsage:RecordsTransformed"] == 150
    logs = "\n".join(job.logs())
    assert "over 2 Dask workers" in logs and "[instance 1]" in logs and "[instance 2]" in logs


def test_a_stopped_transform_keeps_the_outputs_already_written_and_leaves_no_partial_file(session, trained, tmp_path):
    from support import wait_for
    archive, _, X = trained
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a-small.csv").write_text(_csv(X[:5]))
    (tmp_path / "in" / "b-big.csv").write_text(_csv(X[:1]) * 20000)  # 20,000 requests, one record each
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        strategy="SingleRecord", assemble_with="Line", output_path=str(tmp_path / "out"), max_concurrent_transforms=1)
    job = transformer.transform(str(tmp_path / "in"), content_type="text/csv", split_type="Line", wait=False)
    wait_for(lambda: job.describe()["nbsage:RecordsTransformed"] > 5, what="the second object under way")
    transformer.stop_transform_job()

    assert job.describe()["TransformJobStatus"] == "Stopped"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a-small.csv.out"]
