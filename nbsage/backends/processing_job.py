"""A processing job on the local place: what the job's supervisor does for `kind = "processing"`.

The local place starts one detached supervisor per job (nbsage.backends.local); for a processing
job it runs `supervise` here: lay out the job root and write its config files, stage every
ProcessingInput at its LocalPath, run `python -m nbsage.runtime process --root ROOT` in its own
process group (the runtime gives the job a private /opt/ml), stream its output to the store,
enforce MaxRuntimeInSeconds, upload the outputs and set the final status.

Outputs: a `Continuous` output is uploaded while the job runs — every UPLOAD_SECONDS, each file
under its LocalPath that is new or changed since its last upload (symlinks are not followed) — and
once more when the job ends, however it ends. An `EndOfJob` output is uploaded after the job
completes; a job that fails or is stopped uploads no EndOfJob output. Each file is written to
`<S3Uri>/<path under LocalPath>` atomically, so readers never see half a file.

Statuses: InProgress (secondary Starting → Downloading → Processing → Uploading), then Completed,
Failed (FailureReason: the script's exit code and stderr tail, or what went wrong) or Stopped
(StopProcessingJob, or MaxRuntimeInSeconds exceeded). ExitMessage (the first 1 KB of
/opt/ml/output/message) is kept with the job's record, whatever the outcome.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from nbsage.backends.lifecycle import JobLifecycle, client_error, described
from nbsage.backends.log_stream import LogSink
from nbsage.backends.runtime_process import RuntimeRun, max_runtime_limit
from nbsage.backends.staging import stage_channel
from nbsage.errors import NBSageError
from nbsage.runtime.processing import ProcessingRoot, check_local_path, prepare
from nbsage.store.artifacts import join

UPLOAD_SECONDS = float(os.environ.get("NBSAGE_CONTINUOUS_UPLOAD_SECONDS", "1"))


def outcome_record(exit_message: str | None, outputs: dict[str, str]) -> str:
    """What the job's record keeps in `output_artifacts`: ExitMessage and the uploaded outputs' URIs."""
    return json.dumps({"ExitMessage": exit_message, "Outputs": outputs})


def read_outcome(value: str | None) -> dict:
    try:
        data = json.loads(value) if value else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


class OutputSync:
    """Uploads the files of one output's LocalPath to its S3Uri: new or changed files only."""

    def __init__(self, name: str, local_dir: Path, destination: str, artifacts):
        self.name, self.local_dir, self.destination, self.artifacts = name, local_dir, destination, artifacts
        self._uploaded: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def sync(self) -> int:
        """Upload what changed since the last call; returns how many files were uploaded."""
        count = 0
        with self._lock:
            for folder, dirs, files in os.walk(self.local_dir):
                for name in sorted(files):
                    path = Path(folder) / name
                    try:
                        st = path.lstat()
                    except FileNotFoundError:
                        continue  # removed while we looked
                    if not path.is_file() or path.is_symlink():
                        continue
                    rel = path.relative_to(self.local_dir).as_posix()
                    signature = (st.st_size, st.st_mtime_ns)
                    if self._uploaded.get(rel) == signature:
                        continue
                    self.artifacts.put_file(path, join(self.destination, rel))
                    self._uploaded[rel] = signature
                    count += 1
        return count


class ContinuousUploader(threading.Thread):
    """Syncs every Continuous output each `interval` seconds until finished."""

    def __init__(self, syncs: list[OutputSync], log, interval: float = UPLOAD_SECONDS):
        super().__init__(daemon=True, name="nbsage-continuous-upload")
        self.syncs, self.log, self.interval = syncs, log, interval
        self._done = threading.Event()
        self._logged: set[str] = set()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sync_all()

    def sync_all(self) -> list[str]:
        """One pass over every output; returns what failed (each failure is logged once)."""
        errors = []
        for s in self.syncs:
            try:
                s.sync()
            except Exception as e:  # keep trying: the destination may come back
                message = f"uploading output {s.name!r} to {s.destination} failed: {type(e).__name__}: {e}"
                errors.append(message)
                if message not in self._logged:
                    self._logged.add(message)
                    self.log(f"nbsage: {message}")
        return errors

    def finish(self) -> list[str]:
        """Stop the thread and upload the last changes; returns the failures of that last pass."""
        self._done.set()
        if self.is_alive():
            self.join()
        return self.sync_all()


