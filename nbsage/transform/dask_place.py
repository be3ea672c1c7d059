"""A transform job on the dask place: the input objects spread over InstanceCount Dask workers.

The job's supervisor (nbsage.backends.dask_supervisor, a Dask client) lists the input objects,
waits for one worker per instance and gives each worker a share of the objects (largest first, to
the worker with the fewest bytes so far: SageMaker spreads a transform by object too). On each
worker `transform_on_worker` unpacks the model (each container's archive shipped with the task when
it is a local file: an inference pipeline has several), starts one model server there and runs
nbsage.transform.engine over its objects, writing each `.out` straight to the output path. Log lines
and progress come back as Dask events on a topic of the job's own; a stop sets a Dask Event every
worker watches.

The workers read the inputs and write the outputs themselves: on a cluster of other machines, give
s3:// (or other fsspec) URLs, or paths every worker sees.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path

from nbsage.backends.lifecycle import JobLifecycle, algorithm_error, client_error, internal_error
from nbsage.backends.log_stream import LogSink
from nbsage.errors import NBSageError
from nbsage.transform import engine
from nbsage.transform.inputs import InputObject, list_objects
from nbsage.transform.outputs import OutputPath

WORKER_WAIT_SECONDS = float(os.environ.get("NBSAGE_DASK_WORKER_WAIT_SECONDS", "60"))
_EVENT_SECONDS = 0.5


def share_objects(objects: list[InputObject], count: int) -> list[list[InputObject]]:
    """Objects to `count` workers: each object, largest first, to the worker with the fewest bytes so far."""
    shares: list[list[InputObject]] = [[] for _ in range(count)]
    load = [0] * count
    for obj in sorted(objects, key=lambda o: -o.size):
        i = load.index(min(load))
        shares[i].append(obj)
        load[i] += max(obj.size, 1)
    return shares


# ---- the model's archives, shipped with the task ----------------------------------------------------
def _containers(model: dict) -> list[dict]:
    """The containers of a model record: its Containers (an inference pipeline), else itself."""
    return list(model.get("Containers") or [model])


def _ship(model: dict) -> list | None:
    """The bytes of each container's model.tar.gz that is a local file (None for the others: URLs and
    folders, which the workers read themselves); None when there is nothing to ship."""
    from nbsage.store.artifacts import is_local, local_path
    shipped = []
    for container in _containers(model):
        data = container.get("ModelDataUrl") or ""
        path = Path(local_path(data)).expanduser() if data and is_local(data) else None
        shipped.append(path.read_bytes() if path is not None and path.is_file() else None)
    return shipped if any(b is not None for b in shipped) else None


def _unship(model: dict, shipped: list | None, folder: Path) -> dict:
    """The model record with each shipped archive written under folder and its ModelDataUrl pointing there."""
    if not shipped:
        return dict(model)
    containers = []
    for i, (container, data) in enumerate(zip(_containers(model), shipped)):
        container = dict(container)
        if data is not None:
            archive = folder / f"shipped-model-{i + 1}.tar.gz"
            archive.write_bytes(data)
            container["ModelDataUrl"] = str(archive)
        containers.append(container)
    return dict(model, Containers=containers) if model.get("Containers") else containers[0]


# ---- worker side ------------------------------------------------------------------------------------
def transform_on_worker(job_name: str, request: dict, objects: list, model: list | None, index: int,
                        topic: str, stop_name: str) -> dict:
    """One instance of a transform job on this Dask worker; returns its counts and failures."""
    from distributed import Event, get_client, get_worker

    from nbsage.store import ArtifactStore
    from nbsage.store.requests import TransformRequest
    from nbsage.transform.job import settings_of, stage_model
    from nbsage.transform.servers import ModelServers, batch_environment
    worker = get_worker()
    key = worker.get_current_task()
    typed = TransformRequest.from_dict(request)
    folder = Path(worker.local_directory) / "nbsage-transform" / job_name / f"instance-{index + 1}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    artifacts = ArtifactStore(str(folder / "artifacts"))
    progress = engine.Progress(total_objects=len(objects))
    stop = threading.Event()
    stop_event = Event(stop_name, client=get_client())  # made here: other threads have no worker context
    done = threading.Event()

    def say(line: str) -> None:
        worker.log_event(topic, {"instance": index, "line": f"[instance {index + 1}] {line}"})

    def report() -> None:
        while not done.wait(_EVENT_SECONDS):
            worker.log_event(topic, {"instance": index, "records": progress.records, "done": progress.objects_done})
            task = worker.state.tasks.get(key)
            if task is None or task.state in ("cancelled", "released", "forgotten"):
                stop.set()  # the supervisor let go of this job
            try:
                if stop_event.is_set():
                    stop.set()
            except (OSError, TimeoutError):
                stop.set()  # the scheduler is gone: nobody is left to report to

    threading.Thread(target=report, daemon=True, name="nbsage-transform-events").start()
    try:
        model_spec = _unship(typed.model, model, folder)
        settings = settings_of(typed)
        model_dir = stage_model(model_spec, folder, artifacts)
        env = batch_environment(typed.model, typed.environment, settings.max_bytes / 2**20,
                                request.get("BatchStrategy"), request.get("MaxConcurrentTransforms") or None)
        with ModelServers(model_dir, typed.model, env, folder / "servers", 1, log=say) as servers:
            if not settings.max_concurrent:
                settings.max_concurrent = max(1, int(servers.execution_parameters().get("MaxConcurrentTransforms")
                                                     or 1))
            instance = engine.Instance(servers.ports[0], settings)
            try:
                engine.run([InputObject(**o) for o in objects], [instance],
                           OutputPath(typed.output_path, artifacts, folder / "scratch"), progress, stop, log=say)
            finally:
                instance.close()
        return {"records": progress.records, "written": progress.written, "failures": progress.failures,
                "error": None}
    except NBSageError as e:
        return {"records": progress.records, "written": progress.written, "failures": progress.failures,
                "error": f"{type(e).__name__}: {e} (on Dask worker {worker.address})"}
    finally:
        done.set()
        worker.log_event(topic, {"instance": index, "records": progress.records, "done": progress.objects_done})
        shutil.rmtree(folder, ignore_errors=True)


# ---- client side (the job's supervisor) -------------------------------------------------------------
def supervise(client, stores, job: dict, request, where: str) -> int:
    """Run one recorded transform job on the Dask cluster `client` is connected to."""
    from distributed import Event
    store, name = stores.store, job["name"]
    life = JobLifecycle(store, name, request.kind)
    sink = LogSink(store, name)
    token = uuid.uuid4().hex[:10]
    topic, stop_name = f"nbsage-transform-{name}-{token}", f"nbsage-stop-{name}-{token}"
    stop = Event(stop_name, client=client)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # StopTransformJob
    try:
        life.downloading("Listing the input objects")
        store.update_job(name, start_time=time.time())
        objects = list_objects(request.input_uri, request.data_type)
        OutputPath(request.output_path, stores.artifacts, Path(job["root"]) / "scratch").check()
        model = _ship(request.model)
    except (NBSageError, OSError) as e:
        sink.close()
        return life.failed_client(e)
    count = request.instance_count
    try:
        client.wait_for_workers(count, timeout=WORKER_WAIT_SECONDS)
    except (TimeoutError, OSError):
        sink.close()
        return life.failed(client_error(f"the Dask cluster at {where} has fewer than {count} workers; a transform "
                                        f"job takes one worker per instance (waited {WORKER_WAIT_SECONDS:g} s)"))
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])[:count]
    shares = share_objects(objects, count)
    total = len(objects)
    counts: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    def on_event(event) -> None:
        _, msg = event
        if "line" in msg:
            sink.write(msg["line"])
        if "records" in msg:
            with lock:
                counts[msg["instance"]] = (msg["records"], msg["done"])
                records, done = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
            try:
                store.update_job(name, progress_step=done, progress_total=total, output_artifacts=_outcome(
                    records, done, 0, total, []))
            except NBSageError:
                pass

    client.subscribe_topic(topic, on_event)
    sink.write(f"{total} input object{'s' if total != 1 else ''} over {count} Dask worker"
               f"{'s' if count > 1 else ''} of {where}")
    life.transforming()
    futures = [client.submit(transform_on_worker, name, request.to_dict(),
                             [o.__dict__ for o in share], model, i, topic, stop_name,
                             workers=[workers[i]], allow_other_workers=False, pure=False, key=f"{name}-instance-{i + 1}")
               for i, share in enumerate(shares)]
    try:
        results = client.gather(futures, errors="raise")
    except Exception as e:  # noqa: BLE001 - a worker lost or a task that raised: the job's reason
        client.unsubscribe_topic(topic)
        sink.close()
        if stop.is_set():
            return life.stopped()
        return life.failed(internal_error(f"a Dask worker of {where} failed during the transform: "
                                          f"{type(e).__name__}: {e}"))
    client.unsubscribe_topic(topic)
    records = sum(r["records"] for r in results)
    written = [u for r in results for u in r["written"]]
    failures = [f for r in results for f in r["failures"]]
    errors = [r["error"] for r in results if r["error"]]
    record = _outcome(records, len(written) + len(failures), len(failures), total, written)
    sink.write(f"{records:,} records transformed; {len(written)} of {total} objects written to {request.output_path}")
    sink.close()
    if stop.is_set():
        return life.stopped(output_artifacts=record)
    if errors:
        return life.failed(algorithm_error(errors[0]), "A Dask worker could not run the transform",
                           output_artifacts=record)
    if failures:
        more = len(failures) - 1
        return life.failed(client_error(failures[0][1] + (f" (and {more} more object{'s' if more > 1 else ''} "
                                                          "failed)" if more else "")),
                           f"{len(failures)} input object(s) failed", output_artifacts=record)
    return life.completed(output=record)


def _outcome(records: int, done: int, failed: int, total: int, written: list) -> str:
    import json
    return json.dumps({"RecordsTransformed": records, "ObjectsTransformed": done - failed, "ObjectsFailed": failed,
                       "ObjectsTotal": total, "Outputs": written[-1000:]})
