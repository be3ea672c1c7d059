"""TrainingJob: a handle on one recorded job — describe, wait, logs, metrics, stop."""
from __future__ import annotations

import json
import time

from nbsage.errors import JobFailed
from nbsage.store.metadata import TERMINAL, iso

TERMINAL_STATUSES = TERMINAL


class TrainingJob:
    """A training job in the store. Cheap to create; every property reads the store afresh."""

    def __init__(self, name: str, session=None):
        from nbsage.session import Session
        self.name = name
        self.session = session or Session.default()
        self._store = self.session.store
        self._store.get_job(name)  # raises JobError naming the job when it does not exist

    @property
    def job_name(self) -> str:
        return self.name

    def _record(self) -> dict:
        from nbsage import backends
        return backends.refreshed_record(self.session, self.name)

    def describe(self) -> dict:
        """The DescribeTrainingJob shape."""
        job = self._record()
        request = json.loads(job["request"])
        start, end = job["start_time"], job["end_time"]
        seconds = int(round((end or time.time()) - start)) if start else 0
        transitions = self._store.transitions(self.name)
        billable = seconds
        if request.get("EnableManagedSpotTraining") and start:
            if job.get("billable_seconds") is not None:
                billable = int(round(job["billable_seconds"]))
            else:  # still running: the time spent Interrupted or Restarting is not billed
                from nbsage.backends.spot import unbilled_seconds
                now = time.time()
                lost = unbilled_seconds(transitions, now)
                billable = int(round(max(0.0, (end or now) - start - lost)))
            billable = min(billable, seconds)
        desc = {
            "TrainingJobName": self.name,
            "TrainingJobArn": f"arn:nbsage:local:training-job/{self.name}",
            "TrainingJobStatus": job["status"],
            "SecondaryStatus": job["secondary_status"],
            "SecondaryStatusTransitions": [
                {"Status": t["status"], "StartTime": iso(t["start_time"]), "EndTime": iso(t["end_time"]),
                 "StatusMessage": t["message"] or ""} for t in transitions],
            "HyperParameters": request.get("HyperParameters", {}),
            "RoleArn": request.get("RoleArn", ""),
            "AlgorithmSpecification": request.get("AlgorithmSpecification", {}),
            "InputDataConfig": request.get("InputDataConfig", []),
            "OutputDataConfig": request.get("OutputDataConfig", {}),
            "ResourceConfig": request.get("ResourceConfig", {}),
            "StoppingCondition": request.get("StoppingCondition", {}),
            "CheckpointConfig": request.get("CheckpointConfig"),
            "EnableManagedSpotTraining": request.get("EnableManagedSpotTraining", False),
            "Environment": request.get("Environment", {}),
            "FinalMetricDataList": self._store.final_metrics(self.name),
            "ModelArtifacts": {"S3ModelArtifacts": job["model_artifacts"]} if job["model_artifacts"] else {},
            "CreationTime": iso(job["creation_time"]),
            "TrainingStartTime": iso(start),
            "TrainingEndTime": iso(end),
            "LastModifiedTime": iso(job["last_modified"]),
            "TrainingTimeInSeconds": seconds,
            "BillableTimeInSeconds": billable,
            "nbsage:Backend": job["backend"],
            "nbsage:JobRoot": job["root"],
            "nbsage:Progress": (job["progress_step"], job["progress_total"]),
        }
        if job["failure_reason"]:
            desc["FailureReason"] = job["failure_reason"]
        if job["output_artifacts"]:
            desc["nbsage:OutputArtifacts"] = job["output_artifacts"]
        return desc

    @property
    def status(self) -> str:
        return self._record()["status"]

    @property
    def model_data(self) -> str | None:
        return self._record()["model_artifacts"]

    @property
    def hyperparameters(self) -> dict:
        return json.loads(self._record()["request"]).get("HyperParameters", {})

    @property
    def algorithm(self) -> str | None:
        spec = json.loads(self._record()["request"]).get("AlgorithmSpecification", {})
        return spec.get("AlgorithmName") or spec.get("TrainingImage")

    @property
    def request(self) -> dict:
        return json.loads(self._record()["request"])

    def final_metrics(self) -> dict[str, float]:
        return {m["MetricName"]: m["Value"] for m in self._store.final_metrics(self.name)}

    def metrics(self):
        """Every metric value as a pandas DataFrame (name, step, value, timestamp)."""
        import pandas as pd
        rows = self._store.get_metrics(self.name)
        return pd.DataFrame(rows, columns=["id", "name", "value", "step", "timestamp"]).drop(columns="id")

    def logs(self, tail: int | None = None) -> list[str]:
        lines = [line for _, _, line in self._store.get_logs(self.name)]
        return lines[-tail:] if tail else lines

    def stop(self) -> None:
        """StopTrainingJob: SIGTERM now, SIGKILL after the grace period; the job ends Stopped."""
        from nbsage import backends
        job = self._store.get_job(self.name)
        backends.get(job["backend"], self.session).stop(self.name)

    def wait(self, logs: bool = True, raise_on_failure: bool = True) -> dict:
        """Block until the job ends, following it live; raise JobFailed if it did not complete."""
        from nbsage.watch import watcher_for
        desc = watcher_for(self, logs=logs).run()
        if raise_on_failure and desc["TrainingJobStatus"] != "Completed":
            raise JobFailed(self.name, desc["TrainingJobStatus"], desc.get("FailureReason"))
        return desc

    def wait_quietly(self, timeout: float | None = None, poll: float = 0.1) -> dict:
        """Block until the job ends without printing anything; returns the description."""
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            desc = self.describe()
            if desc["TrainingJobStatus"] in TERMINAL_STATUSES:
                return desc
            if deadline and time.monotonic() > deadline:
                return desc
            time.sleep(poll)

    def __repr__(self) -> str:
        job = self._record()
        metrics = ", ".join(f"{m['MetricName']}={m['Value']:.4g}" for m in self._store.final_metrics(self.name))
        text = f"TrainingJob({self.name!r}, status={job['status']}"
        if job["failure_reason"]:
            text += f", reason={job['failure_reason']!r}"
        if metrics:
            text += f", {metrics}"
        if job["model_artifacts"]:
            text += f", model_data={job['model_artifacts']!r}"
        return text + ")"

    def _repr_html_(self) -> str:
        from html import escape
        desc = self.describe()
        rows = [("Status", f"{desc['TrainingJobStatus']} ({desc['SecondaryStatus']})"),
                ("Algorithm", self.algorithm or desc["HyperParameters"].get("sagemaker_program", "")),
                ("Training time", f"{desc['TrainingTimeInSeconds']} s")]
        rows += [(m["MetricName"], f"{m['Value']:.6g}") for m in desc["FinalMetricDataList"]]
        if desc.get("FailureReason"):
            rows.append(("Failure reason", desc["FailureReason"]))
        if desc["ModelArtifacts"]:
            rows.append(("Model artifacts", desc["ModelArtifacts"]["S3ModelArtifacts"]))
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(str(v))}</td></tr>"
                       for k, v in rows)
        return f"<div><b>Training job {escape(self.name)}</b><table>{body}</table></div>"
