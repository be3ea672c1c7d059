"""The process that looks after one job on the local place (see nbsage.backends.local)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from nbsage.backends.checkpoints import checkpoint_sync_for
from nbsage.backends.base import fail_unexpectedly
from nbsage.backends.log_stream import LogSink
from nbsage.backends.pipe_feeder import PipeFeeder
from nbsage.backends.runtime_process import die_with_parent, terminate_group
from nbsage.backends.spot import Attempt, ManagedSpot, RestartFailed, killed_by
from nbsage.backends.staging import collect, host_count, prepare_root, release_fastfile
from nbsage.errors import NBSageError
from nbsage.runtime.layout import JobRoot







_running: dict = {}


def _on_sigterm(signum, frame):
    """StopTrainingJob: stop the runtime (SIGTERM, SIGKILL after the grace period)."""
    proc = _running.get("proc")
    if proc is not None:
        threading.Thread(target=terminate_group, args=(proc,), daemon=True).start()


def supervise(job_name: str) -> int:
    from nbsage.session import Session
    signal.signal(signal.SIGTERM, _on_sigterm)
    session = Session()
    store = session.store
    job = store.get_job(job_name)
    if job["kind"] == "processing":  # the same supervisor, a processing job's steps
        from nbsage.backends.processing_job import supervise as supervise_processing
        return supervise_processing(session, job)
    request = json.loads(job["request"])
    if host_count(request) > 1:  # several instances: one runtime process per host
        from nbsage.backends.multi_host import supervise_local
        return supervise_local(session, job)
    root = JobRoot(job["root"])
    sink = LogSink(store, job_name, request.get("AlgorithmSpecification", {}).get("MetricDefinitions"))
    try:
        store.set_status(job_name, "InProgress", "Downloading", "Downloading input data")
        started = time.time()
        store.update_job(job_name, start_time=started)
        prepare_root(root, request, request.get("nbsage:SourceDir"), log=sink.write)
        feeder = PipeFeeder(root, request, log=sink.write)  # Pipe-mode channels' FIFOs
        sync = checkpoint_sync_for(request, root, log=sink.write)  # CheckpointConfig: restore, then mirror
        if sync:
            sync.restore()
    except (NBSageError, OSError) as e:
        store.set_status(job_name, "Failed", "Failed", str(e), failure_reason=f"ClientError: {e}")
        return 1
    except Exception as e:  # the checkpoint URI could not be read
        store.set_status(job_name, "Failed", "Failed", "Restoring checkpoints failed",
                         failure_reason=f"ClientError: restoring checkpoints failed: {type(e).__name__}: {e}")
        return 1
    if store.get_job(job_name)["stop_requested"]:
        store.set_status(job_name, "Stopped", "Stopped", "Stopped before training started")
        return 0
    env = dict(os.environ, TRAINING_JOB_NAME=job_name, PYTHONUNBUFFERED="1")
    env.update(request.get("Environment") or {})
    spot = ManagedSpot(store, job_name, request, log=sink.write, started=started)
    ran = {"rc": 0, "feeder": feeder}

    def attempt(limits) -> Attempt:
        store.set_status(job_name, "InProgress", "Training", spot.training_message)
        if sync:
            sync.start()
        ran["feeder"].start()
        rc, exceeded = _run_runtime(root, env, job_name, store, sink, limits)
        ran["rc"] = rc
        ran["feeder"].stop()
        if sync:
            try:
                sync.stop()
            except Exception as e:  # the checkpoints are not the model: the job goes on
                sink.write(f"Checkpoint upload to {sync.url} failed: {type(e).__name__}: {e}")
        # managed spot: a runtime killed by a signal (not by a stop) is a worker taken away
        return Attempt(exceeded=exceeded, interrupted=f"the worker was killed by {killed_by(rc)}" if rc < 0 else None)

    def restart() -> None:  # new capacity: the checkpoints back from the URI, fresh Pipe FIFOs
        if sync:
            sync.restore()
        ran["feeder"] = PipeFeeder(root, request, log=sink.write)

    try:
        last = spot.run(attempt, restart, lambda: bool(store.get_job(job_name)["stop_requested"]))
    except RestartFailed as e:  # the checkpoints could not be restored
        sink.close()
        spot.bill()
        store.set_status(job_name, "Failed", "Failed", "Restoring checkpoints failed",
                         failure_reason=f"ClientError: restoring checkpoints failed: {e}")
        return 1
    release_fastfile(root)  # the runtime has ended: its FastFile mounts go before the job ends
    sink.close()
    rc = ran["rc"]
    spot.bill()
    if last.exceeded:
        spot.end_exceeded(last.exceeded)
        return 0
    if last.stopped:
        store.set_status(job_name, "Stopped", "Stopped", "Training job stopped")
        return 0
    if rc != 0:
        reason = root.failure_reason()
        if rc < 0:
            reason = (f"AlgorithmError: the training process was killed by {killed_by(rc)}"
                      + (" (out of memory?)" if rc == -signal.SIGKILL else ""))
        store.set_status(job_name, "Failed", "Failed", "Training job failed",
                         failure_reason=reason or f"AlgorithmError: the training process exited with code {rc}")
        return 0
    store.set_status(job_name, "InProgress", "Uploading", "Uploading generated training model")
    try:
        model, output = collect(root, request, session.artifacts)
    except Exception as e:
        store.set_status(job_name, "Failed", "Failed", "Uploading failed",
                         failure_reason=f"InternalServerError: uploading artifacts failed: {e}")
        return 1
    spot.bill()
    store.set_status(job_name, "Completed", "Completed", "Training job completed",
                     model_artifacts=model, output_artifacts=output)
    return 0


def _run_runtime(root: JobRoot, env: dict, job_name: str, store, sink: LogSink,
                 limits: list[tuple[float, str, str]]) -> tuple[int, str | None]:
    """One run of the runtime: (exit code, the limit it ran past or None). `limits` are
    (seconds from now, name, log line): the first to expire stops the runtime."""
    proc = subprocess.Popen([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(root.path), start_new_session=True, preexec_fn=die_with_parent)
    _running["proc"] = proc
    store.update_job(job_name, runtime_pid=proc.pid)
    if store.get_job(job_name)["stop_requested"]:
        _on_sigterm(signal.SIGTERM, None)
    exceeded: list[str] = []
    lock = threading.Lock()

    def enforce(name: str, message: str):
        with lock:
            if exceeded or proc.poll() is not None:
                return
            exceeded.append(name)
        sink.write(message)
        terminate_group(proc)

    timers = [threading.Timer(seconds, enforce, args=(name, message)) for seconds, name, message in limits]
    for t in timers:
        t.daemon = True
        t.start()

    def reap():
        # a runtime killed by a signal leaves its children (the script, data loaders) holding the
        # log pipe open: they go too, so the log ends and the job can go on
        if proc.wait() < 0:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    threading.Thread(target=reap, daemon=True).start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        sink.write(raw.decode("utf-8", errors="replace"))
    rc = proc.wait()
    for t in timers:
        t.cancel()
    _running.pop("proc", None)
    with lock:
        return rc, (exceeded[0] if exceeded else None)




def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_name = argv[0]
    try:
        return supervise(job_name)
    except Exception as e:  # never leave the job InProgress
        return fail_unexpectedly(job_name, e)
    finally:
        release_fastfile()  # whatever way the job ended, no mount outlives it


if __name__ == "__main__":
    sys.exit(main())