def stage_inputs(root: ProcessingRoot, request) -> None:
    """Copy each ProcessingInput's source (a file, a folder or an fsspec URL) to its LocalPath."""
    for item in request.inputs:
        s3 = item.get("S3Input") or {}
        local = check_local_path(s3.get("LocalPath", ""), f"ProcessingInput {item['InputName']!r}")
        stage_channel(s3["S3Uri"], root.local(local), item["InputName"])


def output_syncs(root: ProcessingRoot, request, artifacts) -> tuple[list[OutputSync], list[OutputSync]]:
    """(Continuous, EndOfJob) outputs."""
    continuous, end_of_job = [], []
    for item in request.outputs:
        s3 = item.get("S3Output") or {}
        local = check_local_path(s3.get("LocalPath", ""), f"ProcessingOutput {item['OutputName']!r}")
        sync = OutputSync(item["OutputName"], root.local(local), s3["S3Uri"], artifacts)
        (continuous if s3.get("S3UploadMode") == "Continuous" else end_of_job).append(sync)
    return continuous, end_of_job


def supervise(stores, job: dict, request) -> int:
    """Run one recorded processing job to its end on this machine (in the supervisor process)."""
    store, name = stores.store, job["name"]
    root = ProcessingRoot(job["root"])
    life = JobLifecycle(store, name, request.kind)
    runtime = RuntimeRun()
    signal.signal(signal.SIGTERM, runtime.stop)  # StopProcessingJob
    sink = LogSink(store, name)

    def stop_requested() -> bool:
        return bool(store.get_job(name)["stop_requested"])

    try:
        life.downloading()
        store.update_job(name, start_time=time.time())
        prepare(root.path, request.to_dict())
        stage_inputs(root, request)
        continuous, end_of_job = output_syncs(root, request, stores.artifacts)
    except (NBSageError, OSError, KeyError) as e:
        life.failed_client(e)
        return 1
    if stop_requested():
        return life.stopped_before_start()
    life.processing()
    uploader = ContinuousUploader(continuous, sink.write)
    if continuous:
        uploader.start()
    limits = [max_runtime_limit(request.max_runtime)] if request.max_runtime else []

    def started(pid: int) -> bool:
        store.update_job(name, runtime_pid=pid)
        return stop_requested()

    rc, exceeded = runtime.run("process", root.path, dict(os.environ, PYTHONUNBUFFERED="1"), sink.write, limits, started)
    upload_errors = uploader.finish()  # the last changes of Continuous outputs, whatever the outcome
    sink.flush()
    return _finish(life, root, rc, exceeded, stop_requested(), upload_errors, continuous, end_of_job,
                   request.max_runtime)


def _finish(life, root: ProcessingRoot, rc: int, exceeded: str | None, stopped: bool, upload_errors: list[str],
            continuous: list[OutputSync], end_of_job: list[OutputSync], max_runtime) -> int:
    """The job's end from how the runtime ended; EndOfJob outputs are uploaded when it completed."""
    exit_message = root.exit_message()
    uploaded = {s.name: s.destination for s in continuous}
    record = {"output_artifacts": outcome_record(exit_message, uploaded)}
    if exceeded:
        return life.exceeded(exceeded, max_runtime, **record)
    if stopped:
        return life.stopped(**record)
    if rc != 0:
        return life.failed_runtime(rc, root.failure_reason(), **record)
    if upload_errors:
        return life.failed_uploading(None, client_error(upload_errors[0]), **record)
    life.uploading()
    for sync in end_of_job:
        try:
            sync.sync()
        except Exception as e:
            life.failed_uploading(e, client_error(f"uploading output {sync.name!r} to {sync.destination} "
                                                  f"failed: {described(e)}"), **record)
            return 1
        uploaded[sync.name] = sync.destination
    return life.completed(output=outcome_record(exit_message, uploaded))
