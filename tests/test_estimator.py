"""Estimator and TrainingJob on the local place: the DescribeTrainingJob shape, channels from
whatever a notebook holds, attach, and the errors a user meets first."""
from __future__ import annotations

import json
import tarfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbsage.errors import ChannelError, HyperparameterError, JobError, JobFailed, ValidationError
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.runtime.environment import count_gpus
from nbsage.session import Session
from nbsage.training_job import TrainingJob
from support import source

LOSS = [{"Name": "train:loss", "Regex": r"loss=([0-9.]+)"}]


SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": "1"}  # read by conftest's session fixture


GOOD = """
import os
print("loss=0.5")
print("loss=0.25")
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("ok")
"""


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_describe_has_the_describe_training_job_shape_for_a_completed_job(tmp_path, session, data):
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, GOOD)), metric_definitions=LOSS,
                    hyperparameters={"epochs": 2}, sagemaker_session=session)
    desc = est.fit({"train": TrainingInput(str(data), content_type="text/csv")}, logs=False).describe()
    for key in ("TrainingJobName", "TrainingJobArn", "TrainingJobStatus", "SecondaryStatus",
                "SecondaryStatusTransitions", "HyperParameters", "AlgorithmSpecification", "InputDataConfig",
                "OutputDataConfig", "ResourceConfig", "StoppingCondition", "FinalMetricDataList",
                "ModelArtifacts", "CreationTime", "TrainingStartTime", "TrainingEndTime", "LastModifiedTime",
                "TrainingTimeInSeconds", "BillableTimeInSeconds", "EnableManagedSpotTraining"):
        assert key in desc, key
    assert desc["TrainingJobStatus"] == "Completed" and desc["SecondaryStatus"] == "Completed"
    assert "FailureReason" not in desc
    transitions = desc["SecondaryStatusTransitions"]
    assert [t["Status"] for t in transitions] == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    for t in transitions:
        assert set(t) == {"Status", "StartTime", "EndTime", "StatusMessage"}
        assert t["StatusMessage"] and parse_time(t["StartTime"]) <= parse_time(t["EndTime"])
    assert desc["HyperParameters"]["epochs"] == "2"
    channel = desc["InputDataConfig"][0]
    assert channel["ChannelName"] == "train" and channel["ContentType"] == "text/csv"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == str(data.resolve())
    assert channel["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "FullyReplicated"
    assert desc["FinalMetricDataList"][0]["MetricName"] == "train:loss"
    assert desc["FinalMetricDataList"][0]["Value"] == 0.25
    parse_time(desc["FinalMetricDataList"][0]["Timestamp"])
    assert desc["ModelArtifacts"]["S3ModelArtifacts"].endswith(f"/{desc['TrainingJobName']}/output/model.tar.gz")
    created, started, ended = (parse_time(desc[k]) for k in ("CreationTime", "TrainingStartTime", "TrainingEndTime"))
    assert created <= started <= ended
    assert isinstance(desc["TrainingTimeInSeconds"], int) and desc["TrainingTimeInSeconds"] >= 0
    assert desc["BillableTimeInSeconds"] == desc["TrainingTimeInSeconds"]
    assert desc["ResourceConfig"] == {"InstanceType": "local", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert desc["StoppingCondition"]["MaxRuntimeInSeconds"] == 86400
    json.dumps(desc)  # serialisable as the API's JSON


def test_describe_of_a_failed_job_carries_the_failure_reason(tmp_path, session, data):
    src = source(tmp_path, "raise RuntimeError('no GPU memory left for batch 3')\n")
    est = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session)
    with pytest.raises(JobFailed, match="no GPU memory left for batch 3") as err:
        est.fit(data, logs=False)
    desc = est.latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Failed" and desc["SecondaryStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ExecuteUserScriptError")
    assert "RuntimeError: no GPU memory left for batch 3" in desc["FailureReason"]
    assert desc["ModelArtifacts"] == {}
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]][-1] == "Failed"
    assert err.value.status == "Failed"


CHANNEL_REPORT = """
import json, os
report = {}
for channel in json.loads(os.environ["SM_CHANNELS"]):
    folder = os.environ["SM_CHANNEL_" + channel.upper()]
    rows = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            rows += [line.strip().split(",") for line in f if line.strip()]
    report[channel] = {"files": sorted(os.listdir(folder)), "rows": rows}
json.dump(report, open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w"))
"""


def test_channels_from_a_dataframe_an_array_an_xy_pair_and_a_folder(tmp_path, session, data):
    frame = pd.DataFrame({"label": [1, 0], "x": [0.5, 1.5]})
    array = np.array([[0.0, 1.0, 2.0], [1.0, 3.0, 4.0]])
    features, labels = np.array([[7.0, 8.0], [9.0, 10.0]]), np.array([1, 0])
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, CHANNEL_REPORT)), sagemaker_session=session)
    job = est.fit({"train": frame, "validation": array, "test": (features, labels), "extra": str(data)}, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    with tarfile.open(job.model_data) as tar:
        report = json.load(tar.extractfile("report.json"))
    as_floats = {c: [[float(v) for v in row] for row in r["rows"]] for c, r in report.items()}
    assert as_floats["train"] == [[1, 0.5], [0, 1.5]]  # no header, no index
    assert as_floats["validation"] == [[0, 1, 2], [1, 3, 4]]
    assert as_floats["test"] == [[1, 7, 8], [0, 9, 10]]  # the label first, as the built-ins read CSV
    assert as_floats["extra"] == [[1, 2], [3, 4]] and report["extra"]["files"] == ["train.csv"]
    content_types = {c["ChannelName"]: c.get("ContentType") for c in job.describe()["InputDataConfig"]}
    assert content_types == {"train": "text/csv", "validation": "text/csv", "test": "text/csv", "extra": None}


def test_a_missing_path_is_a_channel_error_naming_the_channel_and_the_path(tmp_path, session):
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, GOOD)), sagemaker_session=session)
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ChannelError) as err:
        est.fit({"validation": str(missing)}, logs=False)
    assert "'validation'" in str(err.value) and str(missing) in str(err.value)
    assert session.list_training_jobs() == []  # nothing recorded


