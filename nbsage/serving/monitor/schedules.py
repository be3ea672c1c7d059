"""Monitoring schedules and their executions, run by nbsage's own scheduler.

A schedule is a record under `<NBSAGE_HOME>/monitoring/schedules/<name>/schedule.json` in
DescribeMonitoringSchedule's shape; each execution is a record beside it (`executions/<job>.json`, in
ListMonitoringExecutions' summary shape) and its files — statistics.json and
constraint_violations.json — go to `<output>/<endpoint>/<schedule>/YYYY/MM/DD/HH/` as Model Monitor
writes them (a run started by hand with `run_now` gets a `MM-SS` folder below its hour, so two never
overwrite each other).

Who runs the schedule: a small detached process per schedule (`python -m
nbsage.serving.monitor.scheduler`), started with the schedule, that sleeps until the cron expression's
next time, runs the execution due, and ends when the schedule is stopped or deleted. It outlives the
kernel that made it, as an endpoint does; whenever nbsage reads the schedule (describe, list
executions) and finds it Scheduled with no scheduler alive (after a reboot), it starts one again. A
missed time is not back-filled: only the latest due execution runs, as on SageMaker.

What an execution reads: the captured records of the schedule's endpoint (every variant) whose
inferenceTime falls in its window — the interval since the schedule's previous time (an hour for
an hourly schedule) — turned into rows as `datasets.captured_rows` says, checked against the
baseline's constraints and statistics (`statistics.evaluate`). No captured record in the window is
a Failed execution ("Job inputs had no data"), as on SageMaker.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from nbsage.arns import arn
from nbsage.errors import JobError, NBSageError, ValidationError
from nbsage.serving.monitor import cron, datasets, statistics
from nbsage.serving.monitor.storage import (join, list_files, load_record, monitoring_dir, read_bytes, read_json,
                                            save_record, write_json)
from nbsage.store.metadata import iso, pid_alive

VIOLATIONS = "constraint_violations.json"
STATISTICS = "statistics.json"
SCHEDULER_MODULE = "nbsage.serving.monitor.scheduler"


def _folder(session, name: str) -> Path:
    return monitoring_dir(session) / "schedules" / name


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def load(session, name: str) -> dict:
    """The schedule's full record (with nbsage's own fields); JobError with a did-you-mean when unknown."""
    record = load_record(_folder(session, name) / "schedule.json")
    if record is None:
        from nbsage.errors import did_you_mean
        raise JobError(f"no monitoring schedule named {name!r}{did_you_mean(name, names(session))}")
    return record


def names(session) -> list[str]:
    root = monitoring_dir(session) / "schedules"
    return sorted(p.parent.name for p in root.glob("*/schedule.json")) if root.is_dir() else []


def _save(session, record: dict) -> None:
    record["LastModifiedTime"] = iso(time.time())
    save_record(_folder(session, record["MonitoringScheduleName"]) / "schedule.json", record)


# ---- create / describe / stop / start / delete -----------------------------------------------------------
def create(session, name: str, endpoint_name: str, output_uri: str, statistics_uri: str, constraints_uri: str,
           expression: str, output_first: bool = True, start_offset: str | None = None,
           end_offset: str | None = None, start_scheduler: bool = True) -> dict:
    """CreateMonitoringSchedule for an endpoint that captures data; returns its description."""
    from nbsage.serving.capture import resolved_destination
    from nbsage.store.names import check_name
    check_name(name, "monitoring schedule")
    expression = cron.check(expression)
    if (_folder(session, name) / "schedule.json").exists():
        raise ValidationError(f"a monitoring schedule named {name!r} already exists; delete it first or choose "
                              "another name")
    config = session.store.get_endpoint(endpoint_name)["config"]  # EndpointError with a did-you-mean
    capture = config.get("DataCaptureConfig")
    if not capture or not capture.get("EnableCapture", True):
        raise ValidationError(f"endpoint {endpoint_name!r} does not capture data, so there is nothing to monitor; "
                              "deploy it with data_capture_config=DataCaptureConfig(enable_capture=True, ...)")
    for what, uri in (("statistics", statistics_uri), ("constraints", constraints_uri)):
        try:
            read_json(str(session.resolve_uri(uri)))
        except (OSError, ValueError) as exc:
            raise ValidationError(f"baseline {what} {uri} cannot be read ({type(exc).__name__}: {exc}); give the "
                                  f"{what}.json of a baselining job (monitor.suggest_baseline)") from None
    now = iso(time.time())
    record = {
        "MonitoringScheduleArn": arn("monitoring-schedule", name), "MonitoringScheduleName": name,
        "MonitoringScheduleStatus": "Scheduled", "MonitoringType": "DataQuality", "CreationTime": now,
        "LastModifiedTime": now, "EndpointName": endpoint_name,
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": expression,
                               **({"DataAnalysisStartTime": start_offset} if start_offset else {}),
                               **({"DataAnalysisEndTime": end_offset} if end_offset else {})},
            "MonitoringType": "DataQuality",
            "MonitoringJobDefinition": {
                "BaselineConfig": {"ConstraintsResource": {"S3Uri": constraints_uri},
                                   "StatisticsResource": {"S3Uri": statistics_uri}},
                "MonitoringInputs": [{"EndpointInput": {"EndpointName": endpoint_name,
                                                        "LocalPath": "/opt/ml/processing/input/endpoint"}}],
                "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
                    "S3Uri": output_uri, "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]}}},
        # where the URIs really are, resolved once here: the scheduler process has no caller's session
        "nbsage": {"CaptureUri": join(resolved_destination(capture, session), endpoint_name),
                   "Statistics": str(session.resolve_uri(statistics_uri)),
                   "Constraints": str(session.resolve_uri(constraints_uri)),
                   "Output": str(session.resolve_uri(output_uri)),
                   "OutputFirst": output_first, "LastScheduledTime": now, "SchedulerPid": None},
    }
    _save(session, record)
    if start_scheduler:
        ensure_scheduler(session, name)
    return describe(session, name, start_scheduler=False)


def describe(session, name: str, start_scheduler: bool = True) -> dict:
    """DescribeMonitoringSchedule, with LastMonitoringExecutionSummary; a Scheduled schedule whose
    scheduler is gone gets a new one."""
    record = load(session, name)
    if start_scheduler and record["MonitoringScheduleStatus"] == "Scheduled":
        ensure_scheduler(session, name)
        record = load(session, name)
    out = {k: v for k, v in record.items() if k != "nbsage"}
    executions = list_executions(session, name)
    if executions:
        out["LastMonitoringExecutionSummary"] = executions[-1]
    return out


def set_status(session, name: str, status: str) -> None:
    """Stop ('Stopped') or start ('Scheduled') a schedule; a stopped one's scheduler ends."""
    record = load(session, name)
    record["MonitoringScheduleStatus"] = status
    _save(session, record)
    if status == "Scheduled":
        ensure_scheduler(session, name)
    else:
        _stop_scheduler(record)


