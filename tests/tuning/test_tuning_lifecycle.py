"""A tuning job's life with script-mode trials: early stopping ends trials Stopped, failing trials
fail the job only by SageMaker's rule (with each trial's reason), a crashed driver is resumed, a stop
stops the trials."""
from __future__ import annotations

import os
import signal

from support import wait_for

from nbsage.estimator import Estimator
from nbsage.store.metadata import pid_alive
from nbsage.tuner import ContinuousParameter, HyperparameterTuner
from nbsage.tuning_job import TuningJob

# the first trial scores 1.0 at every step, the others 0.1: the median rule stops them at once. A held
# trial (HOLD: "others", the default; "all"; "none") waits for a signal after its steps, so a busy
# machine cannot let it finish before the driver stops it
STEPPED = """
import os, signal
good = "-001-" in os.environ["TRAINING_JOB_NAME"]
for step in range(int(os.environ.get("STEPS", "20"))):
    print(f"#metric val:score={(1.0 if good else 0.1) + step * 0.001} step={step}", flush=True)
hold = os.environ.get("HOLD", "others")
if hold == "all" or (hold == "others" and not good):
    signal.alarm(600)  # a backstop should a test stop without ending it
    signal.pause()  # until the stop's SIGTERM
"""
FAILING = "raise SystemExit('the data has no label column')\n"
METRIC = [{"Name": "val:score", "Regex": r"val:score=(\S+)"}]


def script_estimator(tmp_path, body: str, **kwargs) -> Estimator:
    src = tmp_path / "src"  # not tmp_path itself: NBSAGE_HOME is in it, and the source folder is shipped
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(body)
    return Estimator(entry_point="train.py", source_dir=str(src), metric_definitions=METRIC, **kwargs)


def fit(estimator, **kwargs) -> HyperparameterTuner:
    kwargs.setdefault("strategy", "Random")
    tuner = HyperparameterTuner(estimator, "val:score", {"lr": ContinuousParameter(0.01, 0.1)}, random_seed=0,
                                **kwargs)
    tuner.fit(wait=False)
    return tuner


def end_driver(job: TuningJob) -> None:
    pid = job.session.store.get_job(job.name)["runtime_pid"]
    if pid and pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def test_early_stopping_auto_stops_trials_worse_than_the_median_and_they_end_stopped(tmp_path):
    tuner = fit(script_estimator(tmp_path, STEPPED), max_jobs=3, max_parallel_jobs=1, early_stopping_type="Auto")
    desc = tuner.latest_tuning_job.wait(logs=False)
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["TrainingJobStatusCounters"]["Completed"] == 1
    assert desc["TrainingJobStatusCounters"]["Stopped"] == 2
    assert "-001-" in desc["BestTrainingJob"]["TrainingJobName"]
    frame = tuner.analytics().dataframe()
    assert sorted(frame["TrainingJobStatus"]) == ["Completed", "Stopped", "Stopped"]


def test_failing_trials_fail_the_tuning_job_by_sagemakers_rule_with_each_trials_reason(tmp_path):
    tuner = fit(script_estimator(tmp_path, FAILING), max_jobs=2, max_parallel_jobs=2)
    job = tuner.latest_tuning_job
    desc = job.wait(logs=False, raise_on_failure=False)
    assert desc["HyperParameterTuningJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: No training job succeeded after 2 attempts")
    assert "the data has no label column" in desc["FailureReason"]
    assert desc["TrainingJobStatusCounters"]["NonRetryableError"] == 2
    assert all("the data has no label column" in t["FailureReason"] for t in job.trials())
    assert "BestTrainingJob" not in desc


def test_a_crashed_driver_is_resumed_and_the_job_ends_with_all_its_trials(tmp_path):
    estimator = script_estimator(tmp_path, STEPPED, environment={"STEPS": "30", "HOLD": "none"})
    tuner = fit(estimator, max_jobs=2, max_parallel_jobs=1)
    job = tuner.latest_tuning_job
    store = job.session.store
    # the first trial recorded (perhaps not yet launched: a resumed driver launches it)
    wait_for(lambda: [c for c in store.children(job.name) if c["status"] == "InProgress"], what="the first trial")
    driver = store.get_job(job.name)["runtime_pid"]
    os.killpg(driver, signal.SIGKILL)
    wait_for(lambda: not pid_alive(driver), what="the driver to die")
    desc = job.wait(logs=False)  # looking at the job starts its driver again
    assert store.get_job(job.name)["runtime_pid"] != driver
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["TrainingJobStatusCounters"]["Completed"] == 2
    assert len(store.children(job.name)) == 2


def test_stopping_a_tuning_job_stops_its_running_trials_and_starts_no_more(tmp_path):
    estimator = script_estimator(tmp_path, STEPPED, environment={"HOLD": "all"})
    tuner = fit(estimator, max_jobs=4, max_parallel_jobs=1)
    job = tuner.latest_tuning_job
    store = job.session.store
    wait_for(lambda: [c for c in store.children(job.name) if c["status"] == "InProgress"], what="the first trial")
    tuner.stop_tuning_job()
    desc = job.wait_quietly(timeout=120)
    assert desc["HyperParameterTuningJobStatus"] == "Stopped"
    assert [c["status"] for c in store.children(job.name)] == ["Stopped"]
    end_driver(job)
