"""A transform job on the local place: what the job's supervisor does for `kind = "transform"`.

The local place's supervisor (nbsage.backends.local_supervisor) runs `supervise` here: unpack the
model into the job's folder, list the input objects, check that the output path can be written,
start InstanceCount model servers on loopback, send every object's records through them
(nbsage.transform.engine) and record the end. Live progress goes to the job's record as it runs:
`progress_step/progress_total` are the input objects done and in all (the monitor's bar), and the
records transformed are in the log every few seconds and in DescribeTransformJob.

Statuses: InProgress (Starting → Downloading → Transforming), then Completed, Failed (the first
object that failed, with its file and line; the `.out` files of the objects that succeeded stay)
or Stopped (StopTransformJob).
"""
from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path

from nbsage.backends.lifecycle import JobLifecycle, algorithm_error, client_error
from nbsage.backends.log_stream import LogSink
from nbsage.errors import DataError, NBSageError, ValidationError
from nbsage.transform import engine
from nbsage.transform.data_processing import DataProcessing
from nbsage.transform.inputs import list_objects
from nbsage.transform.outputs import OutputPath
from nbsage.transform.servers import ModelServers, ServerFailed, batch_environment

REPORT_SECONDS = 0.5  # how often the record's progress is written
LOG_SECONDS = 5.0  # how often a "records done" line is logged


def settings_of(request) -> engine.Settings:
    """The engine's settings from a stored CreateTransformJob (MaxConcurrentTransforms 0 is decided later)."""
    data = request.data
    source = data.get("TransformInput") or {}
    out = data.get("TransformOutput") or {}
    client = data.get("ModelClientConfig") or {}
    payload_mb = data.get("MaxPayloadInMB")
    payload_mb = 6 if payload_mb in (None, 0) else float(payload_mb)
    return engine.Settings(
        split_type=source.get("SplitType") or "None", strategy=data.get("BatchStrategy") or "MultiRecord",
        max_bytes=int(payload_mb * 1024 * 1024), content_type=source.get("ContentType"), accept=out.get("Accept"),
        assemble_with=out.get("AssembleWith") or "None", max_concurrent=int(data.get("MaxConcurrentTransforms") or 0),
        retries=int(client.get("InvocationsMaxRetries", 3)), timeout=float(client.get("InvocationsTimeoutInSeconds", 600)),
        compression=source.get("CompressionType") or "None",
        processing=DataProcessing.from_request(data.get("DataProcessing")))


def outcome_record(progress: engine.Progress) -> str:
    """What the job's record keeps in `output_artifacts` while it runs and after."""
    with progress.lock:
        return json.dumps({"RecordsTransformed": progress.records, "ObjectsTransformed": len(progress.written),
                           "ObjectsFailed": len(progress.failures), "ObjectsTotal": progress.total_objects,
                           "Outputs": list(progress.written)[-1000:]})


def read_outcome(value: str | None) -> dict:
    try:
        data = json.loads(value) if value else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def stage_model(model: dict, folder: Path, artifacts, in_place: bool = True) -> Path:
    """model.tar.gz (a path or any fsspec URL) unpacked into folder/model; a model folder is used in place
    (copied with in_place=False). A model with Containers (an inference pipeline) is staged as a pipeline
    endpoint stages it (nbsage.serving.pipelines.stage_pipeline): each container in its own folder."""
    from nbsage.runtime.model_archive import check_archive
    from nbsage.runtime.packaging import unpack
    from nbsage.store.artifacts import is_local, local_path
    if model.get("Containers"):
        from nbsage.serving.pipelines import check_containers, stage_pipeline
        check_containers(model["Containers"])
        target = folder / "model"
        if target.exists():
            shutil.rmtree(target)
        return stage_pipeline(model["Containers"], target,
                              lambda container, into: stage_model(container, into, artifacts, in_place=False))
    data = model.get("ModelDataUrl") or ""
    if not data:
        raise DataError(f"model {model.get('ModelName')!r} has no ModelDataUrl (model_data) to serve")
    if is_local(data) and Path(local_path(data)).expanduser().is_dir():
        if in_place:
            return Path(local_path(data)).expanduser()
        shutil.copytree(Path(local_path(data)).expanduser(), folder / "model")
        return folder / "model"
    model_dir = folder / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    archive = folder / "model.tar.gz"
    source = str(Path(local_path(data)).expanduser()) if is_local(data) else data
    try:
        artifacts.get_file(source, archive)
    except (OSError, ValueError) as e:
        raise DataError(f"the model's ModelDataUrl {data} cannot be read: {e}") from None
    try:
        check_archive(archive, data, None if model.get("EntryPoint") else model.get("Algorithm"))
        unpack(archive, model_dir)
    finally:
        archive.unlink(missing_ok=True)
    return model_dir


