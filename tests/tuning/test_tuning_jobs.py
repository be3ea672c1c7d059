"""A real XGBoost tuning job on the local place: trials are training jobs with their parent, the
describe/analytics/attach shapes, the search is Optuna's with the same seed, and the faces list it."""
from __future__ import annotations

import json
import os
import signal

import pytest

from nbsage.estimator import Estimator
from nbsage.session import Session
from nbsage.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter
from nbsage.tuning_job import TuningJob

SEED = 7
RANGES = {"eta": ContinuousParameter(0.05, 0.5), "max_depth": IntegerParameter(2, 5)}


def _tiny_data():
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    frame = pd.DataFrame(np.column_stack([y, X[:, :8]]))
    return frame.iloc[:300], frame.iloc[300:450]


def _stop_everything(session):
    """Stop what a tuning job left running (its driver, its trials' supervisors)."""
    for row in session.store.list_jobs(limit=1000):
        pid = row["runtime_pid"] if row["kind"] == "tuning" else row["supervisor_pid"]
        if row["status"] in ("InProgress", "Stopping") and pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("tuning-home")


@pytest.fixture(scope="module")
def session(home):
    session = Session(home=home)
    yield session
    _stop_everything(session)


@pytest.fixture(scope="module")
def tuner(session):
    train, validation = _tiny_data()
    estimator = Estimator("xgboost", {"num_round": 5, "objective": "binary:logistic"}, sagemaker_session=session)
    tuner = HyperparameterTuner(estimator, "validation:auc", RANGES, strategy="Random", max_jobs=3,
                                max_parallel_jobs=2, random_seed=SEED)
    tuner.fit({"train": train, "validation": validation}, wait=False)
    tuner.latest_tuning_job.wait(logs=False)
    return tuner


def test_a_tuning_job_completes_with_its_trials_as_training_jobs_whose_parent_is_recorded(tuner, session):
    desc = tuner.describe()
    name = desc["HyperParameterTuningJobName"]
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["TrainingJobStatusCounters"] == {"Completed": 3, "InProgress": 0, "RetryableError": 0,
                                                 "NonRetryableError": 0, "Stopped": 0}
    assert desc["ObjectiveStatusCounters"] == {"Succeeded": 3, "Pending": 0, "Failed": 0}
    children = session.store.children(name)
    assert [c["kind"] for c in children] == ["training"] * 3
    assert all(c["name"].startswith(name + "-00") for c in children)
    values = []
    for child in children:
        hps = json.loads(child["request"])["HyperParameters"]
        assert hps["_tuning_objective_metric"] == "validation:auc"  # as the SDK sets it for XGBoost
        assert 0.05 <= float(hps["eta"]) <= 0.5 and 2 <= int(hps["max_depth"]) <= 5
        values.append({m["MetricName"]: m["Value"] for m in session.store.final_metrics(child["name"])}["validation:auc"])
    best = desc["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "MetricName": "validation:auc", "Type": "Maximize", "Value": max(values)}
    assert tuner.best_training_job() == best["TrainingJobName"]
    assert set(best["TunedHyperParameters"]) == {"eta", "max_depth"}


def test_the_trials_are_the_configurations_optunas_sampler_gives_with_the_same_seed(tuner, session):
    import optuna
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=SEED))
    expected = []
    for _ in range(3):
        trial = study.ask()
        expected.append((repr(trial.suggest_float("eta", 0.05, 0.5)), str(trial.suggest_int("max_depth", 2, 5))))
    got = [(t["TunedHyperParameters"]["eta"], t["TunedHyperParameters"]["max_depth"])
           for t in tuner.latest_tuning_job.trials()]
    assert got == expected


