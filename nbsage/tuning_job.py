"""TuningJob: a handle on one recorded hyperparameter tuning job (nbsage.job's `Job`, kind "tuning").

Reading it (describe, status, wait) also makes sure its driver runs: a tuning job in progress whose
driver process died (a crash, a reboot) is resumed from its study by the next look at it.
"""
from __future__ import annotations

import time

from nbsage.job import Job
from nbsage.store.metadata import TERMINAL


class TuningJob(Job):
    """A tuning job in the store. Cheap to create; every property reads the store afresh."""

    kind = "tuning"
    status_field = "HyperParameterTuningJobStatus"

    def _record(self) -> dict:
        from nbsage.tuning.driver import ensure_driver
        job = self._store.get_job(self.name)
        ensure_driver(self.session, job)
        return job

    def describe(self) -> dict:
        """The DescribeHyperParameterTuningJob shape (counters by status, BestTrainingJob, ...)."""
        from nbsage.tuning.records import describe
        self._record()
        return describe(self.session, self.name)

    def trials(self) -> list[dict]:
        """ListTrainingJobsForHyperParameterTuningJob: a summary per trial, oldest first."""
        from nbsage.tuning.records import trial_summaries
        return trial_summaries(self.session, self.name)

    @property
    def status(self) -> str:
        return self._record()["status"]

    def stop(self) -> None:
        """StopHyperParameterTuningJob: the running trials are stopped, none start; the job ends Stopped."""
        job = self._store.get_job(self.name)
        if job["status"] != "InProgress":
            return
        self._store.update_job(self.name, stop_requested=1)
        self._store.set_status(self.name, "Stopping", "Stopping", "Stopping the tuning job")
        self._record()

    def wait(self, logs: bool = True, raise_on_failure: bool = True) -> dict:
        """Block until the tuning job ends, showing its trials (a live table in a notebook)."""
        from nbsage.tuning.watch import TuningWatcher
        TuningWatcher(self, live=logs).run()
        desc = self.describe()
        if raise_on_failure and desc[self.status_field] == "Failed":
            raise self.failure(desc)
        return desc

    def wait_quietly(self, timeout: float | None = None, poll: float = 0.1) -> dict:
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            desc = self.describe()
            if desc[self.status_field] in TERMINAL or (deadline and time.monotonic() > deadline):
                return desc
            time.sleep(poll)

    def __repr__(self) -> str:
        desc = self.describe()
        best = desc.get("BestTrainingJob")
        text = f"TuningJob({self.name!r}, status={desc['HyperParameterTuningJobStatus']}"
        text += ", trials=" + ", ".join(f"{k}={v}" for k, v in desc["TrainingJobStatusCounters"].items() if v)
        if best:
            metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
            text += f", best={best['TrainingJobName']!r} {metric['MetricName']}={metric['Value']:.6g}"
        return text + ")"

    def _repr_html_(self) -> str:
        from nbsage.tuning.watch import tuning_bundle
        return tuning_bundle(self.describe(), self.trials(), plot=False)["text/html"]


def list_tuning_jobs(session, limit: int = 50) -> list[TuningJob]:
    """TuningJob handles, newest first (ListHyperParameterTuningJobs)."""
    session.watch_jobs()
    return [TuningJob(row["name"], session) for row in session.store.list_jobs(limit=limit, kind="tuning")]


TUNING_LIST_HEADER = ["Name", "Status", "Strategy", "Objective", "Trials", "Best training job", "Best value", "Created"]


def tuning_row(desc: dict) -> list[str]:
    """One row of a tuning job list (the CLI's and %sm_jobs --tuning's)."""
    cfg = desc["HyperParameterTuningJobConfig"]
    objective = cfg["HyperParameterTuningJobObjective"]
    counters = desc["TrainingJobStatusCounters"]
    best = desc.get("BestTrainingJob") or {}
    value = (best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
    done = sum(counters.values()) - counters["InProgress"]
    return [desc["HyperParameterTuningJobName"], desc["HyperParameterTuningJobStatus"], cfg["Strategy"],
            f"{objective['Type']} {objective['MetricName']}",
            f"{done}/{cfg['ResourceLimits']['MaxNumberOfTrainingJobs']}", best.get("TrainingJobName", ""),
            "" if value is None else f"{value:.6g}", (desc.get("CreationTime") or "")[:19].replace("T", " ")]
