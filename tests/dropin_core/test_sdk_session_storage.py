"""What a notebook asks the Session for: a role, a default bucket backed by the artifact store
(s3:// URIs written by one call are read by the next, offline), or a real bucket where the artifact
root is on S3."""
from __future__ import annotations

import pytest

import nbsage as sagemaker
from nbsage.s3 import S3Downloader, S3Uploader


def test_the_role_is_a_local_arn_and_the_default_bucket_is_named_like_the_sdks(session):
    assert sagemaker.get_execution_role() == "arn:aws:iam::000000000000:role/nbsage-local-execution-role"
    assert session.default_bucket() == "sagemaker-local-000000000000"
    assert session.default_bucket_prefix is None
    assert sagemaker.Session(default_bucket="my-bucket").default_bucket() == "my-bucket"
    from types import SimpleNamespace  # the SDK's Session(boto_session) shape
    assert sagemaker.Session(SimpleNamespace(region_name="eu-west-1")).boto_region_name == "eu-west-1"


def test_upload_data_returns_the_sdks_uri_and_what_it_wrote_is_readable_there(session, tmp_path):
    (tmp_path / "train.csv").write_text("1,2\n0,3\n")
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "a.csv").write_text("a")
    (tmp_path / "folder" / "sub" / "b.csv").write_text("b")
    bucket = session.default_bucket()
    uri = session.upload_data(str(tmp_path / "train.csv"), key_prefix="demo/train")
    assert uri == f"s3://{bucket}/demo/train/train.csv"
    assert S3Downloader.read_file(uri, sagemaker_session=session) == "1,2\n0,3\n"
    folder = session.upload_data(str(tmp_path / "folder"), bucket=bucket, key_prefix="demo/folder")
    assert folder == f"s3://{bucket}/demo/folder"
    assert S3Downloader.list(folder, sagemaker_session=session) == [f"{folder}/a.csv", f"{folder}/sub/b.csv"]
    # the bucket is the artifact root: the files are where the artifacts are
    assert session.resolve_uri(uri) == session.artifacts.url("demo", "train", "train.csv")
    written = S3Downloader.download(folder, tmp_path / "back", sagemaker_session=session)
    assert sorted(p.rsplit("/back/", 1)[1] for p in written) == ["a.csv", "sub/b.csv"]
    assert S3Uploader.upload_string_as_file_body("hello", f"s3://{bucket}/notes/x.txt", sagemaker_session=session)
    assert session.read_s3_file(bucket, "notes/x.txt") == "hello"
    assert session.list_s3_files(bucket, "notes") == ["notes/x.txt"]


def test_other_buckets_are_not_the_artifact_store(session):
    assert session.resolve_uri("s3://someone-elses/data/x.csv") == "s3://someone-elses/data/x.csv"


def test_an_artifact_root_on_s3_makes_its_bucket_the_default_and_uploads_go_there(s3_bucket, tmp_path, monkeypatch):
    name, client = s3_bucket
    monkeypatch.setenv("NBSAGE_ARTIFACT_ROOT", f"s3://{name}/nbsage")
    session = sagemaker.Session()
    assert session.default_bucket() == name and session.default_bucket_prefix == "nbsage"
    (tmp_path / "train.csv").write_text("1,2\n")
    uri = session.upload_data(str(tmp_path / "train.csv"), key_prefix="demo")
    assert uri == f"s3://{name}/nbsage/demo/train.csv"  # the SDK puts the default prefix first
    assert client.get_object(Bucket=name, Key="nbsage/demo/train.csv")["Body"].read() == b"1,2\n"
    assert session.resolve_uri(uri) == uri


def test_image_uris_have_the_sdks_shape_and_name_the_algorithm(session):
    uri = sagemaker.image_uris.retrieve("xgboost", "us-west-2", "1.7-1")
    assert uri == "683313688378.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert sagemaker.image_uris.retrieve("linear-learner", "us-west-2").endswith("/linear-learner:1")
    assert sagemaker.image_uris.retrieve("blazingtext", "us-west-2").endswith("/blazingtext:1")
    with pytest.warns(DeprecationWarning, match="get_image_uri"):
        assert sagemaker.amazon.amazon_estimator.get_image_uri("us-west-2", "xgboost").endswith("/xgboost:1")
    with pytest.raises(sagemaker.NBSageError, match="did you mean '1.7-1'"):
        sagemaker.image_uris.retrieve("xgboost", "us-west-2", "1.7-2")
    assert sagemaker.image_uris.image_version(uri) == ("xgboost", "1.7")


def test_recordio_written_by_amazon_common_reads_back_as_records(tmp_path):
    import io

    import numpy as np
    smac = sagemaker.amazon.common
    x = np.arange(6, dtype="float32").reshape(3, 2)
    buf = io.BytesIO()
    smac.write_numpy_to_dense_tensor(buf, x, np.array([0, 1, 0], dtype="float32"))
    buf.seek(0)
    records = smac.read_records(buf)
    assert [list(r.features["values"].float32_tensor.values) for r in records] == x.tolist()
    assert [r.label["values"].float32_tensor.values[0] for r in records] == [0, 1, 0]
    with pytest.raises(ValueError, match="Matrix"):
        smac.write_numpy_to_dense_tensor(io.BytesIO(), np.zeros(3))


def test_model_monitor_takes_a_data_capture_config_and_the_monitors_it_lacks_name_the_one_it_has():
    from nbsage.model_monitor import DataCaptureConfig, ModelBiasMonitor, ModelMonitoringNotAvailable
    config = DataCaptureConfig(enable_capture=True, sampling_percentage=50, destination_s3_uri="s3://b/capture")
    assert config._to_request_dict()["InitialSamplingPercentage"] == 50
    assert config._to_request_dict()["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    with pytest.raises(ModelMonitoringNotAvailable, match="DefaultModelMonitor"):
        ModelBiasMonitor(role="r", instance_count=1, instance_type="ml.m5.xlarge")


def test_an_s3_endpoint_in_the_aws_settings_makes_the_default_bucket_real_and_creates_it(s3_bucket, tmp_path):
    _, client = s3_bucket  # AWS_ENDPOINT_URL names moto's server; the artifact root stays local
    session = sagemaker.Session()
    bucket = session.default_bucket()
    assert bucket == "sagemaker-us-east-1-000000000000"
    (tmp_path / "train.csv").write_text("1,2\n")
    uri = session.upload_data(str(tmp_path / "train.csv"), key_prefix="demo")
    assert uri == f"s3://{bucket}/demo/train.csv" and session.resolve_uri(uri) == uri
    assert client.get_object(Bucket=bucket, Key="demo/train.csv")["Body"].read() == b"1,2\n"
