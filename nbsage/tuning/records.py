"""DescribeHyperParameterTuningJob and ListTrainingJobsForHyperParameterTuningJob, from the store.

A tuning job is a record of kind "tuning" (its request: CreateHyperParameterTuningJob's shape); its
trials are training jobs whose `parent` is the tuning job. Everything here reads the store only,
so the CLI, `%sm_jobs` and the console describe tuning jobs without loading Optuna.
"""
from __future__ import annotations

import json
import time

from nbsage.arns import arn
from nbsage.store.metadata import iso


def _request(job: dict) -> dict:
    return json.loads(job["request"]) if isinstance(job["request"], str) else job["request"]


def objective_of(request: dict) -> tuple[str, str]:
    objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    return objective["MetricName"], objective["Type"]


def trial_summaries(session, name: str, job: dict | None = None) -> list[dict]:
    """HyperParameterTrainingJobSummary of each trial, oldest first."""
    store = session.store
    job = job or store.get_job(name)
    metric, kind = objective_of(_request(job))
    out = []
    for trial in store.children(name):
        request = json.loads(trial["request"])
        finals = {m["MetricName"]: m["Value"] for m in store.final_metrics(trial["name"])}
        status = trial["status"]
        value = finals.get(metric)
        summary = {
            "TrainingJobName": trial["name"],
            "TrainingJobArn": arn("training-job", trial["name"]),
            "TuningJobName": name,
            "CreationTime": iso(trial["creation_time"]),
            "TrainingStartTime": iso(trial["start_time"]),
            "TrainingEndTime": iso(trial["end_time"]),
            "TrainingJobStatus": status,
            "TunedHyperParameters": dict(request.get("nbsage:TunedHyperParameters") or {}),
            "ObjectiveStatus": ("Succeeded" if value is not None and status in ("Completed", "Stopped")
                                else "Pending" if status in ("InProgress", "Stopping") else "Failed"),
            "nbsage:Elapsed": ((trial["end_time"] or time.time()) - trial["start_time"]) if trial["start_time"] else 0.0,
        }
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": metric, "Type": kind, "Value": value}
        if trial["failure_reason"]:
            summary["FailureReason"] = trial["failure_reason"]
        elif status == "Completed" and value is None:
            emitted = ", ".join(sorted(finals)) or "no metrics"
            summary["FailureReason"] = (f"the objective metric {metric!r} was not emitted by the training job "
                                        f"(it emitted {emitted})")
        out.append(summary)
    return out


def best_of(trials: list[dict], maximize: bool) -> dict | None:
    """The best completed trial (a stopped-early trial has no model to deploy)."""
    scored = [t for t in trials if t["ObjectiveStatus"] == "Succeeded" and t["TrainingJobStatus"] == "Completed"]
    if not scored:
        return None
    key = lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]  # noqa: E731
    return max(scored, key=key) if maximize else min(scored, key=key)


def describe(session, name: str) -> dict:
    """DescribeHyperParameterTuningJob."""
    store = session.store
    job = store.get_job(name)
    request = _request(job)
    metric, kind = objective_of(request)
    trials = trial_summaries(session, name, job)
    counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for t in trials:
        status = t["TrainingJobStatus"]
        if status == "Failed":
            reason = t.get("FailureReason") or ""
            counters["RetryableError" if reason.startswith("InternalServerError") else "NonRetryableError"] += 1
        else:
            counters["InProgress" if status == "Stopping" else status] += 1
        objectives[t["ObjectiveStatus"]] += 1
    desc = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", name),
        "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
        "TrainingJobDefinition": request["TrainingJobDefinition"],
        "HyperParameterTuningJobStatus": job["status"],
        "CreationTime": iso(job["creation_time"]),
        "HyperParameterTuningEndTime": iso(job["end_time"]),
        "LastModifiedTime": iso(job["last_modified"]),
        "TrainingJobStatusCounters": counters,
        "ObjectiveStatusCounters": objectives,
        "nbsage:Place": request.get("nbsage:Place", "local"),
    }
    if request.get("WarmStartConfig"):
        desc["WarmStartConfig"] = request["WarmStartConfig"]
    best = best_of(trials, kind == "Maximize")
    if best:
        desc["BestTrainingJob"] = best
    warm = request.get("WarmStartConfig") or {}
    if warm.get("WarmStartType") == "IdenticalDataAndAlgorithm":
        everyone = list(trials)
        for parent in warm.get("ParentHyperParameterTuningJobs", []):
            try:
                everyone += trial_summaries(session, parent["HyperParameterTuningJobName"])
            except Exception:  # a parent deleted since: its trials are not in the comparison
                continue
        overall = best_of(everyone, kind == "Maximize")
        if overall:
            desc["OverallBestTrainingJob"] = overall
    if job["failure_reason"]:
        desc["FailureReason"] = job["failure_reason"]
    return desc