def test_analytics_has_one_row_per_trial_with_its_hyperparameters_objective_status_and_times(tuner):
    frame = tuner.analytics().dataframe()
    assert list(frame.columns[:8]) == ["eta", "max_depth", "TrainingJobName", "TrainingJobStatus",
                                       "FinalObjectiveValue", "TrainingStartTime", "TrainingEndTime",
                                       "TrainingElapsedTimeSeconds"]
    assert len(frame) == 3 and set(frame["TrainingJobStatus"]) == {"Completed"}
    assert frame["FinalObjectiveValue"].max() == tuner.describe()["BestTrainingJob"][
        "FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    assert (frame["TrainingElapsedTimeSeconds"] > 0).all()


def test_attach_gives_a_tuner_whose_best_estimator_has_the_best_model(tuner, session):
    name = tuner.latest_tuning_job.name
    attached = HyperparameterTuner.attach(name, sagemaker_session=session)
    assert attached.objective_metric_name == "validation:auc" and attached.strategy == "Random"
    assert attached.hyperparameter_ranges() == tuner.hyperparameter_ranges()
    assert attached.best_training_job() == tuner.best_training_job()
    best = attached.best_estimator()
    assert "_tuning_objective_metric" not in best._hyperparameters
    assert best.model_data and best.model_data.endswith("model.tar.gz")


def test_the_cli_lists_and_describes_tuning_jobs(tuner, home, capsys):
    from nbsage.cli import main
    name = tuner.latest_tuning_job.name
    assert main(["--home", str(home), "tuning-jobs"]) == 0
    out = capsys.readouterr().out
    assert name in out and "Completed" in out and "3/3" in out and tuner.best_training_job() in out
    assert main(["--home", str(home), "describe-tuning-job", name, "--trials"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["HyperParameterTuningJobStatus"] == "Completed" and len(desc["TrainingJobSummaries"]) == 3


def test_training_job_lists_keep_to_training_jobs(tuner, session):
    kinds = {job.describe()["TrainingJobName"]: job for job in session.list_training_jobs()}
    assert tuner.latest_tuning_job.name not in kinds and len(kinds) == 3


def test_sm_tune_runs_a_tuning_job_from_a_cell_and_sm_jobs_lists_it(session, monkeypatch, home):
    from IPython.testing.globalipapp import get_ipython
    monkeypatch.setenv("NBSAGE_HOME", str(home))
    train, validation = _tiny_data()
    ip = get_ipython()
    ip.run_line_magic("load_ext", "nbsage")
    ip.user_ns.update(train=train, valid=validation)
    tuner = ip.run_cell_magic(
        "sm_tune", "xgboost --objective validation:logloss --max-jobs 1 --strategy Random --seed 1 "
                   "--train train --validation valid --quiet",
        "num_round: 3\nobjective: binary:logistic\nmax_depth: int(2, 4)\neta: float(0.1, 0.3, log)\n")
    desc = tuner.describe()
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize", "MetricName": "validation:logloss"}
    assert desc["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"] == [
        {"Name": "eta", "MinValue": "0.1", "MaxValue": "0.3", "ScalingType": "Logarithmic"}]
    listed = ip.run_line_magic("sm_jobs", "--tuning")
    assert tuner.latest_tuning_job.name in repr(listed)
    assert isinstance(TuningJob(tuner.latest_tuning_job.name, session).describe(), dict)


def test_a_warm_started_tuning_job_learns_from_its_parent_and_reports_the_overall_best(tuner, session):
    child = tuner.identical_dataset_and_algorithm_tuner()
    child.max_jobs, child.max_parallel_jobs = 1, 1
    train, validation = _tiny_data()
    child.fit({"train": train, "validation": validation}, wait=False)
    desc = child.latest_tuning_job.wait(logs=False)
    parent = tuner.latest_tuning_job.name
    assert desc["WarmStartConfig"] == {"WarmStartType": "IdenticalDataAndAlgorithm",
                                       "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": parent}]}
    assert desc["TrainingJobStatusCounters"]["Completed"] == 1
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
              for name in (parent, desc["HyperParameterTuningJobName"]) for t in TuningJob(name, session).trials()]
    assert desc["OverallBestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values)
    from nbsage.tuning import search
    from nbsage.tuning.driver import study_path
    name = desc["HyperParameterTuningJobName"]
    study = search.load_study(study_path(session, name), name)
    assert len(study.trials) == 4  # the parent's 3 finished trials joined the study before its own
