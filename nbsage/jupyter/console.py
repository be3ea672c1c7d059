"""What the console shows and does, in SageMaker's words, over the Python API and the store.

The REST handlers (nbsage.jupyter.handlers) are a thin HTTP skin over these functions; keeping the
work here means it can be tested and reused without a web server. Every job kind in the store is
listed the same way: a kind's handle class (a `nbsage.job.Job` subclass such as TrainingJob,
ProcessingJob, or the transform and tuning jobs added later) describes it when one is known, else a
generic description is built from the record, so a new kind shows up without changes here.

Errors: `NotFound` (404) and `Conflict` (409) are raised here; nbsage's ValidationError is a bad
request (400). Each carries one line of text.
"""
from __future__ import annotations

import io
import tarfile
import time

from nbsage.arns import arn
from nbsage.errors import NBSageError

# the SageMaker word a kind's fields start with (TrainingJobName, HyperParameterTuningJobName, ...)
KIND_PREFIX = {"training": "Training", "processing": "Processing", "transform": "Transform",
               "tuning": "HyperParameterTuning", "compilation": "Compilation"}
# modules that define a kind's handle; imported on first use (a missing one is simply skipped)
HANDLE_MODULES = ("nbsage.training_job", "nbsage.processing", "nbsage.transformer", "nbsage.tuner")
STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
LIST_LIMIT = 200


class NotFound(NBSageError):
    """No job, endpoint or model of that name (HTTP 404)."""


class Conflict(NBSageError):
    """The thing exists but is in the wrong state for the action (HTTP 409)."""


def prefix(kind: str) -> str:
    return KIND_PREFIX.get(kind) or kind.replace("_", " ").title().replace(" ", "")