def delete(session, name: str) -> None:
    """Delete a schedule and its execution records (the files it wrote stay where they are, as on S3)."""
    import shutil
    record = load(session, name)
    _stop_scheduler(record)
    shutil.rmtree(_folder(session, name), ignore_errors=True)


# ---- the scheduler process -----------------------------------------------------------------------------------
def _is_scheduler(pid: int | None, name: str) -> bool:
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode("utf-8", errors="replace")
    except OSError:
        return True  # no /proc: the pid is alive, trust it
    return SCHEDULER_MODULE in cmdline and name in cmdline


def ensure_scheduler(session, name: str) -> int:
    """The pid of the schedule's scheduler process, started when none is alive."""
    record = load(session, name)
    pid = record["nbsage"].get("SchedulerPid")
    if _is_scheduler(pid, name) or record["nbsage"].get("RanOnce"):
        return pid  # alive, or a one-time (NOW) schedule that has had its run
    folder = _folder(session, name)
    env = dict(os.environ, NBSAGE_HOME=str(session.home), PYTHONUNBUFFERED="1")
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                           if p and p != package_root])
    if session.artifact_root:
        env["NBSAGE_ARTIFACT_ROOT"] = str(session.artifact_root)
    with open(folder / "scheduler.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", SCHEDULER_MODULE, "--name", name], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env,
                                start_new_session=True, close_fds=True)
    import threading
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-scheduler-{name}").start()
    record["nbsage"]["SchedulerPid"] = proc.pid
    _save(session, record)
    return proc.pid


def _stop_scheduler(record: dict) -> None:
    pid = record["nbsage"].get("SchedulerPid")
    if pid and _is_scheduler(pid, record["MonitoringScheduleName"]):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def run_due(session, name: str, now: datetime | None = None) -> dict | None:
    """Run the execution the schedule owes at `now` (the latest time it fired since its last one), if
    any; its summary, or None when nothing is due. The scheduler process calls this at each time."""
    now = now or _now()
    record = load(session, name)
    if record["MonitoringScheduleStatus"] != "Scheduled":
        return None
    expression = record["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"]
    last = _parse(record["nbsage"]["LastScheduledTime"])
    if expression == cron.NOW:
        if record["nbsage"].get("RanOnce"):
            return None
        config = record["MonitoringScheduleConfig"]["ScheduleConfig"]
        start = now + cron.offset(config.get("DataAnalysisStartTime"), timedelta(hours=-1))
        end = now + cron.offset(config.get("DataAnalysisEndTime"), timedelta(0))
        record["nbsage"]["RanOnce"] = True
        _save(session, record)
        return run_execution(session, name, now, start, end, manual=True)
    due = cron.last_time(expression, now)
    if due <= last or not _claim(session, name, due):
        return None  # not due, or another process (the scheduler, a notebook) has taken this time
    previous = cron.last_time(expression, due - timedelta(seconds=1))
    record["nbsage"]["LastScheduledTime"] = iso(due.timestamp())
    _save(session, record)
    return run_execution(session, name, due, previous, due)