class _Reporter(threading.Thread):
    """Writes the job's progress to its record while the engine runs."""

    def __init__(self, store, name: str, progress: engine.Progress, log):
        super().__init__(daemon=True, name="nbsage-transform-progress")
        self.store, self.name, self.progress, self.log = store, name, progress, log
        self.done = threading.Event()

    def run(self) -> None:
        last_log, logged = time.monotonic(), -1
        while not self.done.wait(REPORT_SECONDS):
            self.report()
            if time.monotonic() - last_log >= LOG_SECONDS and self.progress.records != logged:
                last_log, logged = time.monotonic(), self.progress.records
                self.log(f"{self.progress.records:,} records transformed; "
                         f"{self.progress.objects_done}/{self.progress.total_objects} objects done")

    def report(self) -> None:
        try:
            self.store.update_job(self.name, progress_step=self.progress.objects_done,
                                  progress_total=self.progress.total_objects, output_artifacts=outcome_record(self.progress))
        except NBSageError:
            pass  # a busy store: the next report writes it

    def finish(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()
        self.report()


def supervise(stores, job: dict, request) -> int:
    """Run one recorded transform job to its end on this machine (in the supervisor process).

    The model servers are launched as soon as the model is staged, before this process starts its
    first thread (the log's), so they can be forked from it (nbsage.transform.servers); they load the
    model while the job reports its input, and are waited for only when the records are due."""
    store, name = stores.store, job["name"]
    folder = Path(job["root"])
    life = JobLifecycle(store, name, request.kind)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # StopTransformJob
    _discard_prepared_runtime()
    progress = engine.Progress()
    try:
        life.downloading("Downloading the model and listing the input objects")
        store.update_job(name, start_time=time.time())
        folder.mkdir(parents=True, exist_ok=True)
        settings = settings_of(request)
        objects = list_objects(request.input_uri, request.data_type)
        output = OutputPath(request.output_path, stores.artifacts, folder / "scratch")
        output.check()
        model_dir = stage_model(request.model, folder, stores.artifacts)
    except (NBSageError, OSError, KeyError, ValueError) as e:
        return life.failed_client(e)
    payload_mb = settings.max_bytes / 2**20
    env = batch_environment(request.model, request.environment, payload_mb, request.data.get("BatchStrategy"),
                            request.data.get("MaxConcurrentTransforms") or None)
    servers = ModelServers(model_dir, request.model, env, folder / "servers", request.instance_count, fork=True)
    stopping = stop.is_set() or store.get_job(name)["stop_requested"]
    launch_error = None
    if not stopping:
        try:
            servers.launch()  # still one thread here: the servers may be forked
        except (NBSageError, OSError) as e:
            launch_error = e
    sink = LogSink(store, name)
    servers.log = sink.write
    progress.total_objects = len(objects)
    sink.write(f"{len(objects)} input object{'s' if len(objects) != 1 else ''} under {request.input_uri}")
    if launch_error is not None:
        servers.stop()
        sink.close()
        return life.failed_client(launch_error)
    if stopping or store.get_job(name)["stop_requested"] or stop.is_set():
        servers.stop()
        sink.close()
        return life.stopped_before_start()
    reporter = _Reporter(store, name, progress, sink.write)
    try:
        with servers:
            if not settings.max_concurrent:  # 0/unset: ask the container, else 1 (SageMaker's rule)
                settings.max_concurrent = max(1, int(servers.execution_parameters().get("MaxConcurrentTransforms")
                                                     or 1))
            sink.write(f"{settings.strategy}, up to {payload_mb:g} MB per request, {settings.max_concurrent} "
                       f"request{'s' if settings.max_concurrent > 1 else ''} in flight per instance")
            life.transforming()
            instances = [engine.Instance(port, settings) for port in servers.ports]
            reporter.start()
            try:
                engine.run(objects, instances, output, progress, stop, log=sink.write)
            finally:
                for instance in instances:
                    instance.close()
                servers.terminate()  # they shut down while the job's progress is recorded
                reporter.finish()
    except ServerFailed as e:
        reporter.finish()
        sink.close()
        return life.failed(algorithm_error(e), "The model server could not start",
                           output_artifacts=outcome_record(progress))
    except (NBSageError, OSError) as e:
        reporter.finish()
        sink.close()
        return life.failed_client(e, output_artifacts=outcome_record(progress))
    reporter.finish()
    sink.write(f"{progress.records:,} records transformed; {len(progress.written)} of {progress.total_objects} "
               f"objects written to {request.output_path}")
    sink.close()
    record = outcome_record(progress)
    if stop.is_set() or store.get_job(name)["stop_requested"]:
        return life.stopped(output_artifacts=record)
    if progress.failures:
        first, reason = progress.failures[0]
        more = len(progress.failures) - 1
        kept = len(progress.written)
        text = (f"{reason}" + (f" (and {more} more object{'s' if more > 1 else ''} failed)" if more else "")
                + (f"; the .out {'file' if kept == 1 else 'files'} of the {kept} object{'s' if kept > 1 else ''} that "
                   f"succeeded {'is' if kept == 1 else 'are'} kept" if kept else ""))
        return life.failed(client_error(text), f"{len(progress.failures)} input object(s) failed",
                           output_artifacts=record)
    return life.completed(output=record)


def _discard_prepared_runtime() -> None:
    """A supervisor forked from the pre-warmed runtime holds a training runtime forked ahead of time
    (nbsage.backends.runtime_fork); a transform job never runs one, so it goes now, before the model
    servers are forked: they would hold its pipe open and keep it waiting until they end."""
    from nbsage.backends import runtime_process
    if runtime_process.prepared is not None:
        runtime_process.prepared.discard()


def check_request(request) -> None:
    """What can be refused before a transform job is recorded (the API calls this)."""
    settings = settings_of(request)
    settings.processing.check(settings.content_type, settings.accept, settings.split_type, settings.assemble_with)
    if settings.processing.active and settings.split_type not in ("Line", "None"):
        raise ValidationError("DataProcessing works on CSV, JSON and JSON Lines records: give split_type='Line' "
                              "(or 'None' for one JSON document per object)")