# ---- job handles --------------------------------------------------------------------------------
def _handle_classes() -> dict[str, type]:
    import importlib

    from nbsage.job import Job
    for module in HANDLE_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    found: dict[str, type] = {}
    todo = list(Job.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        kind = getattr(cls, "kind", "") or ("training" if cls.__name__ == "TrainingJob" else "")
        if kind and kind not in found and not cls.__name__.startswith("_"):
            found[kind] = cls
    return found


def _record(session, name: str) -> dict:
    from nbsage.errors import JobError
    try:
        return session.store.get_job(name)
    except JobError as e:
        raise NotFound(str(e)) from None


def handle(session, name: str):
    """The API's handle on a job of any kind (None for a kind without one)."""
    record = _record(session, name)
    cls = _handle_classes().get(record["kind"])
    return cls(name, session) if cls else None


def _generic_describe(session, record: dict) -> dict:
    """A Describe*Job shape for a kind without a handle class, from the record alone."""
    import json

    from nbsage.store.metadata import iso
    p = prefix(record["kind"])
    out = {f"{p}JobName": record["name"], f"{p}JobArn": arn(f"{record['kind']}-job", record["name"]),
           f"{p}JobStatus": record["status"], "SecondaryStatus": record["secondary_status"],
           "CreationTime": iso(record["creation_time"]), f"{p}StartTime": iso(record["start_time"]),
           f"{p}EndTime": iso(record["end_time"]), "LastModifiedTime": iso(record["last_modified"]),
           "nbsage:Backend": record["backend"], "nbsage:Request": json.loads(record["request"])}
    if record.get("failure_reason"):
        out["FailureReason"] = record["failure_reason"]
    return out


def describe_job(session, name: str) -> dict:
    """Describe*Job of any kind, plus `nbsage:Kind` and the status history for every kind."""
    record = _record(session, name)
    job = handle(session, name)
    desc = job.describe() if job is not None else _generic_describe(session, record)
    desc = dict(desc)
    desc["nbsage:Kind"] = record["kind"]
    desc.setdefault("SecondaryStatus", desc.get("nbsage:SecondaryStatus", record["secondary_status"]))
    if "SecondaryStatusTransitions" not in desc:
        from nbsage.store.metadata import iso
        desc["SecondaryStatusTransitions"] = [
            {"Status": t["status"], "StartTime": iso(t["start_time"]), "EndTime": iso(t["end_time"]),
             "StatusMessage": t["message"] or ""} for t in session.store.transitions(name)]
    return desc


def _objective(desc: dict) -> dict | None:
    """The metric a row shows: the job's validation metric where it has one, else its first."""
    finals = desc.get("FinalMetricDataList") or []
    for m in finals:
        if m["MetricName"].startswith("validation:"):
            return {"MetricName": m["MetricName"], "Value": m["Value"]}
    return {"MetricName": finals[0]["MetricName"], "Value": finals[0]["Value"]} if finals else None


def _instance_count(desc: dict) -> int | None:
    for key in ("ResourceConfig", "ProcessingResources", "TransformResources"):
        conf = desc.get(key) or {}
        conf = conf.get("ClusterConfig", conf)
        if "InstanceCount" in conf:
            return conf["InstanceCount"]
    return None


def summary(desc: dict) -> dict:
    """One row of the jobs list: List*Jobs' summary fields, plus what the console shows."""
    p = prefix(desc["nbsage:Kind"])
    keep = (f"{p}JobName", f"{p}JobArn", f"{p}JobStatus", "SecondaryStatus", "CreationTime",
            f"{p}StartTime", f"{p}EndTime", "LastModifiedTime", "FailureReason", "TrainingTimeInSeconds")
    row = {k: desc[k] for k in keep if k in desc}
    start, end = desc.get(f"{p}StartTime"), desc.get(f"{p}EndTime")
    row.update({
        "nbsage:Kind": desc["nbsage:Kind"],
        "nbsage:Backend": desc.get("nbsage:Backend"),
        "nbsage:InstanceCount": _instance_count(desc),
        "nbsage:ObjectiveMetric": _objective(desc),
        "nbsage:Progress": desc.get("nbsage:Progress"),
        "nbsage:DurationSeconds": _seconds(start, end),
        "nbsage:Algorithm": _algorithm(desc),
    })
    return row


def _seconds(start: str | None, end: str | None) -> int | None:
    from datetime import datetime
    if not start:
        return None
    t0 = datetime.fromisoformat(start).timestamp()
    t1 = datetime.fromisoformat(end).timestamp() if end else time.time()
    return int(round(t1 - t0))


def _algorithm(desc: dict) -> str:
    import json
    hps = desc.get("HyperParameters") or {}
    if "sagemaker_program" in hps:
        try:
            return json.loads(hps["sagemaker_program"])
        except ValueError:
            return hps["sagemaker_program"]
    spec = desc.get("AlgorithmSpecification") or desc.get("AppSpecification") or {}
    return spec.get("AlgorithmName") or spec.get("TrainingImage") or spec.get("ImageUri") or ""


def list_jobs(session, status: str | None = None, kind: str | None = None, text: str | None = None,
              limit: int = LIST_LIMIT) -> list[dict]:
    """Jobs of every kind, newest first, filtered by status, kind and a text in the name or algorithm."""
    from nbsage.errors import ValidationError
    if status and status not in STATUSES:
        raise ValidationError(f"status {status!r} is not a job status; statuses are {', '.join(STATUSES)}")
    session.watch_jobs()
    rows = []
    for record in session.store.list_jobs(limit=limit, kind=kind or None):
        try:
            row = summary(describe_job(session, record["name"]))
        except NotFound:  # deleted between the list and the describe
            continue
        p = prefix(row["nbsage:Kind"])
        if status and row.get(f"{p}JobStatus") != status:
            continue
        if text and text.lower() not in f"{record['name']} {row['nbsage:Algorithm']}".lower():
            continue
        rows.append(row)
    return rows


def job_kinds(session) -> list[str]:
    """The kinds that have handles here, and any other kind found in the store."""
    kinds = set(_handle_classes())
    kinds.update(r["kind"] for r in session.store.list_jobs(limit=LIST_LIMIT))
    return sorted(kinds)


def metrics(session, name: str, after: int = 0) -> list[dict]:
    """Every metric value after id `after` (MetricName, Value, Step, Timestamp, id)."""
    from nbsage.store.metadata import iso
    _record(session, name)
    return [{"id": m["id"], "MetricName": m["name"], "Value": m["value"], "Step": m["step"],
             "Timestamp": iso(m["timestamp"])} for m in session.store.get_metrics(name, after_id=after)]


def logs(session, name: str, since: int = 0, limit: int | None = None, tail: int | None = None) -> dict:
    """Log lines after sequence number `since` (the last `tail` of them when given), as every face shows
    them (no #metric/#progress lines); `next` is the `since` that reads on from here."""
    from nbsage.arguments import is_protocol_line
    record = _record(session, name)
    rows = session.store.get_logs(name, after_seq=since, limit=limit)
    lines = [{"seq": seq, "Timestamp": ts, "Message": line} for seq, ts, line in rows if not is_protocol_line(line)]
    if tail:
        lines = lines[-tail:]
    return {"events": lines, "next": rows[-1][0] if rows else since,
            "ended": record["status"] in ("Completed", "Failed", "Stopped")}


def stop_job(session, name: str) -> dict:
    """Stop*Job; a job that already ended is a conflict."""
    from nbsage.store.metadata import TERMINAL
    record = _record(session, name)
    if record["status"] in TERMINAL:
        raise Conflict(f"job {name!r} has already ended ({record['status']}); only a running job can be stopped")
    job = handle(session, name)
    if job is None:
        raise Conflict(f"{record['kind']} jobs cannot be stopped from here")
    job.stop()
    return describe_job(session, name)


# ---- artifacts ----------------------------------------------------------------------------------
def _artifact_url(desc: dict) -> str | None:
    return (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")


def artifact_listing(session, name: str) -> dict:
    """The files inside a job's model.tar.gz (name, size), and where it is."""
    desc = describe_job(session, name)
    url = _artifact_url(desc)
    if not url:
        raise NotFound(f"job {name!r} has no model artifacts")
    with _open_artifact(url) as f:
        with tarfile.open(fileobj=f, mode="r:*") as tar:
            files = [{"Name": m.name, "Size": m.size} for m in tar.getmembers() if m.isfile()]
    return {"S3ModelArtifacts": url, "Files": files}


def _open_artifact(url: str):
    import fsspec
    try:
        return fsspec.open(url, "rb").open()
    except (OSError, ValueError) as e:
        raise NotFound(f"the model artifact {url} cannot be read: {e}") from None


def artifact_bytes(session, name: str) -> tuple[bytes, str]:
    """model.tar.gz itself, for the download link."""
    url = _artifact_url(describe_job(session, name))
    if not url:
        raise NotFound(f"job {name!r} has no model artifacts")
    with _open_artifact(url) as f:
        return f.read(), url.rsplit("/", 1)[-1]


# ---- models -------------------------------------------------------------------------------------
def list_models(session) -> list[dict]:
    """DescribeModel-shaped records with the endpoints serving each (nbsage.model_list, shared with
    `nbsage models` and `%sm_models`)."""
    from nbsage.model_list import list_models as models
    return models(session, limit=LIST_LIMIT)


def _request(record: dict) -> dict:
    import json
    try:
        return json.loads(record["request"])
    except (TypeError, ValueError):
        return {}


def _iso(ts):
    from nbsage.store.metadata import iso
    return iso(ts)


# ---- endpoints ----------------------------------------------------------------------------------
class InvocationStats:
    """Invocations made through this console, per endpoint: count, errors, mean latency."""

    def __init__(self):
        self.by_endpoint: dict[str, dict] = {}

    def record(self, name: str, seconds: float, error: bool) -> None:
        s = self.by_endpoint.setdefault(name, {"Invocations": 0, "InvocationErrors": 0, "TotalLatency": 0.0})
        s["Invocations"] += 1
        s["InvocationErrors"] += int(error)
        s["TotalLatency"] += seconds

    def of(self, name: str) -> dict:
        s = self.by_endpoint.get(name)
        if not s:
            return {"Invocations": 0, "InvocationErrors": 0, "ModelLatencyMs": None}
        return {"Invocations": s["Invocations"], "InvocationErrors": s["InvocationErrors"],
                "ModelLatencyMs": round(1000 * s["TotalLatency"] / s["Invocations"], 2)}


def list_endpoints(session) -> list[dict]:
    return session.list_endpoints()


def describe_endpoint(session, name: str) -> dict:
    from nbsage.errors import EndpointError
    try:
        return session.describe_endpoint(name)
    except EndpointError as e:
        if "no endpoint named" in str(e):
            raise NotFound(str(e)) from None
        raise


def invoke_endpoint(session, name: str, body: bytes, content_type: str, accept: str | None,
                    stats: InvocationStats | None = None) -> dict:
    """InvokeEndpoint with a test payload; the answer as text (or base64 when it is binary)."""
    import base64

    from nbsage.errors import ModelError
    desc = describe_endpoint(session, name)
    if desc["EndpointStatus"] != "InService" and not (desc["EndpointStatus"] == "Updating" and desc.get("Url")):
        raise Conflict(f"endpoint {name!r} is {desc['EndpointStatus']}, not InService")  # variants serve while Updating
    t0 = time.perf_counter()
    try:
        data, response_type, _ = session.invoke_endpoint(name, body, content_type, accept)
    except ModelError as e:
        if stats:
            stats.record(name, time.perf_counter() - t0, True)
        return {"StatusCode": getattr(e, "status", 500), "Error": str(e)}
    seconds = time.perf_counter() - t0
    if stats:
        stats.record(name, seconds, False)
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode(), "base64"
    return {"StatusCode": 200, "ContentType": response_type, "Body": text, "BodyEncoding": encoding,
            "LatencyMs": round(seconds * 1000, 2)}


def delete_endpoint(session, name: str) -> None:
    describe_endpoint(session, name)  # NotFound first
    session.delete_endpoint(name)


def shadow_report(session, name: str) -> dict:
    """The endpoint's shadow test (nbsage.serving.shadow): per-variant counts and latency, agreement."""
    from nbsage.errors import EndpointError
    from nbsage.serving.shadow import shadow_report as report
    describe_endpoint(session, name)  # NotFound first
    try:
        return report(session, name).to_dict()
    except EndpointError as e:
        raise Conflict(str(e)) from None


def promote_shadow(session, name: str) -> dict:
    """Make the shadow the production variant (an update that drops no request); the new description."""
    from nbsage.errors import EndpointError
    from nbsage.serving.shadow import promote_shadow as promote
    desc = describe_endpoint(session, name)
    if not desc.get("ShadowProductionVariants"):
        raise Conflict(f"endpoint {name!r} has no shadow variant to promote")
    try:
        return promote(session, name, wait=False)
    except EndpointError as e:
        raise Conflict(str(e)) from None


def deploy(session, job_name: str, endpoint_name: str | None = None, instance_count: int = 1,
           wait: bool = False) -> dict:
    """Deploy a completed training job's model to a new endpoint (Creating until its server answers)."""
    from nbsage.errors import ValidationError
    from nbsage.estimator import Estimator
    record = _record(session, job_name)
    if record["kind"] != "training":
        raise Conflict(f"{job_name!r} is a {record['kind']} job: only a training job's model can be deployed")
    if record["status"] not in ("Completed", "Stopped") or not record.get("model_artifacts"):
        raise Conflict(f"training job {job_name!r} is {record['status']}: only a completed job has a model to deploy")
    if not isinstance(instance_count, int) or instance_count < 1:
        raise ValidationError(f"InitialInstanceCount must be a whole number of at least 1, got {instance_count!r}")
    from nbsage.store.names import unique_name
    name = endpoint_name or unique_name(job_name[:40] + "-ep")
    estimator = Estimator.attach(job_name, sagemaker_session=session)
    estimator.deploy(initial_instance_count=instance_count, endpoint_name=name, wait=wait)
    return describe_endpoint(session, name)



# ---- monitoring schedules (nbsage.model_monitor) -------------------------------------------------
def list_monitoring_schedules(session) -> list[dict]:
    from nbsage.model_monitor import list_monitoring_schedules
    return list_monitoring_schedules(session)


def describe_monitoring_schedule(session, name: str) -> dict:
    from nbsage.errors import JobError
    from nbsage.model_monitor import describe_monitoring_schedule
    try:
        return describe_monitoring_schedule(name, session)
    except JobError as e:
        raise NotFound(str(e)) from None


# ---- places -------------------------------------------------------------------------------------
def list_places(session) -> list[dict]:
    """Every place with what it offers; a place that cannot describe itself here says why."""
    from nbsage import places
    out = []
    for name in places.names():
        try:
            info = places.describe(name, session)
        except Exception as e:  # a dask place without a scheduler, a kernel place without a gateway
            from nbsage.arguments import one_line
            info = {"options": [o.name for o in places.options(name)], "Unavailable": one_line(e)}
        out.append({"PlaceName": name, **info})
    return out


def model_tar_listing(data: bytes) -> list[str]:
    """The names in a model.tar.gz held in memory (for tests and small archives)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return tar.getnames()
