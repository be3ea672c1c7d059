"""A stopped job keeps the model it saved: XGBoost's `save_model_on_termination=true` and a stop.

As on SageMaker, the model saved on SIGTERM is uploaded as model.tar.gz, the job ends Stopped with
ModelArtifacts set, and the model can be deployed and answers predictions. Every place's stop
path uploads the model the same way (nbsage.backends.staging.stopped_model): the local place, a
Jupyter kernel and a Dask cluster are checked here; the model is deployed once, from the local place.
"""
from __future__ import annotations

import re

import pytest

from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from support import wait_for

TIMEOUT = 120


@pytest.fixture
def regression(tmp_path):
    """A train channel's folder: 400 rows of a label and 4 features."""
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=400)
    folder = tmp_path / "train"
    folder.mkdir()
    np.savetxt(folder / "train.csv", np.column_stack([y, X]), delimiter=",", fmt="%.6f")
    return folder


def place_arguments(place: str, request) -> dict:
    """The Estimator arguments that run a job on `place`."""
    if place == "kernel":
        pytest.importorskip("jupyter_client")
        pytest.importorskip("ipykernel")
        return {"backend": "kernel", "kernel": "python3"}
    if place == "dask":
        return {"backend": "dask", "scheduler": request.getfixturevalue("cluster").scheduler_address}
    return {}


def stop_mid_run(session, regression, **place) -> tuple[Estimator, dict]:
    """A long XGBoost job with save_model_on_termination=true, stopped once it reported a round;
    the estimator and the stopped job's description."""
    pytest.importorskip("xgboost")
    est = Estimator("xgboost", hyperparameters={"num_round": 1000000, "objective": "reg:squarederror",
                                                "save_model_on_termination": "true"},
                    sagemaker_session=session, **place)
    job = est.fit({"train": TrainingInput(str(regression), content_type="text/csv")}, wait=False)
    wait_for(lambda: (job.describe()["nbsage:Progress"][0] or 0) > 0 or job.status != "InProgress",
             TIMEOUT, "a training round to be reported")
    assert job.status == "InProgress", job.describe().get("FailureReason")
    job.stop()
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Stopped", desc.get("FailureReason")
    model = desc["ModelArtifacts"].get("S3ModelArtifacts")
    assert model and model.endswith("model.tar.gz"), "\n".join(job.logs()[-40:])
    return est, desc


def test_a_stopped_xgboost_job_with_save_model_on_termination_can_be_deployed(session, regression):
    est, _ = stop_mid_run(session, regression)
    predictor = est.deploy()
    try:
        answer = predictor.predict("0.1,0.2,0.3,0.4")
    finally:
        predictor.delete_endpoint()
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    numbers = re.findall(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)
    assert len(numbers) == 1, answer  # one prediction for the one row


@pytest.mark.parametrize("place", ["kernel", "dask"])
def test_every_place_uploads_the_model_saved_on_stop(session, regression, place, request):
    stop_mid_run(session, regression, **place_arguments(place, request))
