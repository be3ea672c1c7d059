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
import subprocess
import sys
import threading
import time
from pathlib import Path

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


def stage_inputs(root: ProcessingRoot, request: dict) -> None:
    """Copy each ProcessingInput's source (a file, a folder or an fsspec URL) to its LocalPath."""
    for item in request.get("ProcessingInputs") or []:
        s3 = item.get("S3Input") or {}
        local = check_local_path(s3.get("LocalPath", ""), f"ProcessingInput {item['InputName']!r}")
        stage_channel(s3["S3Uri"], root.local(local), item["InputName"])


def output_syncs(root: ProcessingRoot, request: dict, artifacts) -> tuple[list[OutputSync], list[OutputSync]]:
    """(Continuous, EndOfJob) outputs."""
    continuous, end_of_job = [], []
    for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        s3 = item.get("S3Output") or {}
        local = check_local_path(s3.get("LocalPath", ""), f"ProcessingOutput {item['OutputName']!r}")
        sync = OutputSync(item["OutputName"], root.local(local), s3["S3Uri"], artifacts)
        (continuous if s3.get("S3UploadMode") == "Continuous" else end_of_job).append(sync)
    return continuous, end_of_job


def supervise(session, job: dict) -> int:
    """Run one recorded processing job to its end on this machine (in the supervisor process)."""
    from nbsage.backends.runtime_process import die_with_parent, terminate_group
    from nbsage.backends.spot import killed_by
    from nbsage.backends.log_stream import LogSink

    store, name = session.store, job["name"]
    request = json.loads(job["request"])
    root = ProcessingRoot(job["root"])
    running: dict = {}

    def on_sigterm(signum, frame):  # StopProcessingJob
        proc = running.get("proc")
        if proc is not None:
            threading.Thread(target=terminate_group, args=(proc,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    sink = LogSink(store, name)
    try:
        store.set_status(name, "InProgress", "Downloading", "Downloading input data")
        store.update_job(name, start_time=time.time())
        prepare(root.path, request)
        stage_inputs(root, request)
        continuous, end_of_job = output_syncs(root, request, session.artifacts)
    except (NBSageError, OSError, KeyError) as e:
        store.set_status(name, "Failed", "Failed", str(e), failure_reason=f"ClientError: {e}")
        return 1
    if store.get_job(name)["stop_requested"]:
        store.set_status(name, "Stopped", "Stopped", "Stopped before processing started")
        return 0
    store.set_status(name, "InProgress", "Processing", "Processing job in progress")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "nbsage.runtime", "process", "--root", str(root.path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(root.path), start_new_session=True, preexec_fn=die_with_parent)
    running["proc"] = proc
    store.update_job(name, runtime_pid=proc.pid)
    if store.get_job(name)["stop_requested"]:
        on_sigterm(signal.SIGTERM, None)
    uploader = ContinuousUploader(continuous, sink.write)
    if continuous:
        uploader.start()
    max_runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    exceeded = threading.Event()

    def enforce_max_runtime():
        if proc.poll() is None:
            exceeded.set()
            sink.write(f"MaxRuntimeInSeconds ({max_runtime}) exceeded: stopping the job")
            terminate_group(proc)

    timer = threading.Timer(float(max_runtime), enforce_max_runtime) if max_runtime else None
    if timer:
        timer.daemon = True
        timer.start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        sink.write(raw.decode("utf-8", errors="replace"))
    rc = proc.wait()
    if timer:
        timer.cancel()
    upload_errors = uploader.finish()  # the last changes of Continuous outputs, whatever the outcome
    sink.flush()
    exit_message = root.exit_message()
    uploaded = {s.name: s.destination for s in continuous}
    record = {"output_artifacts": outcome_record(exit_message, uploaded)}

    if exceeded.is_set():
        store.set_status(name, "Stopped", "MaxRuntimeExceeded",
                         f"Processing job runtime exceeded MaxRuntimeInSeconds provided ({max_runtime} s)",
                         failure_reason=f"MaxRuntimeExceeded: the job ran longer than {max_runtime} s", **record)
        return 0
    if store.get_job(name)["stop_requested"]:
        store.set_status(name, "Stopped", "Stopped", "Processing job stopped", **record)
        return 0
    if rc != 0:
        reason = root.failure_reason()
        if rc < 0:
            reason = (f"AlgorithmError: the processing job's runtime was killed by {killed_by(rc)}"
                      + (" (out of memory?)" if rc == -signal.SIGKILL else ""))
        store.set_status(name, "Failed", "Failed", "Processing job failed",
                         failure_reason=reason or f"AlgorithmError: the processing job exited with code {rc}",
                         **record)
        return 0
    if upload_errors:
        store.set_status(name, "Failed", "Failed", "Uploading failed",
                         failure_reason=f"ClientError: {upload_errors[0]}", **record)
        return 0
    store.set_status(name, "InProgress", "Uploading", "Uploading generated output data")
    for sync in end_of_job:
        try:
            sync.sync()
        except Exception as e:
            store.set_status(name, "Failed", "Failed", "Uploading failed",
                             failure_reason=f"ClientError: uploading output {sync.name!r} to {sync.destination} "
                                            f"failed: {type(e).__name__}: {e}", **record)
            return 1
        uploaded[sync.name] = sync.destination
    store.set_status(name, "Completed", "Completed", "Processing job completed",
                     output_artifacts=outcome_record(exit_message, uploaded))
    return 0
