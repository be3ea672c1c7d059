"""The process that looks after one job on the local place (see nbsage.backends.local)."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

from nbsage.backends.log_stream import LogSink
from nbsage.backends.pipe_feeder import PipeFeeder
from nbsage.backends.staging import collect, host_count, prepare_root
from nbsage.errors import NBSageError
from nbsage.runtime.layout import JobRoot

STOP_GRACE_SECONDS = float(os.environ.get("NBSAGE_STOP_GRACE_SECONDS", "10"))


def _die_with_parent():
    """Linux: the runtime gets SIGKILL if this supervisor dies, so no job runs unwatched."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


_running: dict = {}


def _on_sigterm(signum, frame):
    """StopTrainingJob: stop the runtime (SIGTERM, SIGKILL after the grace period)."""
    proc = _running.get("proc")
    if proc is not None:
        threading.Thread(target=_terminate, args=(proc,), daemon=True).start()


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
        store.update_job(job_name, start_time=time.time())
        prepare_root(root, request, request.get("nbsage:SourceDir"))
        feeder = PipeFeeder(root, request, log=sink.write)  # Pipe-mode channels' FIFOs
    except (NBSageError, OSError) as e:
        store.set_status(job_name, "Failed", "Failed", str(e), failure_reason=f"ClientError: {e}")
        return 1
    if store.get_job(job_name)["stop_requested"]:
        store.set_status(job_name, "Stopped", "Stopped", "Stopped before training started")
        return 0
    store.set_status(job_name, "InProgress", "Training", "Training image download completed. Training in progress.")
    env = dict(os.environ, TRAINING_JOB_NAME=job_name, PYTHONUNBUFFERED="1")
    env.update(request.get("Environment") or {})
    feeder.start()
    proc = subprocess.Popen([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(root.path), start_new_session=True, preexec_fn=_die_with_parent)
    _running["proc"] = proc
    store.update_job(job_name, runtime_pid=proc.pid)
    if store.get_job(job_name)["stop_requested"]:
        _on_sigterm(signal.SIGTERM, None)
    max_runtime = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    exceeded = threading.Event()

    def enforce_max_runtime():
        if not exceeded.wait(0) and proc.poll() is None:
            exceeded.set()
            sink.write(f"MaxRuntimeInSeconds ({max_runtime}) exceeded: stopping the job")
            _terminate(proc)

    timer = threading.Timer(float(max_runtime), enforce_max_runtime) if max_runtime else None
    if timer:
        timer.daemon = True
        timer.start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        sink.write(raw.decode("utf-8", errors="replace"))
    rc = proc.wait()
    feeder.stop()
    if timer:
        timer.cancel()
    sink.close()
    stop_requested = store.get_job(job_name)["stop_requested"]
    if exceeded.is_set():
        store.set_status(job_name, "Stopped", "MaxRuntimeExceeded",
                         f"Training job runtime exceeded MaxRuntimeInSeconds provided ({max_runtime} s)",
                         failure_reason=f"MaxRuntimeExceeded: the job ran longer than {max_runtime} s")
        return 0
    if stop_requested:
        store.set_status(job_name, "Stopped", "Stopped", "Training job stopped")
        return 0
    if rc != 0:
        reason = root.failure_reason()
        if rc < 0:
            reason = (f"AlgorithmError: the training process was killed by {_signal_name(rc)}"
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
    store.set_status(job_name, "Completed", "Completed", "Training job completed",
                     model_artifacts=model, output_artifacts=output)
    return 0


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM the runtime's process group; SIGKILL whatever of it is left after the grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    try:
        proc.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    # the runtime may be gone while a process it started (a script ignoring SIGTERM, a data loader
    # worker) still runs and holds the log pipe open: the whole group gets the same deadline
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_name = argv[0]
    try:
        return supervise(job_name)
    except Exception as e:  # never leave the job InProgress
        traceback.print_exc()
        from nbsage.session import Session
        Session().store.set_status(job_name, "Failed", "Failed", "Internal error",
                                   failure_reason=f"InternalServerError: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
