"""A SageMaker notebook's journey with `import nbsage as sagemaker`: upload to the default bucket,
train on the returned s3:// URI with an image from image_uris (no content type: the .csv files are
read as CSV, said once), find the model under the output path, deploy with the SDK's codecs,
endpoint_from_job, delete_endpoint. One job for the module."""
from __future__ import annotations

import numpy as np
import pytest

import nbsage as sagemaker
from nbsage.deserializers import BytesDeserializer
from nbsage.s3 import S3Downloader
from nbsage.serializers import IdentitySerializer
from nbsage.training_job import TrainingJob

SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(session, estimator, train URI, output path) after one XGBoost job, in a home of the module's own."""
    root = tmp_path_factory.mktemp("notebook")
    session = sagemaker.Session(home=root / "home")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    np.savetxt(root / "train.csv", np.column_stack([(x[:, 0] > 0).astype(int), x]), delimiter=",", fmt="%.4f")
    bucket, prefix = session.default_bucket(), "sagemaker/DEMO-xgboost"
    train_uri = session.upload_data(str(root / "train.csv"), bucket=bucket, key_prefix=f"{prefix}/train")
    output_path = f"s3://{bucket}/{prefix}/output"
    with pytest.warns(UserWarning, match="asks for xgboost 1.7"):
        estimator = sagemaker.estimator.Estimator(
            sagemaker.image_uris.retrieve("xgboost", session.boto_region_name, "1.7-1"),
            sagemaker.get_execution_role(), instance_count=1, instance_type="ml.m5.xlarge",
            output_path=output_path, sagemaker_session=session)
    estimator.set_hyperparameters(objective="binary:logistic", num_round=5, max_depth=2)
    estimator.fit({"train": train_uri}, logs=False)
    yield session, estimator, train_uri, output_path
    for endpoint in session.list_endpoints():
        session.delete_endpoint(endpoint["EndpointName"])


def test_training_on_the_uploaded_uri_reads_the_csv_as_csv_and_says_so_once(trained):
    session, estimator, train_uri, _ = trained
    job = estimator.latest_training_job
    assert job.describe()["TrainingJobStatus"] == "Completed"
    said = [line for line in job.logs() if "has no content type and its files end in .csv" in line]
    assert len(said) == 1 and "content_type='text/libsvm'" in said[0]
    channel = job.describe()["InputDataConfig"][0]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == session.resolve_uri(train_uri)
    assert job.request["nbsage:ImageUri"].endswith("/sagemaker-xgboost:1.7-1")


def test_the_model_is_under_the_output_path_in_the_default_bucket(trained):
    session, estimator, _, output_path = trained
    name = estimator.latest_training_job.name
    assert S3Downloader.list(f"{output_path}/{name}/output", sagemaker_session=session) == \
        [f"{output_path}/{name}/output/model.tar.gz"]
    assert estimator.model_data == session.resolve_uri(f"{output_path}/{name}/output/model.tar.gz")


def test_the_default_output_path_ends_with_a_slash_as_the_sdks(trained, tmp_path):
    session, estimator, train_uri, _ = trained
    est = sagemaker.estimator.Estimator("xgboost", "role", hyperparameters={"num_round": 1}, sagemaker_session=session)
    request = est._request("any-name", {"train": train_uri})
    assert request["OutputDataConfig"]["S3OutputPath"] == session.default_output_path() + "/"


def test_deploy_of_an_sdk_image_gives_the_sdks_codecs_and_predict_returns_bytes(trained):
    session, estimator, _, _ = trained
    predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.xlarge")
    try:
        assert isinstance(predictor.serializer, IdentitySerializer)
        assert isinstance(predictor.deserializer, BytesDeserializer)
        answer = predictor.predict(b"0.5,0.1,0.2\n-0.5,0.3,0.1", initial_args={"ContentType": "text/csv"})
        assert isinstance(answer, bytes) and len(answer.decode().replace("\n", ",").strip(",").split(",")) == 2
    finally:
        predictor.delete_endpoint()


def test_endpoint_from_job_names_the_endpoint_and_delete_endpoint_removes_it(trained):
    session, estimator, _, _ = trained
    name = session.endpoint_from_job(estimator.latest_training_job.name, 1, "ml.m5.xlarge", name="from-job")
    assert name == "from-job"
    assert session.describe_endpoint(name)["EndpointStatus"] == "InService"
    session.delete_endpoint(name)
    assert name not in [e["EndpointName"] for e in session.list_endpoints()]
    assert isinstance(TrainingJob(estimator.latest_training_job.name, session).describe(), dict)
