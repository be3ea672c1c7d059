"""Trials run on the estimator's place: on a Dask cluster, max_parallel_jobs trials at once spread
over its workers, each an ordinary dask training job whose parent is the tuning job."""
from __future__ import annotations

from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.tuner import HyperparameterTuner, IntegerParameter


def test_trials_of_a_dask_estimator_run_on_the_dask_cluster(session, cluster, tmp_path):
    rows = "".join(f"{i % 3 + 0.5 * (i % 2)},{i % 3},{i % 2}\n" for i in range(40))
    (tmp_path / "train.csv").write_text(rows)
    (tmp_path / "validation.csv").write_text(rows)
    estimator = Estimator("xgboost", {"num_round": 3, "objective": "reg:squarederror"}, backend="dask",
                          scheduler=cluster.scheduler_address, sagemaker_session=session)
    tuner = HyperparameterTuner(estimator, "validation:rmse", {"max_depth": IntegerParameter(2, 4)},
                                strategy="Random", max_jobs=2, max_parallel_jobs=2, random_seed=3)
    tuner.fit({"train": TrainingInput(str(tmp_path / "train.csv"), content_type="text/csv"),
                "validation": TrainingInput(str(tmp_path / "validation.csv"), content_type="text/csv")}, wait=False)
    desc = tuner.latest_tuning_job.wait(logs=False)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["nbsage:Place"] == "dask" and desc["TrainingJobStatusCounters"]["Completed"] == 2
    trials = session.store.children(desc["HyperParameterTuningJobName"])
    assert [t["backend"] for t in trials] == ["dask", "dask"]
    assert tuner.best_estimator().model_data
