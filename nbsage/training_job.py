"""TrainingJob: a handle on one recorded training job — describe, wait, logs, metrics, stop (nbsage.job)."""
from __future__ import annotations

import json
import time

from nbsage.arns import arn
from nbsage.job import Job
from nbsage.store.metadata import TERMINAL, iso
from nbsage.store.requests import TrainingRequest

TERMINAL_STATUSES = TERMINAL


class TrainingJob(Job):
    """A training job in the store. Cheap to create; every property reads the store afresh."""

    status_field = "TrainingJobStatus"

    def describe(self) -> dict:
        """The DescribeTrainingJob shape."""
        job = self._record()
        request = TrainingRequest.from_json(job["request"])
        start, end = job["start_time"], job["end_time"]
        seconds = int(round((end or time.time()) - start)) if start else 0
        transitions = self._store.transitions(self.name)
        desc = {
            "TrainingJobName": self.name,
            "TrainingJobArn": arn("training-job", self.name),
            "TrainingJobStatus": job["status"],
            "SecondaryStatus": job["secondary_status"],
            "SecondaryStatusTransitions": [
                {"Status": t["status"], "StartTime": iso(t["start_time"]), "EndTime": iso(t["end_time"]),
                 "StatusMessage": t["message"] or ""} for t in transitions],
            **request.described(),
            "FinalMetricDataList": self._store.final_metrics(self.name),
            "ModelArtifacts": {"S3ModelArtifacts": job["model_artifacts"]} if job["model_artifacts"] else {},
            "CreationTime": iso(job["creation_time"]),
            "TrainingStartTime": iso(start),
            "TrainingEndTime": iso(end),
            "LastModifiedTime": iso(job["last_modified"]),
            "TrainingTimeInSeconds": seconds,
            "BillableTimeInSeconds": _billable(job, request.managed_spot, transitions, seconds),
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
    def model_data(self) -> str | None:
        return self._record()["model_artifacts"]

    @property
    def hyperparameters(self) -> dict:
        return TrainingRequest.from_json(self._record()["request"]).hyperparameters

    @property
    def algorithm(self) -> str | None:
        return TrainingRequest.from_json(self._record()["request"]).image

    @property
    def request(self) -> dict:
        return json.loads(self._record()["request"])

    def final_metrics(self) -> dict[str, float]:
        return {m["MetricName"]: m["Value"] for m in self._store.final_metrics(self.name)}

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
        status, secondary = desc["TrainingJobStatus"], desc["SecondaryStatus"]
        rows = [("Status", status + (f" ({secondary})" if secondary and secondary != status else "")),
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


def _billable(job: dict, managed_spot: bool, transitions: list[dict], seconds: int) -> int:
    """BillableTimeInSeconds: the training time, less, under managed spot, the time spent
    Interrupted or Restarting (recorded at the end; counted from the transitions while it runs)."""
    start, end = job["start_time"], job["end_time"]
    if not (managed_spot and start):
        return seconds
    if job.get("billable_seconds") is not None:
        billable = int(round(job["billable_seconds"]))
    else:
        from nbsage.backends.spot import unbilled_seconds
        now = time.time()
        billable = int(round(max(0.0, (end or now) - start - unbilled_seconds(transitions, now))))
    return min(billable, seconds)
