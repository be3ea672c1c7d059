"""A job of any kind as the API hands it out: submit, describe, wait, logs, metrics, stop.

Training and processing jobs (and the transform and tuning jobs to come) are records of kinds that
share one life: they are submitted to a place the same way, their status moves through
nbsage.backends.lifecycle, and a handle reads them afresh from the store. `Job` is that skeleton;
a kind says what it is called (`kind`, `status_field`) and how it describes itself (`describe`).
Adding a kind is a subclass of `Job`, a request class in nbsage.store.requests and the words of
nbsage.backends.lifecycle.KIND_WORDS.

Following a job live is a face's business: `wait` asks nbsage.watch for the watcher that a face
registered (the notebook's live monitor in a Jupyter kernel), else prints plain lines.
"""
from __future__ import annotations

import time
from typing import ClassVar

from nbsage.errors import JobError, JobFailed
from nbsage.store.metadata import TERMINAL
from nbsage.store.requests import JobRequest, request_of


def submit(session, request: JobRequest, backend: str | None, options: dict | None = None,
           parent: str | None = None) -> None:
    """CreateTrainingJob / CreateProcessingJob: check the request on its place, record it, launch it.

    A job whose place refuses to launch it after it was recorded ends Failed, never InProgress.
    `parent` names the job that started it (a tuning job, for its trials).
    """
    from nbsage import backends
    from nbsage.backends.lifecycle import JobLifecycle
    place = backends.get(backend, session, **(options or {}))
    place.check(request)
    root = session.jobs_dir / request.name / "opt_ml"
    session.store.create_job(request.name, request.to_dict(), place.name, str(root), kind=request.kind, parent=parent)
    session.watch_jobs()
    try:
        place.start(request.name)
    except BaseException as e:
        JobLifecycle(session.store, request.name, request.kind).could_not_start(e)
        raise


class Job:
    """A job in the store. Cheap to create; every property reads the store afresh."""

    kind: ClassVar[str] = ""  # the record's kind this class accepts ("" accepts any)
    status_field: ClassVar[str] = "TrainingJobStatus"  # where describe() puts the status

    def __init__(self, name: str, session=None):
        from nbsage.session import Session
        self.name = name
        self.session = session or Session.default()
        self._store = self.session.store
        job = self._store.get_job(name)  # raises JobError naming the job when it does not exist
        if self.kind and job["kind"] != self.kind:
            raise JobError(f"{name!r} is a {job['kind']} job, not a {self.kind} job")

    @property
    def job_name(self) -> str:
        return self.name

    def _record(self) -> dict:
        """The job's record, after its place has checked that an InProgress job's process still lives."""
        from nbsage import backends
        return backends.refreshed_record(self.session, self.name)

    def typed_request(self) -> JobRequest:
        """The job's request, parsed (nbsage.store.requests)."""
        return request_of(self._store.get_job(self.name))

    # ---- what a kind says ---------------------------------------------------------------------------
    def describe(self) -> dict:
        raise NotImplementedError

    def failure(self, desc: dict) -> JobFailed:
        """The error `wait` raises for a job that ended other than Completed."""
        from nbsage.backends.lifecycle import words_for
        noun = words_for(self.kind or "training").noun.lower()
        return JobFailed(self.name, desc[self.status_field], desc.get("FailureReason"), noun=noun)

    def watched(self):
        """The job as nbsage.watch's watchers read it (describe() with DescribeTrainingJob's keys)."""
        return self

    # ---- shared --------------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._record()["status"]

    def logs(self, tail: int | None = None) -> list[str]:
        lines = [line for _, _, line in self._store.get_logs(self.name)]
        return lines[-tail:] if tail else lines

    def metrics(self):
        """Every metric value (scraped from #metric lines and MetricDefinitions) as a pandas DataFrame
        (name, step, value, timestamp)."""
        import pandas as pd
        rows = self._store.get_metrics(self.name)
        return pd.DataFrame(rows, columns=["id", "name", "value", "step", "timestamp"]).drop(columns="id")

    def stop(self) -> None:
        """Stop*Job: SIGTERM now, SIGKILL after the grace period; the job ends Stopped."""
        from nbsage import backends
        job = self._store.get_job(self.name)
        backends.get(job["backend"], self.session).stop(self.name)

    def wait(self, logs: bool = True, raise_on_failure: bool = True) -> dict:
        """Block until the job ends, following it live; raise JobFailed if it did not complete."""
        from nbsage.watch import watcher_for
        watcher_for(self.watched(), logs=logs).run()
        desc = self.describe()
        if raise_on_failure and desc[self.status_field] != "Completed":
            raise self.failure(desc)
        return desc

    def wait_quietly(self, timeout: float | None = None, poll: float = 0.1) -> dict:
        """Block until the job ends (or `timeout` seconds pass) without printing; returns the description."""
        from nbsage.watch import store_changes
        deadline = time.monotonic() + timeout if timeout else None
        with store_changes(self) as changes:  # woken by the store's writes; `poll` at the longest
            while True:
                desc = self.describe()
                if desc[self.status_field] in TERMINAL:
                    return desc
                if deadline and time.monotonic() > deadline:
                    return desc
                changes.wait(poll)


class WatchedJob:
    """A job of another kind as nbsage.watch's watchers read a job: they follow DescribeTrainingJob's
    keys, so the job's own status, duration and progress are given under those names too.

    `final_metrics(desc)` gives the figures its display ends with (default: the store's final metrics).
    """

    def __init__(self, job: Job, final_metrics=None):
        self._job, self.name, self._store = job, job.name, job._store
        self._final_metrics = final_metrics

    def describe(self) -> dict:
        desc = self._job.describe()
        record = self._store.get_job(self.name)
        start, end = record["start_time"], record["end_time"]
        metrics = self._final_metrics(desc) if self._final_metrics else self._store.final_metrics(self.name)
        return dict(desc, TrainingJobName=self.name, TrainingJobStatus=desc[self._job.status_field],
                    SecondaryStatus=desc["nbsage:SecondaryStatus"], FinalMetricDataList=metrics,
                    TrainingTimeInSeconds=int(round((end or time.time()) - start)) if start else 0,
                    **{"nbsage:Progress": (record["progress_step"], record["progress_total"])})

    def logs(self, tail: int | None = None) -> list[str]:
        return self._job.logs(tail)

    def metrics(self):
        return self._job.metrics()
