"""Endpoints: a model server process per endpoint, recorded in the store, reachable from any process.

`deploy` unpacks model.tar.gz into `<NBSAGE_HOME>/endpoints/<name>/model` and starts
`python -m nbsage.runtime serve` detached (its own session, output to `server.log` beside it), so
the endpoint outlives the kernel that made it. The store keeps its status, host, port and pid, so
another kernel or the CLI can describe, invoke and delete it. Statuses are SageMaker's:
Creating -> InService, Updating (a crashed server being replaced by the endpoint's supervisor,
serving/supervisor.py), Failed (with a FailureReason), Deleting.

`invoke_endpoint` keeps one keep-alive connection per endpoint and thread; a connection is only
ever reopened after the endpoint's record has been read again, so a recycled port can never send
a request to the wrong server.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from nbsage.arns import arn
from nbsage.errors import EndpointError, ModelError, NBSageError, ValidationError
from nbsage.runtime.layout import PRIVATE_UMASK, private_dir, private_file, private_tree
from nbsage.store.artifacts import is_local, local_path
from nbsage.store.metadata import iso, pid_alive

HOST = "127.0.0.1"
VARIANT = "AllTraffic"
STARTUP_TIMEOUT = 600.0  # seconds for the model to download, load and answer /ping
INVOCATION_TIMEOUT = 60.0  # SageMaker allows a container 60 s per request; the client waits 10 s more
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL; NBSAGE_STOP_GRACE_SECONDS overrides
LOG_NAME = "server.log"
READY_NAME = "ready"
ADDRESS_NAME = "address"  # touched when the endpoint moves to another port (nbsage.serving.variants)
ADDRESS_CHECK = 0.05  # seconds between looks at it; a move waits longer than this before the old port closes


# ---- where an endpoint lives on disk -----------------------------------------------------------
def endpoint_dir(session, name: str) -> Path:
    return Path(session.endpoints_dir) / name


def _log_tail(folder: Path, lines: int = 15, limit: int = 3000) -> str:
    path = folder / LOG_NAME
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return tail[-limit:]


def _failure_text(folder: Path) -> str | None:
    try:
        text = (folder / f"{READY_NAME}.failure").read_text().strip()
    except OSError:
        return None
    return text or None


def _is_server_process(pid: int | None, folder: Path) -> bool:
    """True when pid is alive and is this endpoint's model server (not a recycled pid)."""
    if not pid_alive(pid):
        return False
    marker = str(folder / "model")
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode("utf-8", errors="replace")
    except FileNotFoundError:
        return False
    except OSError:
        try:  # no /proc (macOS): ask ps
            cmdline = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True,
                                     text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return True
    if not cmdline.strip():
        return True  # alive with no command line yet: it is still in execve, just started by deploy
    if "nbsage.serving.front" in cmdline:  # an endpoint of variants (nbsage.serving.variants)
        return f"--folder {folder}" in cmdline
    return "nbsage.runtime" in cmdline and marker in cmdline


