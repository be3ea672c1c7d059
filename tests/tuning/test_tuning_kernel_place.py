"""Trials run on the estimator's place: on the kernel place (a real Jupyter Kernel Gateway on
loopback), each trial an ordinary kernel-place training job whose parent is the tuning job, its
model brought back into the notebook's store."""
from __future__ import annotations

import pytest

from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.tuner import HyperparameterTuner, IntegerParameter

pytest.importorskip("kernel_gateway")
pytest.importorskip("jupyter_client")

TIMEOUT = 120


def test_trials_of_a_kernel_estimator_run_in_gateway_kernels(session, gateway, tmp_path):
    rows = "".join(f"{i % 3 + 0.5 * (i % 2)},{i % 3},{i % 2}\n" for i in range(40))
    (tmp_path / "train.csv").write_text(rows)
    (tmp_path / "validation.csv").write_text(rows)
    estimator = Estimator("xgboost", {"num_round": 3, "objective": "reg:squarederror"}, backend="kernel",
                          gateway=gateway.url, kernel="python3", sagemaker_session=session)
    tuner = HyperparameterTuner(estimator, "validation:rmse", {"max_depth": IntegerParameter(2, 4)},
                                strategy="Random", max_jobs=2, max_parallel_jobs=1, random_seed=3)
    tuner.fit({"train": TrainingInput(str(tmp_path / "train.csv"), content_type="text/csv"),
               "validation": TrainingInput(str(tmp_path / "validation.csv"), content_type="text/csv")}, wait=False)
    desc = tuner.latest_tuning_job.wait_quietly(timeout=TIMEOUT)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["nbsage:Place"] == "kernel" and desc["TrainingJobStatusCounters"]["Completed"] == 2
    trials = session.store.children(desc["HyperParameterTuningJobName"])
    assert [t["backend"] for t in trials] == ["kernel", "kernel"]
    best = desc["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "validation:rmse"
    model = tuner.best_estimator().model_data
    assert model.startswith(str(session.artifacts.root)), model  # brought back from the kernel's side