def test_an_object_that_is_not_a_data_source_is_a_channel_error(tmp_path, session):
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, GOOD)), sagemaker_session=session)
    with pytest.raises(ChannelError, match="channel 'train': dict is not a data source"):
        est.fit({"train": {"not": "data"}})


def test_attach_in_a_fresh_session_restores_the_job(tmp_path, session, data):
    src = source(tmp_path, GOOD)
    est = Estimator(entry_point="train.py", source_dir=str(src), hyperparameters={"epochs": 3, "optimizer": "adam"},
                    metric_definitions=LOSS, sagemaker_session=session)
    job = est.fit(data, logs=False)
    fresh = Session(home=session.home)
    attached = Estimator.attach(job.name, sagemaker_session=fresh)
    assert attached.latest_training_job.name == job.name
    assert attached.model_data == est.model_data and Path(attached.model_data).exists()
    assert attached.entry_point == "train.py" and Path(attached.source_dir) == src.resolve()
    assert attached._hyperparameters == {"epochs": 3, "optimizer": "adam"}
    assert attached.metric_definitions == LOSS
    assert attached.latest_training_job.describe()["TrainingJobStatus"] == "Completed"


def test_attach_to_an_unknown_job_names_it(session):
    with pytest.raises(JobError, match="no job named 'nope'"):
        Estimator.attach("nope", sagemaker_session=session)


def test_a_duplicate_job_name_is_a_clear_error(tmp_path, session, data):
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, GOOD)), sagemaker_session=session)
    est.fit(data, job_name="my-job", logs=False)
    with pytest.raises(JobError, match="a job named 'my-job' already exists"):
        est.fit(data, job_name="my-job", logs=False)
    assert TrainingJob("my-job", session).status == "Completed"


def test_an_invalid_job_name_is_rejected_before_anything_runs(tmp_path, session, data):
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, GOOD)), sagemaker_session=session)
    with pytest.raises(ValidationError, match="job name 'my_job' is not valid"):
        est.fit(data, job_name="my_job")


def test_an_unknown_backend_suggests_the_closest_place(tmp_path, session, data):
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, GOOD)), backend="locl",
                    sagemaker_session=session)
    with pytest.raises(ValidationError, match="backend 'locl' is not a place.*did you mean 'local'"):
        est.fit(data)
    assert session.list_training_jobs() == []


@pytest.mark.skipif(count_gpus() > 0, reason="this machine has a GPU")
def test_a_gpu_instance_type_without_a_gpu_is_refused_before_the_job_starts(tmp_path, session, data):
    from nbsage.errors import PlaceError
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, "print('training')\n")),
                    instance_type="local_gpu", sagemaker_session=session)
    with pytest.raises(PlaceError, match="'local_gpu' asks for a GPU and the local place has none") as err:
        est.fit(data, logs=False)
    assert "instance_type='local'" in str(err.value)
    assert session.list_training_jobs() == []


def test_a_per_process_artifact_root_is_refused_for_the_local_place(tmp_path, data):
    from nbsage.errors import PlaceError
    from nbsage.session import Session
    session = Session(home=tmp_path / "home", artifact_root="memory://nbsage-artifacts")
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, "print('training')\n")),
                    sagemaker_session=session)
    with pytest.raises(PlaceError, match="memory:// lives inside one process"):
        est.fit(data, logs=False)


def test_a_missing_entry_point_is_an_error_at_fit_before_a_job_is_recorded(tmp_path, session, data):
    # as the SDK: a notebook may write the script (%%writefile) after building the Estimator
    est = Estimator(entry_point="nope.py", source_dir=str(tmp_path), sagemaker_session=session)
    with pytest.raises(ValidationError, match="entry_point .*does not exist"):
        est.fit(data, logs=False)
    assert session.list_training_jobs() == []


def test_an_estimator_needs_an_algorithm_or_a_script(session):
    with pytest.raises(ValidationError, match="built-in algorithm"):
        Estimator(sagemaker_session=session)


def test_an_unknown_builtin_algorithm_suggests_the_closest(session):
    with pytest.raises(ValidationError, match="'xgbost' is not a built-in algorithm.*did you mean 'xgboost'"):
        Estimator("xgbost", sagemaker_session=session)


def test_a_misspelt_builtin_hyperparameter_suggests_the_right_name(session):
    with pytest.raises(HyperparameterError, match="'predictor_typ'.*did you mean 'predictor_type'"):
        Estimator("linear-learner", {"predictor_typ": "regressor"}, sagemaker_session=session)


def test_an_out_of_range_builtin_hyperparameter_fails_fit_before_a_job_is_recorded(session, data):
    est = Estimator("linear-learner", {"predictor_type": "regressor", "mini_batch_size": 0}, sagemaker_session=session)
    with pytest.raises(HyperparameterError, match="'mini_batch_size'"):
        est.fit(data)
    assert session.list_training_jobs() == []


def test_fit_without_waiting_returns_a_job_that_completes(tmp_path, session, data):
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, GOOD)), sagemaker_session=session)
    job = est.fit(data, wait=False)
    assert job.status in ("InProgress", "Completed")
    desc = job.wait(logs=False)
    assert desc["TrainingJobStatus"] == "Completed"
    assert repr(job).startswith(f"TrainingJob({job.name!r}, status=Completed")
