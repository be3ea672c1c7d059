"""Production variants: endpoints built from an endpoint config, several models and instances at one address.

SageMaker's shapes: CreateModel records a named model (its container), CreateEndpointConfig records
`ProductionVariants` (VariantName, ModelName, InitialInstanceCount, InitialVariantWeight,
InstanceType) and `ShadowProductionVariants`, CreateEndpoint/UpdateEndpoint run a config, and
UpdateEndpointWeightsAndCapacities changes weights and instance counts in place. Configs are kept in
the store (immutable once made, as in SageMaker); each variant's model is staged once under the
endpoint's folder (`models/<model>-<digest>/model`) and served by `DesiredInstanceCount` model
servers behind the endpoint's front process (nbsage.serving.front), which owns the endpoint's one
address. Plain `deploy()` endpoints stay one direct model server (no extra hop); updating one
turns it into a variant endpoint (`update_endpoint`), at a new port the clients follow.

The endpoint's record keeps the config being run, with each variant's `DesiredWeight`,
`DesiredInstanceCount` and how to serve it (`Serve`); a change writes the record, sets the status
Updating and sends the front SIGHUP. The front starts new instances, waits for /ping, swaps its
routing table and drains the old instances, then sets InService (nothing is dropped). One change at a
time, as SageMaker: an update while the endpoint is Creating or Updating is refused with SageMaker's
ValidationException ("Cannot update in-progress endpoint"), and the change under way goes on; automatic
scaling's change is then a Failed scaling activity, tried again at its next evaluation.

For automatic scaling (and anything else that watches or steers an endpoint from another process):

- `set_desired_instance_count(session, endpoint, variant, count, wait=False)` — the variant's new
  instance count; the front starts instances (traffic reaches them once they answer /ping) or
  drains and stops the surplus ones, failing no request. Returns at once unless `wait`.
- `variant_metrics(session, endpoint)` — {variant name: metrics}, refreshed by the front twice a
  second (`metrics.json` in the endpoint's folder): Invocations, Invocation4XXErrors,
  Invocation5XXErrors (totals since the front started), ConcurrentRequests and
  ConcurrentRequestsPerInstance (now), PeakConcurrentRequests / PeakConcurrentRequestsPerInstance
  (the peak since the previous write), InvocationsLastMinute and InvocationsPerInstance (per
  minute, SageMakerVariantInvocationsPerInstance), RecentInvocations ([epoch second, count] for
  the last 60 s, for any shorter window), ModelLatencyP50/P90/P99 (ms, last 60 s, front to model
  and back), CurrentInstanceCount, Shadow (bool), and `Timestamp` (when it was written).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from nbsage.errors import EndpointError, ValidationError, did_you_mean

FRONT_MODULE = "nbsage.serving.front"
MAX_VARIANTS = 10  # SageMaker's limit of production variants per endpoint config
MAX_SHADOW_VARIANTS = 1


# ---- models (CreateModel) -------------------------------------------------------------------------
def create_model(session, name: str, container: dict) -> str:
    """CreateModel: record `container` (ModelDataUrl, Algorithm or ImageUri, EntryPoint, Environment,
    or Containers for a pipeline) under `name`; returns the name."""
    from nbsage.store.names import check_name
    check_name(name, "model")
    if not container.get("ModelDataUrl") and not container.get("Containers"):
        raise ValidationError(f"model {name!r} has no ModelDataUrl: give the model.tar.gz to serve")
    session.store.put_model(name, {"ModelName": name, **container})
    return name


def model_container(session, model_name: str) -> dict:
    """The recorded model called `model_name` (CreateModel), or a ValidationError naming the known ones."""
    config = session.store.find_model(model_name)
    if config is not None:
        return config
    known = session.store.model_names()
    raise ValidationError(f"ModelName {model_name!r} is not a model{did_you_mean(model_name, known)}; create it "
                          "first (Model(...).create(name=...) or Session().create_model(...))"
                          + (f"; models: {', '.join(known[:10])}" if known else ""))


# ---- endpoint configs (CreateEndpointConfig) ---------------------------------------------------------
def _number(value, field: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {field} must be a number, got {value!r}") from None
    if number != number or number < 0:
        raise ValidationError(f"{where}: {field} must be 0 or more, got {value!r}")
    return number


def _count(value, field: str, where: str, minimum: int = 1) -> int:
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {field} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ValidationError(f"{where}: {field} must be at least {minimum}, got {number}")
    return number


def check_weights(weights: dict[str, float], field: str) -> None:
    """Traffic is shared by weight: at least one must be above zero."""
    if weights and sum(weights.values()) <= 0:
        listed = ", ".join(f"{k}={v:g}" for k, v in weights.items())
        raise ValidationError(f"the {field} of the production variants must add up to more than 0, got {listed}; "
                              "give at least one variant a positive weight (traffic is shared in proportion)")


def _variant(session, spec, where: str) -> dict:
    if not isinstance(spec, dict):
        raise ValidationError(f"{where} must be a dict (sagemaker.session.production_variant(...)), "
                              f"got {type(spec).__name__}")
    from nbsage.store.names import check_name
    name = spec.get("VariantName")
    if not name:
        raise ValidationError(f"{where} has no VariantName")
    check_name(str(name), "variant")
    where = f"{where} ({name!r})"
    if not spec.get("ModelName"):
        raise ValidationError(f"{where} has no ModelName: name a model made with Model.create() or create_model()")
    model_container(session, spec["ModelName"])
    out = {"VariantName": str(name), "ModelName": str(spec["ModelName"]),
           "InitialInstanceCount": _count(spec.get("InitialInstanceCount", 1), "InitialInstanceCount", where),
           "InitialVariantWeight": _number(spec.get("InitialVariantWeight", 1.0), "InitialVariantWeight", where),
           "InstanceType": str(spec.get("InstanceType") or "local")}
    if spec.get("AcceleratorType"):
        out["AcceleratorType"] = spec["AcceleratorType"]
    from nbsage.serving.restarts import STARTUP_HEALTH_CHECK_BOUNDS, STARTUP_HEALTH_CHECK_FIELD
    if spec.get(STARTUP_HEALTH_CHECK_FIELD) is not None:  # how long a new instance has to answer /ping
        low, high = STARTUP_HEALTH_CHECK_BOUNDS
        seconds = _count(spec[STARTUP_HEALTH_CHECK_FIELD], STARTUP_HEALTH_CHECK_FIELD, where, minimum=low)
        if seconds > high:
            raise ValidationError(f"{where}: {STARTUP_HEALTH_CHECK_FIELD} must be at most {high}, got {seconds}")
        out[STARTUP_HEALTH_CHECK_FIELD] = seconds
    return out


def check_endpoint_config(session, production_variants, shadow_production_variants=None) -> tuple[list, list]:
    """Validated copies of the variants: names unique, models recorded, counts and weights in range."""
    if not isinstance(production_variants, (list, tuple)) or not production_variants:
        raise ValidationError("ProductionVariants must be a non-empty list of variants "
                              "(sagemaker.session.production_variant(model_name, ...))")
    if len(production_variants) > MAX_VARIANTS:
        raise ValidationError(f"an endpoint config has at most {MAX_VARIANTS} ProductionVariants, "
                              f"got {len(production_variants)}")
    production = [_variant(session, v, f"ProductionVariants[{i}]") for i, v in enumerate(production_variants)]
    shadows = [_variant(session, v, f"ShadowProductionVariants[{i}]")
               for i, v in enumerate(shadow_production_variants or [])]
    if len(shadows) > MAX_SHADOW_VARIANTS:
        raise ValidationError(f"an endpoint config has at most {MAX_SHADOW_VARIANTS} ShadowProductionVariants, "
                              f"got {len(shadows)}")
    if shadows and len(production) != 1:
        raise ValidationError(f"a shadow test compares one production variant with its shadow: an endpoint config "
                              f"with ShadowProductionVariants has exactly 1 ProductionVariant, got {len(production)}")
    names = [v["VariantName"] for v in production + shadows]
    for name in names:
        if names.count(name) > 1:
            raise ValidationError(f"VariantName {name!r} is used more than once; each variant needs its own name")
    check_weights({v["VariantName"]: v["InitialVariantWeight"] for v in production}, "InitialVariantWeight")
    return production, shadows


def create_endpoint_config(session, name: str, production_variants, shadow_production_variants=None,
                           data_capture_config: dict | None = None) -> str:
    """CreateEndpointConfig: validate and record; returns the name. A config of that name is an error
    (configs are immutable: make a new one and update_endpoint to it)."""
    from nbsage.store.names import check_name
    check_name(name, "endpoint config")
    production, shadows = check_endpoint_config(session, production_variants, shadow_production_variants)
    config = {"EndpointConfigName": name, "ProductionVariants": production}
    if shadows:
        config["ShadowProductionVariants"] = shadows
    capture = _capture_config(session, data_capture_config)
    if capture:
        config["DataCaptureConfig"] = capture
    if not session.store.create_endpoint_config(name, config):
        raise ValidationError(f"an endpoint config named {name!r} already exists; configs cannot be changed: "
                              "create one under a new name and update the endpoint to it")
    return name


def describe_endpoint_config(session, name: str) -> dict:
    """DescribeEndpointConfig: EndpointConfigName, EndpointConfigArn, ProductionVariants,
    ShadowProductionVariants (when any), DataCaptureConfig (when any), CreationTime."""
    from nbsage.arns import arn
    from nbsage.store.metadata import iso
    config = session.store.find_endpoint_config(name)
    if config is None:
        known = session.store.endpoint_config_names()
        raise ValidationError(f"no endpoint config named {name!r}{did_you_mean(name, known)}")
    config["CreationTime"] = iso(config["CreationTime"])
    config["EndpointConfigArn"] = arn("endpoint-config", name)
    return config


def list_endpoint_configs(session) -> list[dict]:
    """ListEndpointConfigs' EndpointConfigs: name, ARN and creation time, newest first."""
    return [{k: d[k] for k in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")}
            for d in (describe_endpoint_config(session, n) for n in session.store.endpoint_config_names())]


def delete_endpoint_config(session, name: str) -> None:
    """DeleteEndpointConfig (endpoints running it keep running, as in SageMaker)."""
    describe_endpoint_config(session, name)
    session.store.delete_endpoint_config(name)


# ---- staging: a variant's model on disk, how to serve it -----------------------------------------------
def _serve_spec(session, folder: Path, variant: dict) -> dict:
    """Stage the variant's model (once per model content) and say how its instances serve it."""
    from nbsage.serving.endpoints import _stage_model
    from nbsage.serving.gpu import DEVICE_ENV, inference_device
    from nbsage.runtime.layout import private_dir, private_tree
    model = model_container(session, variant["ModelName"])
    digest = hashlib.sha256(json.dumps(model, sort_keys=True).encode()).hexdigest()[:12]
    into = folder / "models" / f"{variant['ModelName'][:40]}-{digest}"
    model_dir = into / "model"
    containers = model.get("Containers")
    if not (into / ".staged").exists():
        shutil.rmtree(into, ignore_errors=True)
        private_dir(into)
        if containers:
            from nbsage.serving.pipelines import check_containers, stage_pipeline
            check_containers(containers)
            stage_pipeline(containers, model_dir, lambda c, d: _stage_model(session, str(c["ModelDataUrl"]), d))
        else:
            _stage_model(session, str(model["ModelDataUrl"]), into)
        private_tree(model_dir)
        (into / ".staged").write_text(json.dumps(model))
    environment = {str(k): str(v) for k, v in (model.get("Environment") or {}).items()}
    if containers:
        from nbsage.serving.pipelines import server_environment
        environment = {str(k): str(v) for k, v in server_environment(containers).items()}
    device = inference_device(variant.get("InstanceType"), variant.get("AcceleratorType"))
    if device != "cpu":
        environment[DEVICE_ENV] = device
    algorithm = model.get("Algorithm")
    if not algorithm and model.get("ImageUri"):
        from nbsage import algorithms
        if algorithms.is_builtin(model["ImageUri"]):
            algorithm = algorithms.canonical_name(model["ImageUri"])
    return {"ModelName": variant["ModelName"], "ModelDir": str(model_dir), "Algorithm": algorithm,
            "EntryPoint": model.get("EntryPoint"), "Environment": environment, "Pipeline": bool(containers)}


def _capture_config(session, data_capture_config) -> dict | None:
    """The endpoint config's DataCaptureConfig as nbsage.serving.capture records it (as given where that
    module is not there)."""
    if not data_capture_config:
        return None
    try:
        from nbsage.serving.capture import capture_config
    except ImportError:
        return dict(data_capture_config)
    return capture_config(data_capture_config, session)


def _capture_environment(session, capture: dict | None, endpoint_name: str, variant_name: str,
                         folder: Path) -> dict:
    """What a variant's model servers need to capture requests (nbsage.serving.capture), or {}."""
    if not capture:
        return {}
    try:
        from nbsage.serving.capture import STATUS_NAME, server_environment
    except ImportError:
        return {}
    return server_environment(capture, endpoint_name, variant_name, folder / STATUS_NAME, session)


def _running_config(session, folder: Path, config: dict, previous: dict | None, generation: int) -> dict:
    """The endpoint record's config: each variant with Desired* and Serve (kept from the running
    config when its model did not change, so an unchanged variant keeps its instances)."""
    old = {}
    for key in ("ProductionVariants", "ShadowProductionVariants"):
        for v in (previous or {}).get(key) or []:
            old[(key, v["VariantName"])] = v
    out = {"Front": True, "EndpointConfigName": config["EndpointConfigName"], "Generation": generation}
    for key in ("ProductionVariants", "ShadowProductionVariants"):
        variants = []
        for v in config.get(key) or []:
            running = dict(v)
            running["DesiredWeight"] = v["InitialVariantWeight"]
            running["DesiredInstanceCount"] = v["InitialInstanceCount"]
            running["Serve"] = _serve_spec(session, folder, v)
            running["Serve"]["Environment"].update(_capture_environment(
                session, config.get("DataCaptureConfig"), folder.name, v["VariantName"], folder))
            variants.append(running)
        if variants:
            out[key] = variants
    if config.get("DataCaptureConfig"):
        out["DataCaptureConfig"] = config["DataCaptureConfig"]
    return out


# ---- creating and changing endpoints --------------------------------------------------------------------
FRONT_GRACE = 30.0  # seconds a caller waits past the front's own deadline, so the front's reason is the one given


def _kernel_wait(config: dict) -> float:
    """How long a caller waits for the front to run `config`: the longest its front gives a new instance
    to answer /ping (a variant's ContainerStartupHealthCheckTimeoutInSeconds, the create's startup_timeout,
    else NBSAGE_STARTUP_TIMEOUT_SECONDS or 600 s), and a grace for the front to say how it ended."""
    from nbsage.serving.endpoints import STARTUP_TIMEOUT
    from nbsage.serving.instances import env_number
    from nbsage.serving.restarts import STARTUP_HEALTH_CHECK_FIELD
    default = float(config.get("StartupTimeout") or env_number("NBSAGE_STARTUP_TIMEOUT_SECONDS", STARTUP_TIMEOUT))
    deadlines = [float(v.get(STARTUP_HEALTH_CHECK_FIELD) or default)
                 for key in ("ProductionVariants", "ShadowProductionVariants") for v in config.get(key) or []]
    return max(deadlines or [default]) + FRONT_GRACE


def _front_command(session, name: str, folder: Path) -> list[str]:
    return [sys.executable, "-m", FRONT_MODULE, "--db", str(session.store.path), "--name", name,
            "--folder", str(folder)]


def _start_front(session, name: str, folder: Path) -> int:
    from nbsage.runtime.layout import PRIVATE_UMASK, private_file
    from nbsage.serving.endpoints import LOG_NAME, _launched, _server_env
    with open(private_file(folder / LOG_NAME), "ab") as log:
        proc = subprocess.Popen(_front_command(session, name, folder), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=folder, env=_server_env(None, None),
                                start_new_session=True, close_fds=True, umask=PRIVATE_UMASK)
    _launched[proc.pid] = proc
    import threading
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{name}").start()
    return proc.pid


def touch_address(folder: Path) -> None:
    """Tell clients holding connections to this endpoint to read its record again."""
    from nbsage.serving.endpoints import ADDRESS_NAME
    from nbsage.serving.front import write_json
    write_json(folder / ADDRESS_NAME, time.time_ns())  # a new file (inode) each time, whatever the clock


def create_endpoint(session, endpoint_name: str, endpoint_config_name: str, wait: bool = True,
                    startup_timeout: float | None = None) -> dict:
    """CreateEndpoint from a recorded endpoint config; its DescribeEndpoint answer."""
    from nbsage.runtime.layout import private_dir
    from nbsage.serving.endpoints import describe_endpoint, endpoint_dir, failing_the_create, wait_for_endpoint
    from nbsage.store.names import check_name
    check_name(endpoint_name, "endpoint")
    config = describe_endpoint_config(session, endpoint_config_name)
    store = session.store
    store.create_endpoint(endpoint_name, {"Front": True, "EndpointConfigName": endpoint_config_name,
                                          "Generation": 1, "ProductionVariants": []})
    folder = endpoint_dir(session, endpoint_name)
    with failing_the_create(session, endpoint_name):
        if folder.exists():
            shutil.rmtree(folder)
        private_dir(folder)
        running = _running_config(session, folder, config, None, 1)
        if startup_timeout:
            running["StartupTimeout"] = float(startup_timeout)  # the front's deadline for this create
        store.update_endpoint(endpoint_name, config=running)
        pid = _start_front(session, endpoint_name, folder)
        store.update_endpoint(endpoint_name, pid=pid, host="127.0.0.1")
        touch_address(folder)
    if wait:
        wait_for_endpoint(session, endpoint_name, timeout=_kernel_wait(running))
    return describe_endpoint(session, endpoint_name)


def deploy_instances(session, endpoint_name: str, container: dict, instance_type: str, count: int,
                     wait: bool = True, startup_timeout: float | None = None,
                     accelerator_type: str | None = None, data_capture_config=None) -> dict:
    """deploy() with initial_instance_count > 1: the model recorded (CreateModel), an endpoint config of one
    variant, AllTraffic, with `count` instances, and the endpoint running it behind its front."""
    from nbsage.store.names import unique_name
    if any(r["name"] == endpoint_name for r in session.store.list_endpoints()):
        session.store.create_endpoint(endpoint_name, {})  # raises the usual "already exists" error
    model_name = endpoint_name if session.store.find_model(endpoint_name) is None else unique_name(endpoint_name[:30])
    create_model(session, model_name, container)
    config_name = endpoint_name if session.store.find_endpoint_config(endpoint_name) is None \
        else unique_name(endpoint_name[:30])
    variant = {"VariantName": "AllTraffic", "ModelName": model_name, "InitialInstanceCount": count,
               "InitialVariantWeight": 1.0, "InstanceType": instance_type}
    if accelerator_type:
        variant["AcceleratorType"] = accelerator_type
    create_endpoint_config(session, config_name, [variant], data_capture_config=data_capture_config)
    return create_endpoint(session, endpoint_name, config_name, wait=wait, startup_timeout=startup_timeout)


def _signal_front(record: dict) -> None:
    try:
        os.kill(record["pid"], signal.SIGHUP)
    except (ProcessLookupError, PermissionError, TypeError):
        pass  # the front re-reads the record every second anyway


def wait_for_generation(session, name: str, generation: int, timeout: float) -> dict:
    """Wait until the front runs config `generation` (or rolled it back: EndpointError with the reason)."""
    from nbsage.serving.endpoints import _refresh, describe_endpoint, endpoint_dir
    from nbsage.serving.front import STATE_NAME
    folder = endpoint_dir(session, name)
    deadline = time.monotonic() + timeout
    poll = 0.02
    while True:
        record = _refresh(session, session.store.get_endpoint(name))
        if record["status"] == "Failed":
            raise EndpointError(f"endpoint {name!r} failed: {record.get('failure_reason')}")
        if record["config"].get("Generation", 0) < generation or (record["status"] == "InService"
                                                                    and record.get("failure_reason")):
            raise EndpointError(f"the update of endpoint {name!r} did not take: {record.get('failure_reason')}")
        try:
            state = json.loads((folder / STATE_NAME).read_text())
        except (OSError, ValueError):
            state = {}
        if record["status"] == "InService" and (state.get("Generation") or 0) >= generation:
            return describe_endpoint(session, name)
        if time.monotonic() > deadline:
            raise EndpointError(f"endpoint {name!r} did not finish updating within {timeout:g} s "
                                f"(status {record['status']})")
        time.sleep(poll)
        poll = min(poll * 1.5, 0.25)


IN_PROGRESS = ("Creating", "Updating")
CLAIM_TRIES = 5  # re-reads when the record changed between reading and claiming it (a front's write)


def refuse_in_progress(record: dict) -> None:
    """SageMaker refuses UpdateEndpoint and UpdateEndpointWeightsAndCapacities while the endpoint is
    Creating or Updating (ValidationException, its words); the change under way goes on undisturbed."""
    if record["status"] in IN_PROGRESS:
        from nbsage.arns import arn
        raise ValidationError(f'Cannot update in-progress endpoint "{arn("endpoint", record["name"])}".')


def _updatable(session, name: str) -> dict:
    """The endpoint's record, if it may be updated now (InService), else the error SageMaker gives."""
    record = session.store.get_endpoint(name)
    refuse_in_progress(record)
    if record["status"] != "InService":
        raise EndpointError(f"endpoint {name!r} is {record['status']}; it can be updated once it is InService")
    return record


def _claim(session, record: dict, **fields) -> None:
    """Write the update into the record only if it is still the InService record read (one update at a
    time, as SageMaker: of two updates that read InService, the second is refused as in progress)."""
    if not session.store.update_endpoint_if(record["name"], "InService", record["last_modified"], **fields):
        _updatable(session, record["name"])  # refused now, or changed without an update: retried by the caller
        raise _Stale()


class _Stale(Exception):
    """The record changed (not by an update) between reading it and claiming it: read it again."""


def _apply(session, name: str, change, wait: bool, timeout: float | None, status: str = "Updating") -> dict:
    """Write a new running config (change(record) -> config) and let the front apply it."""
    from nbsage.serving.endpoints import describe_endpoint
    for attempt in range(CLAIM_TRIES):
        record = _updatable(session, name)
        if not record["config"].get("Front"):
            return _convert(session, record, change, wait, timeout)
        config = change(record)
        generation = int(record["config"].get("Generation", 1)) + 1
        config["Generation"] = generation
        try:
            _claim(session, record, config=config, status=status, failure_reason=None)
            break
        except _Stale:
            if attempt == CLAIM_TRIES - 1:
                raise EndpointError(f"endpoint {name!r} kept changing while the update was written; "
                                    "try again") from None
    _signal_front(record)
    if wait:
        return wait_for_generation(session, name, generation, timeout or _kernel_wait(config))
    return describe_endpoint(session, name)


def _convert(session, record: dict, change, wait: bool, timeout: float | None) -> dict:
    """A plain (one direct server) endpoint updated: start its front at a new port with the new config,
    move the record (and so the clients) to it, then stop the old server."""
    from nbsage.serving.endpoints import _stop_process, describe_endpoint, endpoint_dir
    name = record["name"]
    folder = endpoint_dir(session, name)
    config = change(record)
    config["Generation"] = 2
    old_pid = record.get("pid")
    try:
        _claim(session, record, config=config, status="Updating", failure_reason=None)
    except _Stale:
        raise EndpointError(f"endpoint {name!r} changed while the update was written; try again") from None
    pid = _start_front(session, name, folder)
    try:
        wait_for_generation(session, name, 2, timeout or _kernel_wait(config))
    except EndpointError:  # the old server never stopped serving: it keeps the endpoint
        _stop_process(pid, folder)
        session.store.update_endpoint(name, config=record["config"], pid=old_pid, port=record.get("port"),
                                      status="InService")
        raise
    touch_address(folder)
    # the old server's requests in flight finish; clients on kept-alive connections reconnect (retried)
    time.sleep(_drain_seconds())
    _stop_process(old_pid, folder)
    return describe_endpoint(session, name)


def _drain_seconds() -> float:
    """How long the old server of a converted endpoint keeps answering after clients were told to move
    (NBSAGE_DRAIN_SECONDS, default 1): they look every ADDRESS_CHECK seconds, so this is plenty."""
    try:
        return max(0.0, float(os.environ.get("NBSAGE_DRAIN_SECONDS") or 1.0))
    except ValueError:
        return 1.0


def _plain_as_variant(session, record: dict) -> dict:
    """A plain endpoint's config as an endpoint config of one variant (its model recorded by name)."""
    config = record["config"]
    model_name = config.get("ModelName") or f"{record['name']}-model"[:63]
    if session.store.find_model(model_name) is None:
        container = {k: config.get(k) for k in ("ModelDataUrl", "Algorithm", "EntryPoint", "ImageUri")}
        container["Environment"] = config.get("Environment") or {}
        if config.get("Containers"):
            container["Containers"] = config["Containers"]
        create_model(session, model_name, container)
    return {"EndpointConfigName": config.get("EndpointConfigName") or record["name"],
            "ProductionVariants": [{"VariantName": config.get("VariantName") or "AllTraffic", "ModelName": model_name,
                                    "InitialInstanceCount": int(config.get("InitialInstanceCount") or 1),
                                    "InitialVariantWeight": 1.0,
                                    "InstanceType": config.get("InstanceType") or "local"}]}


def current_endpoint_config(session, name: str) -> dict:
    """What the endpoint runs, as an endpoint config (Desired* folded back into Initial*)."""
    record = session.store.get_endpoint(name)
    config = record["config"]
    if not config.get("Front"):
        return _plain_as_variant(session, record)
    out = {"EndpointConfigName": config.get("EndpointConfigName")}
    for key in ("ProductionVariants", "ShadowProductionVariants"):
        if config.get(key):
            kept = ("VariantName", "ModelName", "InstanceType",
                    "ContainerStartupHealthCheckTimeoutInSeconds")
            out[key] = [{k: v[k] for k in kept if k in v}
                        | {"InitialInstanceCount": v["DesiredInstanceCount"], "InitialVariantWeight": v["DesiredWeight"]}
                        for v in config[key]]
    return out


def update_endpoint(session, endpoint_name: str, endpoint_config_name: str, wait: bool = True,
                    timeout: float | None = None) -> dict:
    """UpdateEndpoint: run another endpoint config, with no request dropped (new instances answer
    /ping before traffic moves; the old ones drain, then stop). A model that fails to load rolls the
    update back (EndpointError with the reason; the endpoint keeps serving)."""
    _updatable(session, endpoint_name)
    config = describe_endpoint_config(session, endpoint_config_name)
    from nbsage.serving.endpoints import endpoint_dir
    folder = endpoint_dir(session, endpoint_name)
    return _apply(session, endpoint_name,
                  lambda record: _running_config(session, folder, config,
                                                 record["config"] if record["config"].get("Front") else None,
                                                 int(record["config"].get("Generation", 1)) + 1),
                  wait, timeout)


def update_endpoint_weights_and_capacities(session, endpoint_name: str, desired_weights_and_capacities: list[dict],
                                           wait: bool = True, timeout: float | None = None) -> dict:
    """UpdateEndpointWeightsAndCapacities: [{"VariantName", "DesiredWeight", "DesiredInstanceCount"}, ...];
    a variant not named keeps its weight and count."""
    if not isinstance(desired_weights_and_capacities, (list, tuple)) or not desired_weights_and_capacities:
        raise ValidationError("DesiredWeightsAndCapacities must be a non-empty list of "
                              "{'VariantName': ..., 'DesiredWeight': ..., 'DesiredInstanceCount': ...}")
    record = _updatable(session, endpoint_name)
    if not record["config"].get("Front"):
        update_endpoint_from(session, endpoint_name, _plain_as_variant(session, record), wait=True, timeout=timeout)
        record = session.store.get_endpoint(endpoint_name)
    variants = {v["VariantName"]: v for v in record["config"].get("ProductionVariants") or []}
    shadows = {v["VariantName"] for v in record["config"].get("ShadowProductionVariants") or []}
    changes = {}
    for i, item in enumerate(desired_weights_and_capacities):
        where = f"DesiredWeightsAndCapacities[{i}]"
        name = item.get("VariantName") if isinstance(item, dict) else None
        if name not in variants:
            hint = " (a shadow variant's weight is its sampling share: update the endpoint config)" if name in shadows else ""
            raise ValidationError(f"{where}: VariantName {name!r} is not a production variant of endpoint "
                                  f"{endpoint_name!r}{did_you_mean(str(name), list(variants))}{hint}; "
                                  f"its variants are {', '.join(map(repr, variants))}")
        change = {}
        if item.get("DesiredWeight") is not None:
            change["DesiredWeight"] = _number(item["DesiredWeight"], "DesiredWeight", where)
        if item.get("DesiredInstanceCount") is not None:
            change["DesiredInstanceCount"] = _count(item["DesiredInstanceCount"], "DesiredInstanceCount", where)
        if not change:
            raise ValidationError(f"{where}: give DesiredWeight, DesiredInstanceCount or both")
        changes[name] = change
    check_weights({n: changes.get(n, {}).get("DesiredWeight", v["DesiredWeight"]) for n, v in variants.items()},
                  "DesiredWeight")

    def change(record):
        config = json.loads(json.dumps(record["config"]))
        for v in config["ProductionVariants"]:
            v.update(changes.get(v["VariantName"], {}))
        return config
    return _apply(session, endpoint_name, change, wait, timeout)


def update_endpoint_from(session, endpoint_name: str, config: dict, wait: bool = True,
                         timeout: float | None = None) -> dict:
    """Record `config` ({ProductionVariants, ShadowProductionVariants}) as a new endpoint config (a
    generated name unless it has one that is free) and update the endpoint to it."""
    from nbsage.store.names import unique_name
    _updatable(session, endpoint_name)
    name = config.get("EndpointConfigName")
    if not name or session.store.find_endpoint_config(name) is not None:
        name = unique_name(endpoint_name[:30])
    create_endpoint_config(session, name, config["ProductionVariants"], config.get("ShadowProductionVariants"),
                           config.get("DataCaptureConfig"))
    return update_endpoint(session, endpoint_name, name, wait=wait, timeout=timeout)


def set_desired_instance_count(session, endpoint_name: str, variant_name: str, count: int, wait: bool = False,
                               timeout: float | None = None) -> dict:
    """The variant's instance count (what autoscaling sets): the front starts or drains instances,
    failing no request. The endpoint is Updating until the count is reached."""
    return update_endpoint_weights_and_capacities(
        session, endpoint_name, [{"VariantName": variant_name, "DesiredInstanceCount": count}], wait=wait,
        timeout=timeout)


# ---- reading what runs ---------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def variant_metrics(session, endpoint_name: str) -> dict:
    """{variant name: metrics} as the front last wrote them (see the module docstring), plus
    "Timestamp"; {} before the front has written any."""
    from nbsage.serving.endpoints import endpoint_dir
    from nbsage.serving.front import METRICS_NAME
    session.store.get_endpoint(endpoint_name)  # an unknown endpoint is an error, not {}
    data = _read_json(endpoint_dir(session, endpoint_name) / METRICS_NAME)
    out = dict(data.get("Variants") or {})
    if data:
        out["Timestamp"] = data.get("Timestamp")
    return out


def shadow_record(session, endpoint_name: str) -> dict:
    """The front's shadow counts and sample of pairs ({} before any shadow traffic)."""
    from nbsage.serving.endpoints import endpoint_dir
    from nbsage.serving.front import SHADOW_NAME
    return _read_json(endpoint_dir(session, endpoint_name) / SHADOW_NAME)


def describe_variants(session, record: dict) -> dict:
    """The variant part of DescribeEndpoint for an endpoint with a front."""
    from nbsage.serving.endpoints import endpoint_dir
    from nbsage.serving.front import STATE_NAME
    from nbsage.store.metadata import iso
    config = record["config"]
    state = _read_json(endpoint_dir(session, record["name"]) / STATE_NAME)
    starting = state.get("Starting") or {}  # the last crash of an instance a create or an update waits for
    out = {"EndpointConfigName": config.get("EndpointConfigName")}
    for key in ("ProductionVariants", "ShadowProductionVariants"):
        running = {v["VariantName"]: v for v in state.get(key) or []} if record["status"] != "Creating" else {}
        variants = []
        for v in config.get(key) or []:
            now = running.get(v["VariantName"])
            model = session.store.find_model(v["ModelName"]) or {}
            image = model.get("Algorithm") or model.get("ImageUri") or "nbsage-inference"
            same_model = now is not None and now.get("Signature") == json.dumps(v["Serve"], sort_keys=True)
            current_count = now["CurrentInstanceCount"] if now else 0
            current_weight = now["CurrentWeight"] if now else 0.0
            status = []
            if not same_model or current_count != v["DesiredInstanceCount"] or current_weight != v["DesiredWeight"]:
                what = "Creating" if now is None else "Updating"
                # a crashed instance being restarted (nbsage.serving.restarts)
                problem = (now or {}).get("Problem") or (starting.get(v["VariantName"]) if not same_model else None)
                status.append({"Status": what, "StatusMessage": f"{current_count} of {v['DesiredInstanceCount']} "
                                                                "instances serving this variant's model"
                                                                + (f"; {problem}" if problem else ""),
                               "StartTime": iso(record["last_modified"])})
            variants.append({
                "VariantName": v["VariantName"], "ModelName": v["ModelName"],
                "DeployedImages": [{"SpecifiedImage": image, "ResolvedImage": image,
                                    "ResolutionTime": iso(record["creation_time"])}],
                "CurrentWeight": current_weight, "DesiredWeight": v["DesiredWeight"],
                "CurrentInstanceCount": current_count, "DesiredInstanceCount": v["DesiredInstanceCount"],
                "InstanceType": v.get("InstanceType", "local"), "VariantStatus": status})
        if variants or key == "ProductionVariants":
            out[key] = variants
    return out