def _claim(session, name: str, due: datetime) -> bool:
    """Take the run of one scheduled time; False when another process already has: each time runs once."""
    claims = _folder(session, name) / "claims"
    claims.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(claims / f"{due:%Y%m%d%H%M}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


# ---- executions ----------------------------------------------------------------------------------------------
def _execution_path(session, name: str, job_name: str) -> Path:
    return _folder(session, name) / "executions" / f"{job_name}.json"


def list_executions(session, name: str) -> list[dict]:
    """The schedule's execution summaries, oldest first."""
    folder = _folder(session, name) / "executions"
    records = [load_record(p) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted((r for r in records if r), key=lambda r: (r["ScheduledTime"], r["CreationTime"]))


def captured_records(capture_uri: str, start: datetime, end: datetime) -> list[dict]:
    """The capture records under `<destination>/<endpoint>` with inferenceTime in [start, end]."""
    records = []
    for url in list_files(capture_uri):
        if not url.endswith(".jsonl"):
            continue
        parts = url.rstrip("/").split("/")
        try:  # .../<variant>/YYYY/MM/DD/HH/<file>: files start within their hour, and roll within seconds
            hour = datetime(*(int(p) for p in parts[-5:-1]), tzinfo=timezone.utc)
        except (TypeError, ValueError):
            continue
        if hour > end or hour + timedelta(hours=2) < start:
            continue
        for line in read_bytes(url).decode("utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            when = datasets.record_time(record)
            if when is not None and start <= when <= end:
                records.append(record)
    return records


def run_execution(session, name: str, scheduled: datetime, start: datetime, end: datetime,
                  manual: bool = False) -> dict:
    """Run one monitoring execution over the captured data in [start, end]; its summary."""
    record = load(session, name)
    endpoint = record["EndpointName"]
    definition = record["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    stamp = f"{scheduled:%Y%m%d%H%M}"
    digest = hashlib.sha1(f"{name}{scheduled.isoformat()}{time.time()}".encode()).hexdigest()[:8]
    job_name = f"model-monitoring-{stamp}-{digest}"
    folder = f"{scheduled:%Y/%m/%d/%H}" + (f"/{scheduled:%M-%S}" if manual else "")
    where = (endpoint, name, folder)
    output = join(definition["MonitoringOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["S3Uri"], *where)
    resolved = join(record["nbsage"]["Output"], *where)
    created = time.time()
    summary = {"MonitoringScheduleName": name, "ScheduledTime": iso(scheduled.timestamp()),
               "CreationTime": iso(created), "LastModifiedTime": iso(created),
               "MonitoringExecutionStatus": "InProgress", "ProcessingJobName": job_name,
               "ProcessingJobArn": arn("processing-job", job_name), "EndpointName": endpoint,
               "MonitoringType": "DataQuality", "DataAnalysisStartTime": iso(start.timestamp()),
               "DataAnalysisEndTime": iso(end.timestamp()), "Output": output, "ResolvedOutput": resolved}
    path = _execution_path(session, name, job_name)
    save_record(path, summary)
    try:
        constraints = read_json(record["nbsage"]["Constraints"])
        baseline_stats = read_json(record["nbsage"]["Statistics"])
        captured = captured_records(record["nbsage"]["CaptureUri"], start, end)
        if not captured:
            raise JobError(f"Job inputs had no data: endpoint {endpoint!r} captured nothing between "
                           f"{iso(start.timestamp())} and {iso(end.timestamp())}")
        names_ = [f["name"] for f in constraints.get("features", [])]
        current = datasets.captured_dataset(captured, names_, record["nbsage"].get("OutputFirst", True))
        current_stats, violations = statistics.evaluate(constraints, baseline_stats, current)
        write_json(join(resolved, STATISTICS), current_stats)
        write_json(join(resolved, VIOLATIONS), violations)
        status = "CompletedWithViolations" if violations["violations"] else "Completed"
        summary.update(MonitoringExecutionStatus=status, ItemCount=len(current.rows),
                       ViolationCount=len(violations["violations"]))
    except (NBSageError, OSError, ValueError, KeyError) as exc:
        summary.update(MonitoringExecutionStatus="Failed", FailureReason=str(exc))
    summary["LastModifiedTime"] = iso(time.time())
    save_record(path, summary)
    return summary


def latest_violations(session, name: str) -> list[dict] | None:
    """The violations of the schedule's latest completed execution; None when none has completed."""
    done = [e for e in list_executions(session, name)
            if e["MonitoringExecutionStatus"] in ("Completed", "CompletedWithViolations")]
    if not done:
        return None
    try:
        return read_json(join(done[-1]["ResolvedOutput"], VIOLATIONS)).get("violations", [])
    except (OSError, ValueError):
        return None
