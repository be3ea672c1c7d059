"""One job's life, written once: the statuses and words every place and job kind share, and the
typed request the places read."""
from __future__ import annotations

import signal

import pytest

from nbsage.backends.lifecycle import JobLifecycle, runtime_failure
from nbsage.errors import JobError
from nbsage.store import Stores
from nbsage.store.requests import ProcessingRequest, TrainingRequest, request_for

TRAINING = {
    "TrainingJobName": "t", "AlgorithmSpecification": {"TrainingImage": "xgboost", "MetricDefinitions": []},
    "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "/data/train"}},
                         "ContentType": "text/csv"}],
    "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
    "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120},
    "EnableManagedSpotTraining": True, "Environment": {"A": "1"},
    "CheckpointConfig": {"S3Uri": "s3://b/ckpt", "LocalPath": "/opt/ml/checkpoints/"},
}
PROCESSING = {
    "ProcessingJobName": "p",
    "ProcessingInputs": [{"InputName": "in", "S3Input": {"S3Uri": "memory://x", "LocalPath": "/opt/ml/processing/in"}}],
    "ProcessingOutputConfig": {"Outputs": []},
    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "local"}},
    "StoppingCondition": {"MaxRuntimeInSeconds": 30},
    "AppSpecification": {"ImageUri": "i", "ContainerEntrypoint": ["python3", "run.py"]},
}


@pytest.fixture
def stores(tmp_path):
    return Stores.open(tmp_path / "home")


def test_a_training_request_is_parsed_once_into_typed_fields():
    r = TrainingRequest.from_dict(TRAINING)
    assert (r.kind, r.name, r.instance_count, r.instance_type) == ("training", "t", 2, "ml.m5.large")
    assert r.is_multi_host and r.managed_spot and (r.max_runtime, r.max_wait) == (60, 120)
    assert [(c.name, c.uri, c.content_type) for c in r.channels] == [("train", "/data/train", "text/csv")]
    assert (r.checkpoint.uri, r.checkpoint.local_path) == ("s3://b/ckpt", "/opt/ml/checkpoints/")
    assert r.environment == {"A": "1"} and r.image == "xgboost" and r.to_dict() is TRAINING


def test_a_processing_request_names_its_kind_and_its_uris():
    r = request_for("processing", PROCESSING)
    assert isinstance(r, ProcessingRequest) and r.kind == "processing" and r.max_runtime == 30
    assert r.entrypoint == ("python3", "run.py") and r.arguments is None
    assert r.artifact_uris() == ["memory://x"]
    with pytest.raises(JobError, match="'labeling' is not a job kind"):
        request_for("labeling", {})


def test_a_training_job_moves_through_sagemakers_statuses(stores):
    stores.store.create_job("t", TRAINING, "local", None)
    life = JobLifecycle(stores.store, "t")
    life.downloading()
    life.training()
    life.interrupted("the worker was killed by SIGKILL")
    life.restarting()
    life.training("Training resumed from the last checkpoint")
    life.uploading()
    assert life.completed(model="/m.tar.gz") == 0
    job = stores.store.get_job("t")
    assert (job["status"], job["secondary_status"], job["model_artifacts"]) == ("Completed", "Completed", "/m.tar.gz")
    assert [(t["status"], t["message"]) for t in stores.store.transitions("t")] == [
        ("Starting", "Preparing the instances for training"),
        ("Downloading", "Downloading input data"),
        ("Training", "Training image download completed. Training in progress."),
        ("Interrupted", "Training job interrupted: the worker was killed by SIGKILL"),
        ("Restarting", "Restarting training from the last checkpoint"),
        ("Training", "Training resumed from the last checkpoint"),
        ("Uploading", "Uploading generated training model"),
        ("Completed", "Training job completed")]
    life.failed("InternalServerError: too late")  # a terminal job never moves again
    assert stores.store.get_job("t")["status"] == "Completed"


def test_a_processing_job_says_processing_in_its_messages(stores):
    stores.store.create_job("p", PROCESSING, "local", None, kind="processing")
    life = JobLifecycle(stores.store, "p", "processing")
    life.stopping()
    life.exceeded("MaxRuntimeExceeded", 30)
    job = stores.store.get_job("p")
    assert (job["status"], job["secondary_status"]) == ("Stopped", "MaxRuntimeExceeded")
    assert job["failure_reason"] == "MaxRuntimeExceeded: the job ran longer than 30 s"
    assert [t["message"] for t in stores.store.transitions("p")][1:] == [
        "Stopping the processing job", "Processing job runtime exceeded MaxRuntimeInSeconds provided (30 s)"]


def test_failure_reasons_start_with_sagemakers_category():
    assert runtime_failure(-signal.SIGKILL) == \
        "AlgorithmError: the training process was killed by SIGKILL (out of memory?)"
    assert runtime_failure(-signal.SIGTERM, "AlgorithmError: ignored") == \
        "AlgorithmError: the training process was killed by SIGTERM"
    assert runtime_failure(2, "AlgorithmError: ValueError: bad") == "AlgorithmError: ValueError: bad"
    assert runtime_failure(3) == "AlgorithmError: the training process exited with code 3"


def test_a_supervisor_finds_its_stores_from_what_it_was_launched_with(tmp_path, monkeypatch):
    launched = Stores.open(tmp_path / "home", str(tmp_path / "artifacts"))
    for key, value in launched.launch_environment().items():
        monkeypatch.setenv(key, value)
    found = Stores.from_environment()
    assert (found.home, found.artifact_root, found.jobs_dir) == (launched.home, launched.artifact_root,
                                                                  launched.home / "jobs")