def _reap(pid: int) -> None:
    """Collect the exit status of a server this process started, so it never lingers as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


# ---- describe ------------------------------------------------------------------------------------
def _arn(name: str) -> str:
    return arn("endpoint", name)


def _describe(session, record: dict) -> dict:
    config = record["config"]
    status = record["status"]
    if config.get("Front"):
        return _describe_front(session, record)
    count = int(config.get("InitialInstanceCount") or 1)
    image = config.get("Algorithm") or config.get("ImageUri") or "nbsage-inference"
    images = [c.get("Algorithm") or c.get("ImageUri") or "nbsage-inference" for c in config["Containers"]] \
        if config.get("Containers") else [image]
    variant = {
        "VariantName": VARIANT,
        "DeployedImages": [{"SpecifiedImage": i, "ResolvedImage": i,
                            "ResolutionTime": iso(record["creation_time"])} for i in images],
        "CurrentWeight": 1.0,
        "DesiredWeight": 1.0,
        "CurrentInstanceCount": count if status == "InService" else 0,
        "DesiredInstanceCount": count,
        "InstanceType": config.get("InstanceType", "local"),
    }
    if config.get("AcceleratorType"):
        variant["AcceleratorType"] = config["AcceleratorType"]
    out = {
        "EndpointName": record["name"],
        "EndpointArn": _arn(record["name"]),
        "EndpointConfigName": config.get("EndpointConfigName", record["name"]),
        "ProductionVariants": [variant],
        "EndpointStatus": status,
        "CreationTime": iso(record["creation_time"]),
        "LastModifiedTime": iso(record["last_modified"]),
    }
    if record.get("failure_reason"):
        out["FailureReason"] = record["failure_reason"]
    if config.get("DataCaptureConfig"):
        from nbsage.serving.capture import STATUS_NAME, describe_capture
        out["DataCaptureConfig"] = describe_capture(config["DataCaptureConfig"],
                                                    endpoint_dir(session, record["name"]) / STATUS_NAME)
    out["Url"] = f"http://{record['host']}:{record['port']}" if record.get("port") else None
    out["ModelDataUrl"] = config.get("ModelDataUrl")
    out["LogFile"] = str(endpoint_dir(session, record["name"]) / LOG_NAME)
    return out


def _describe_front(session, record: dict) -> dict:
    """An endpoint of production (and shadow) variants behind its front (nbsage.serving.variants)."""
    from nbsage.serving.variants import describe_variants
    out = {"EndpointName": record["name"], "EndpointArn": _arn(record["name"])}
    out.update(describe_variants(session, record))
    out.update({"EndpointStatus": record["status"], "CreationTime": iso(record["creation_time"]),
                "LastModifiedTime": iso(record["last_modified"])})
    if record.get("failure_reason"):
        out["FailureReason"] = record["failure_reason"]
    out["Url"] = f"http://{record['host']}:{record['port']}" if record.get("port") else None
    capture = record["config"].get("DataCaptureConfig")
    if capture:
        try:
            from nbsage.serving.capture import STATUS_NAME, describe_capture
        except ImportError:  # data capture not there: the config as recorded
            out["DataCaptureConfig"] = capture
        else:
            out["DataCaptureConfig"] = describe_capture(capture, endpoint_dir(session, record["name"]) / STATUS_NAME)
    production = record["config"].get("ProductionVariants") or []
    if production:  # the first production variant's, as a plain endpoint's (what ListModels matches on)
        out["ModelDataUrl"] = (session.store.find_model(production[0]["ModelName"]) or {}).get("ModelDataUrl")
    out["LogFile"] = str(endpoint_dir(session, record["name"]) / LOG_NAME)
    return out


def _mark_failed(session, name: str, reason: str) -> None:
    session.store.update_endpoint(name, status="Failed", failure_reason=reason)


@contextlib.contextmanager
def failing_the_create(session, name: str):
    """A create that raises leaves its endpoint Failed with the reason; an unexpected error is
    re-raised as an EndpointError that names the endpoint."""
    try:
        yield
    except NBSageError as exc:
        _mark_failed(session, name, str(exc))
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        _mark_failed(session, name, reason)
        raise EndpointError(f"endpoint {name!r} could not be created: {reason}") from exc


# the supervisors this process started, by pid: their exit status says how an endpoint was lost
_launched: dict[int, subprocess.Popen] = {}


def _how_it_ended(pid: int) -> str:
    proc = _launched.get(pid)
    if proc is None:
        return ""
    try:
        code = proc.wait(1)
    except subprocess.TimeoutExpired:
        return ""
    from nbsage.serving.supervisor import exit_text
    return f" ({exit_text(code)})"


def _refresh(session, record: dict) -> dict:
    """Bring a Creating/InService record up to date with its process; returns the record."""
    name, status = record["name"], record["status"]
    if status not in ("Creating", "InService", "Updating"):
        return record
    folder = endpoint_dir(session, name)
    pid = record.get("pid")
    if pid is None:
        return record  # still being set up by the deploying process
    if not _is_server_process(pid, folder):
        _reap(pid)
        reason = _failure_text(folder)
        if reason:
            reason = f"the model failed to load: {reason}"
        else:
            tail = _log_tail(folder, lines=5)
            reason = (f"the model server process (pid {pid}) is no longer running{_how_it_ended(pid)}"
                      + (f"; its log ends with: {tail}" if tail else ""))
        _mark_failed(session, name, reason)
        return session.store.get_endpoint(name)
    return record  # while it runs, the supervisor keeps the status (Creating/InService/Updating)


def describe_endpoint(session, name: str) -> dict:
    """DescribeEndpoint: EndpointName, EndpointArn, EndpointStatus, ProductionVariants, CreationTime,
    LastModifiedTime, FailureReason (when Failed), plus Url, ModelDataUrl and LogFile."""
    record = _refresh(session, session.store.get_endpoint(name))
    out = _describe(session, record)
    from nbsage.serving.autoscaling import endpoint_scaling
    scaling = endpoint_scaling(session, name)
    if scaling:  # nbsage's addition: the scalable variants and their latest scaling activities
        out["AutoScaling"] = scaling
    return out


def list_endpoints(session) -> list[dict]:
    """Every endpoint, newest first, in DescribeEndpoint shape; dead servers are marked Failed."""
    return [_describe(session, _refresh(session, r)) for r in session.store.list_endpoints()]


# ---- deploy --------------------------------------------------------------------------------------
def _stage_model(session, model_data: str, folder: Path) -> Path:
    """Download and unpack model.tar.gz (or copy a model directory) into folder/model."""
    from nbsage.runtime.model_archive import check_archive
    from nbsage.runtime.packaging import unpack
    model_dir = folder / "model"
    if is_local(model_data) and Path(local_path(model_data)).expanduser().is_dir():
        shutil.copytree(Path(local_path(model_data)).expanduser(), model_dir)
        return model_dir
    if is_local(model_data) and not Path(local_path(model_data)).expanduser().exists():
        raise EndpointError(f"model_data {model_data!r} does not exist; give the model.tar.gz of a training job "
                            "(estimator.model_data) or any fsspec URL of one")
    archive = folder / "model.tar.gz"
    source = str(Path(local_path(model_data)).expanduser()) if is_local(model_data) else model_data
    try:
        session.artifacts.get_file(source, archive)
    except (OSError, ImportError, ValueError) as exc:
        raise EndpointError(f"could not download model_data {model_data!r}: {exc}") from None
    try:
        check_archive(archive, model_data)
        unpack(archive, model_dir)
    except ValidationError:
        raise
    except Exception as exc:  # tarfile.ReadError, filter errors, ...
        raise EndpointError(f"model_data {model_data!r} is not a readable model.tar.gz: {exc}") from None
    finally:
        archive.unlink(missing_ok=True)
    return model_dir


def _env_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _server_env(environment: dict | None, entry_point: str | None) -> dict:
    env = dict(os.environ)
    for key, value in (environment or {}).items():
        env[str(key)] = _env_value(value)
    if entry_point:
        env["SAGEMAKER_PROGRAM"] = entry_point
    env.setdefault("PYTHONUNBUFFERED", "1")
    # the server must import this nbsage, wherever it was imported from
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([package_root] + paths)
    return env


def deploy(session, endpoint_name: str, model_data: str, algorithm: str | None = None,
           entry_point: str | None = None, environment: dict | None = None, instance_type: str = "local",
           initial_instance_count: int = 1, wait: bool = True, image_uri: str | None = None,
           startup_timeout: float = STARTUP_TIMEOUT, containers: list[dict] | None = None,
           accelerator_type: str | None = None, data_capture_config=None) -> dict:
    """Create an endpoint serving `model_data` and return its DescribeEndpoint description.

    model_data is a model.tar.gz (local path or any fsspec URL) or a local model directory.
    `algorithm` names a built-in algorithm whose loader serves it; `entry_point` names inference
    code in the model's code/ folder (user code wins when both are given; with neither, the
    archive's code/inference.py is used). `environment` is the container environment. With
    wait=False it returns while Creating; describe_endpoint/wait_for_endpoint follow it.
    `containers` (CreateModel's Containers) serves a serial inference pipeline instead of one model
    (nbsage.serving.pipelines); a GPU instance_type or accelerator_type needs a GPU here (nbsage.serving.gpu).
    `data_capture_config` (the SDK's DataCaptureConfig or CreateEndpointConfig's dict) has the servers
    capture sampled requests and responses (nbsage.serving.capture)."""
    from nbsage.serving.gpu import DEVICE_ENV, inference_device
    from nbsage.store.names import check_name
    check_name(endpoint_name, "endpoint")
    device = inference_device(instance_type, accelerator_type)
    if containers is not None:
        from nbsage.serving.pipelines import check_containers
        check_containers(containers)
    model_data = str(model_data)
    if is_local(model_data):  # record where it really is, whatever the caller's working directory
        model_data = str(Path(local_path(model_data)).expanduser().resolve())
    if algorithm:
        from nbsage import algorithms
        algorithm = algorithms.get(algorithm).name
    if int(initial_instance_count) < 1:
        raise EndpointError(f"initial_instance_count must be at least 1, got {initial_instance_count}")
    if int(initial_instance_count) > 1:  # N model servers behind one address (nbsage.serving.variants)
        from nbsage.serving.variants import deploy_instances
        container = {"Containers": [dict(c) for c in containers]} if containers is not None else {
            "ModelDataUrl": model_data, "Algorithm": algorithm, "EntryPoint": entry_point, "ImageUri": image_uri,
            "Environment": {str(k): _env_value(v) for k, v in (environment or {}).items()}}
        return deploy_instances(session, endpoint_name, container, instance_type, int(initial_instance_count),
                                wait=wait, startup_timeout=startup_timeout, accelerator_type=accelerator_type,
                                data_capture_config=data_capture_config)
    from nbsage.serving.capture import STATUS_NAME, capture_config, server_environment
    capture = capture_config(data_capture_config, session)
    config = {
        "EndpointConfigName": endpoint_name,
        "VariantName": VARIANT,
        "ModelDataUrl": str(model_data),
        "Algorithm": algorithm,
        "EntryPoint": entry_point,
        "ImageUri": image_uri,
        "Environment": {str(k): _env_value(v) for k, v in (environment or {}).items()},
        "InstanceType": instance_type,
        "InitialInstanceCount": int(initial_instance_count),
    }
    if containers is not None:
        config["Containers"] = [dict(c) for c in containers]
    if accelerator_type:
        config["AcceleratorType"] = accelerator_type
    if capture is not None:
        config["DataCaptureConfig"] = capture
    store = session.store
    store.create_endpoint(endpoint_name, config)
    folder = endpoint_dir(session, endpoint_name)
    with failing_the_create(session, endpoint_name):
        if folder.exists():
            shutil.rmtree(folder)  # left over from an endpoint of the same name that was not deleted cleanly
        private_dir(folder)
        if containers is not None:
            from nbsage.serving.pipelines import stage_pipeline
            model_dir = stage_pipeline(containers, folder / "model",
                                       lambda c, into: _stage_model(session, str(c["ModelDataUrl"]), into))
        else:
            model_dir = _stage_model(session, str(model_data), folder)
        private_tree(model_dir)  # copies and archives keep the modes they were made with
        if algorithm and containers is None and not entry_point and not (environment or {}).get("SAGEMAKER_PROGRAM"):
            # the algorithm's own model file, named before a server fails on it
            from nbsage.runtime.model_archive import check_model_dir
            check_model_dir(model_dir, algorithm, model_data)
        cmd = [sys.executable, "-m", "nbsage.runtime", "serve", "--model-dir", str(model_dir),
               "--host", HOST, "--port", "0", "--ready-file", str(folder / READY_NAME)]
        if algorithm:
            cmd += ["--algorithm", algorithm]
        if entry_point:
            cmd += ["--entry-point", entry_point]
        if containers is not None:
            cmd += ["--pipeline"]
        server_env = _server_env(environment, entry_point)
        if device != "cpu":
            server_env[DEVICE_ENV] = device
        server_env.update(server_environment(capture, endpoint_name, VARIANT, folder / STATUS_NAME, session))
        # the supervisor runs the server as its child and replaces it when it dies (serving/supervisor.py)
        cmd = [sys.executable, "-m", "nbsage.serving.supervisor", "--db", str(store.path),
               "--name", endpoint_name, "--folder", str(folder), "--", *cmd]
        with open(private_file(folder / LOG_NAME), "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=folder, env=server_env,
                                    start_new_session=True, close_fds=True, umask=PRIVATE_UMASK)
        store.update_endpoint(endpoint_name, pid=proc.pid, host=HOST)
        _launched[proc.pid] = proc  # how it ended, for the failure reason, when this process started it
        # reap the server when it ends while this process lives, so it never lingers as a zombie
        threading.Thread(target=proc.wait, daemon=True, name=f"reap-{endpoint_name}").start()
    if wait:
        wait_for_endpoint(session, endpoint_name, timeout=startup_timeout)
    return describe_endpoint(session, endpoint_name)


def wait_for_endpoint(session, name: str, timeout: float = STARTUP_TIMEOUT, poll: float = 0.02) -> dict:
    """Wait until the endpoint is InService; raise EndpointError (with the server's reason and log
    tail) when it fails or does not answer /ping within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        record = _refresh(session, session.store.get_endpoint(name))
        status = record["status"]
        if status == "InService":
            return _describe(session, record)
        if status == "Failed":
            folder = endpoint_dir(session, name)
            tail = _log_tail(folder)
            raise EndpointError(f"endpoint {name!r} failed to start: {record.get('failure_reason')}"
                                + (f"\n--- last lines of {folder / LOG_NAME} ---\n{tail}" if tail else ""))
        if status not in ("Creating", "Updating"):
            raise EndpointError(f"endpoint {name!r} is {status}, not starting")
        if time.monotonic() > deadline:
            folder = endpoint_dir(session, name)
            tail = _log_tail(folder)
            reason = (f"the model server did not answer GET /ping with 200 within {timeout:g} s"
                      + (f"; its log ends with: {_log_tail(folder, lines=3, limit=500)}" if tail else ""))
            _stop_process(record.get("pid"), folder)
            _mark_failed(session, name, reason)
            raise EndpointError(f"endpoint {name!r} failed to start: {reason}"
                                + (f"\n--- last lines of {folder / LOG_NAME} ---\n{tail}" if tail else ""))
        time.sleep(poll)
        poll = min(poll * 1.5, 0.25)


# ---- invoke --------------------------------------------------------------------------------------
_local = threading.local()


def _connections() -> dict:
    conns = getattr(_local, "conns", None)
    if conns is None or getattr(_local, "pid", None) != os.getpid():
        conns = _local.conns = {}
        _local.pid = os.getpid()
    return conns


def _drop_connection(session, name: str) -> None:
    entry = _connections().pop((str(session.home), name), None)
    if entry is not None:
        entry[0].close()


def _connect(session, name: str) -> http.client.HTTPConnection:
    """A fresh connection to an InService endpoint, after reading its record again."""
    marker = str(endpoint_dir(session, name) / ADDRESS_NAME)
    mark = _address_mark(marker)  # before the record: a move after this read is seen next time
    record = _refresh(session, session.store.get_endpoint(name))
    status = record["status"]
    if status == "Updating" and record["config"].get("Front") and record.get("port"):
        status = "InService"  # an endpoint of variants serves while it is updated, as SageMaker's do
    if status in ("Creating", "Updating"):
        raise EndpointError(f"endpoint {name!r} is {status}; wait for it to be InService "
                            "(nbsage.serving.wait_for_endpoint) before invoking it")
    if status == "Failed":
        raise EndpointError(f"endpoint {name!r} is Failed: {record.get('failure_reason') or 'no reason recorded'}; "
                            "delete it and deploy again")
    if status != "InService":
        raise EndpointError(f"endpoint {name!r} is {status}, not InService")
    conn = http.client.HTTPConnection(record["host"] or HOST, record["port"],
                                      timeout=_invocation_timeout(record["config"]) + 10.0)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _connections()[(str(session.home), name)] = [conn, record, marker, mark, time.monotonic() + ADDRESS_CHECK]
    return conn


def _address_mark(marker: str) -> tuple | None:
    """When the endpoint's address last changed (nbsage.serving.variants touches the file): a client
    whose connection predates it reads the record again, so it follows the endpoint to its new port."""
    try:
        stat = os.stat(marker)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _invocation_timeout(config: dict) -> float:
    """The server's time limit per request, as the server reads it (serve.invocation_timeout_seconds):
    NBSAGE_INVOCATION_TIMEOUT_SECONDS, else SAGEMAKER_MODEL_SERVER_TIMEOUT, from the endpoint's Environment
    over the deploying process's environment."""
    env = {**os.environ, **(config.get("Environment") or {})}
    for key in ("NBSAGE_INVOCATION_TIMEOUT_SECONDS", "SAGEMAKER_MODEL_SERVER_TIMEOUT"):
        try:
            value = float(env.get(key) or 0)
        except ValueError:
            continue
        if value > 0:
            return value
    return INVOCATION_TIMEOUT


def _dead_endpoint(session, name: str, exc: Exception) -> EndpointError:
    try:
        record = _refresh(session, session.store.get_endpoint(name))
    except EndpointError as missing:
        return missing
    if record["status"] == "Failed":
        return EndpointError(f"endpoint {name!r} is not running: {record.get('failure_reason')}")
    return EndpointError(f"endpoint {name!r} did not answer: {type(exc).__name__}: {exc}")


def invoke_endpoint(session, name: str, body, content_type: str | None = None, accept: str | None = None,
                    custom_attributes: str | None = None, target_variant: str | None = None,
                    inference_id: str | None = None, target_model: str | None = None) -> tuple[bytes, str, dict]:
    """InvokeEndpoint: POST the body to the endpoint's /invocations.

    `target_model` (TargetModel) picks a model of a multi-model endpoint; an endpoint that serves one
    model (or a pipeline) refuses it, naming what it serves.

    Returns (response body, response content type, response headers). A non-2xx answer raises
    ModelError(status, message); an endpoint that is not running raises EndpointError.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif hasattr(body, "read"):
        body = body.read()
        body = body.encode("utf-8") if isinstance(body, str) else body
    elif body is None:
        body = b""
    elif not isinstance(body, (bytes, bytearray, memoryview)):
        raise EndpointError(f"the request body must be bytes or str, not {type(body).__name__}; "
                            "use a serializer (e.g. CSVSerializer) to encode data")
    headers = {"Content-Type": content_type or "application/octet-stream"}
    if accept:
        headers["Accept"] = accept
    if custom_attributes is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
    if inference_id is not None:
        headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
    if target_model is not None:
        headers["X-Amzn-SageMaker-Target-Model"] = _check_target_model(session, name, target_model)
    key = (str(session.home), name)
    entry = _connections().get(key)
    if entry is not None:
        now = time.monotonic()
        if now >= entry[4]:  # a stat per ADDRESS_CHECK seconds, not per request
            entry[4] = now + ADDRESS_CHECK
            if _address_mark(entry[2]) != entry[3]:
                _drop_connection(session, name)
                entry = None
    reused = entry is not None
    if target_variant is not None:
        if entry is None:
            _connect(session, name)
            entry = _connections()[key]
        config = entry[1]["config"]
        if config.get("Front"):
            headers["X-Amzn-SageMaker-Target-Variant"] = str(target_variant)
        elif target_variant != (config.get("VariantName") or VARIANT):
            raise ValidationError(f"The variant {target_variant!r} is not present in the endpoint config of endpoint "
                                  f"{name!r}; its production variants are {(config.get('VariantName') or VARIANT)!r} "
                                  "(TargetVariant must name one of them)")
    for attempt in (0, 1):
        try:
            conn = entry[0] if entry is not None else _connect(session, name)
            conn.request("POST", "/invocations", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            break
        except EndpointError:
            raise
        except ConnectionRefusedError as exc:
            _drop_connection(session, name)
            raise _dead_endpoint(session, name, exc) from None
        except (OSError, http.client.HTTPException) as exc:
            _drop_connection(session, name)
            entry = None
            # a kept-alive connection the server has since closed: reconnect once
            if attempt == 0 and reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                            BrokenPipeError, http.client.CannotSendRequest,
                                                            http.client.BadStatusLine)):
                continue
            raise _dead_endpoint(session, name, exc) from None
    if response.will_close or conn.sock is None:
        _drop_connection(session, name)
    response_type = response.getheader("Content-Type") or "application/octet-stream"
    out_headers = dict(response.getheaders())
    out_headers.setdefault("X-Amzn-Invoked-Production-Variant", VARIANT)
    if response.status >= 300:
        if target_variant is not None and response.status == 400 and _error_type(data) == "ValidationError":
            raise ValidationError(_error_message(data))  # SageMaker's answer to a TargetVariant it does not have
        raise ModelError(response.status, _error_message(data))
    return data, response_type, out_headers


def _check_target_model(session, name: str, target_model) -> str:
    """TargetModel is for multi-model endpoints (Mode 'MultiModel'); any other endpoint refuses it."""
    config = session.store.get_endpoint(name)["config"]
    if config.get("Mode") == "MultiModel":
        return str(target_model)
    what = f"a serial inference pipeline of {len(config['Containers'])} models" if config.get("Containers") \
        else "one model"
    raise EndpointError(f"endpoint {name!r} serves {what}, not a multi-model endpoint: target_model "
                        f"({target_model!r}, TargetModel) picks a model of a multi-model endpoint "
                        "(Mode 'MultiModel'), which nbsage does not serve yet; invoke it without target_model "
                        "(its model answers), or deploy each model to an endpoint of its own")


def _error_type(data: bytes) -> str | None:
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed.get("type") if isinstance(parsed, dict) else None


def _error_message(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:2000] or "(empty body)"
    if isinstance(parsed, dict) and parsed.get("message"):
        return str(parsed["message"])
    return text[:2000]


# ---- delete --------------------------------------------------------------------------------------
def _stop_grace() -> float:
    try:
        return float(os.environ.get("NBSAGE_STOP_GRACE_SECONDS") or STOP_GRACE)
    except ValueError:
        return STOP_GRACE


def _stop_process(pid: int | None, folder: Path, grace: float | None = None) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` seconds."""
    grace = _stop_grace() if grace is None else grace
    if not pid or not _is_server_process(pid, folder):
        if pid:
            _reap(pid)
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for _ in range(100):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.02)


def delete_endpoint(session, name: str) -> None:
    """Stop the endpoint's server (SIGTERM, then SIGKILL after a few seconds) and remove its
    record and folder. An unknown name raises EndpointError (with a did-you-mean)."""
    record = session.store.get_endpoint(name)
    session.store.update_endpoint(name, status="Deleting")
    _drop_connection(session, name)
    folder = endpoint_dir(session, name)
    _stop_process(record.get("pid"), folder)
    session.store.delete_endpoint(name)
    from nbsage.serving.autoscaling import ScalingRecords
    ScalingRecords(session.store).delete_endpoint(name)
    shutil.rmtree(folder, ignore_errors=True)
