"""The backend interface every place implements, and the template most places fill in.

A job is recorded in the store (status InProgress/Starting) before `start` is called. A backend
stages the channels into a job root, starts the runtime, streams log lines and metrics into the
store as they happen, collects model.tar.gz/output.tar.gz into the artifact store, and sets the
final status — Completed, Failed (with the reason) or Stopped. It must never leave a job
InProgress after its process is gone: `refresh` checks that when a job is looked at.

`SupervisedBackend` is that contract for a place whose jobs are each looked after by a detached
supervisor process (`python -m <supervisor_module> JOB ...`), as papermill's `Engine.execute_notebook`
does the bookkeeping around an engine's `execute_managed_notebook`: the base launches the
supervisor, stops it with SIGTERM, and marks the job Failed when the supervisor is gone; a place
says which module supervises (`supervisor_module`), with which arguments (`supervisor_args`), what
to prepare before (`prepare_launch`) and what to release after a supervisor died (`release`). The
supervisor itself moves the job through its statuses with `nbsage.backends.lifecycle.JobLifecycle`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from nbsage.backends.lifecycle import JobLifecycle
from nbsage.errors import NBSageError, PlaceError
from nbsage.runtime.layout import PRIVATE_UMASK, private_dir, private_file
from nbsage.store.metadata import pid_alive

SUPERVISOR_LOG = "supervisor.log"  # the supervisor's own output, in the job's folder


class Backend:
    """Base class of a place. Subclasses implement start, stop and refresh."""

    name = "base"
    options: tuple = ()  # the PlaceOptions this place accepts (nbsage.backends.options); checked by backends.get

    def __init__(self, session, **options):
        self.session = session
        self.option_values = options

    def check(self, request) -> None:
        """Refuse, before anything is recorded, a request (a nbsage.store.requests.JobRequest) this
        place cannot run (raise PlaceError)."""

    def start(self, job_name: str) -> None:
        """Start the job recorded under `job_name`; return once it is launched."""
        raise NotImplementedError

    def stop(self, job_name: str) -> None:
        """Ask the job to stop (SIGTERM semantics); the job ends Stopped."""
        raise NotImplementedError

    def refresh(self, job: dict) -> None:
        """Called with a job's record while it is InProgress: mark it Failed if its process is gone."""

    def describe_place(self) -> dict:
        """What this place offers (CPU count, GPUs, memory), for %sm_places."""
        return {"name": self.name}


class SupervisedBackend(Backend):
    """A place whose every job is looked after by a detached supervisor process, so that a job
    outlives the kernel that started it."""

    supervisor_module = ""

    # ---- what a place fills in ---------------------------------------------------------------------
    def supervisor_args(self) -> list[str]:
        """Arguments after the job name for the supervisor process (a place's options)."""
        return []

    def prepare_launch(self, job_dir: Path) -> None:
        """Write what the supervisor reads besides the job's record (before it starts)."""

    def release(self, job: dict) -> str:
        """After the supervisor died: free what it held; returns what the supervisor did, in words
        ("ran this job on the local place"), for the failure reason."""
        return f"ran this job on the {self.name} place"

    # ---- the template --------------------------------------------------------------------------------
    def check_artifact_root(self, request) -> None:
        """Refuse memory:// artifacts: the job's supervisor is another process and would lose them."""
        if any(u.startswith("memory://") for u in request.artifact_uris()) \
                or self.session.artifact_root.startswith("memory://"):
            raise PlaceError(f"memory:// lives inside one process and the {self.name} place runs each job in its "
                             "own process, so the job's artifacts would be lost; use a folder, file:// or s3:// URL")

    def start(self, job_name: str) -> None:
        job_dir = self.session.jobs_dir / job_name
        private_dir(job_dir)
        self.prepare_launch(job_dir)
        # the supervisor finds the same stores again with nbsage.store.Stores.from_environment
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.session.stores.launch_environment())
        with open(private_file(job_dir / SUPERVISOR_LOG), "ab") as log:
            # forked from the place's pre-warmed runtime where there is one (nbsage.backends.zygote)
            from nbsage.backends.zygote import launch
            pid = launch(self.supervisor_module, [job_name, *self.supervisor_args()], env, log.fileno(),
                         PRIVATE_UMASK)
            proc = None if pid is not None else subprocess.Popen(
                [sys.executable, "-m", self.supervisor_module, job_name, *self.supervisor_args()],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, close_fds=True, umask=PRIVATE_UMASK)
        self.session.store.update_job(job_name, supervisor_pid=pid if proc is None else proc.pid)
        if proc is not None:  # reap the child when it ends, so it never lingers as a zombie of this process
            threading.Thread(target=proc.wait, daemon=True).start()

    def stop(self, job_name: str) -> None:
        store = self.session.store
        job = store.get_job(job_name)
        if job["status"] != "InProgress":
            return
        store.update_job(job_name, stop_requested=1)
        JobLifecycle(store, job_name, job["kind"]).stopping()
        pid = job.get("supervisor_pid")
        if pid and supervises(pid, job_name):
            try:
                os.kill(pid, signal.SIGTERM)  # the supervisor stops the runtime
            except ProcessLookupError:
                pass

    def refresh(self, job: dict) -> None:
        if job["status"] not in ("InProgress", "Stopping"):
            return
        pid = job.get("supervisor_pid")
        if pid is None or supervises(pid, job["name"]):
            return  # not launched yet, or still looking after the job
        job = self.session.store.get_job(job["name"])  # the supervisor may have ended the job as it exited
        if job["status"] not in ("InProgress", "Stopping"):
            return
        what = self.release(job)
        life = JobLifecycle(self.session.store, job["name"], job["kind"])
        if job.get("stop_requested"):
            # a stop that reached the supervisor before it could hand it on still is a stop
            life.stopped()
            return
        life.supervisor_gone(pid, what, self.session.jobs_dir / job["name"] / SUPERVISOR_LOG)


def _command_line(pid: int) -> list[bytes] | None:
    """A process's argv from /proc ([b""] for one that has gone or is still in execve); None without /proc."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except FileNotFoundError:
        return [b""]
    except OSError:
        return None


def supervises(pid: int, job_name: str) -> bool:
    """Whether `pid` is alive and still this job's supervisor (`python -m nbsage.backends.<place>_supervisor
    JOB ...`), not a process that got its pid later: a stop must not SIGTERM someone else's process."""
    if not pid_alive(pid):
        return False
    argv = _command_line(pid)
    if argv is None:
        return True  # no /proc (macOS): the pid check alone
    if argv == [b""]:
        return True  # alive with no command line yet: it is still in execve, just started
    return any(a.startswith(b"nbsage.backends.") for a in argv) and job_name.encode() in argv


def kill_runtime_group(job: dict) -> None:
    """SIGKILL the process group of a job's runtime when it outlived its supervisor."""
    runtime = job.get("runtime_pid")
    if runtime and pid_alive(runtime) and _runs_runtime_of(runtime, job):
        try:
            os.killpg(runtime, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _runs_runtime_of(pid: int, job: dict) -> bool:
    """Whether `pid` still is a runtime of this job (`nbsage.runtime ... --root <under the job's root>`).
    Pids are recycled (32768 of them on many Linux machines): a process group killed on a stale pid
    could be an endpoint's or another job's."""
    argv = _command_line(pid)
    if argv is None:
        return True  # no /proc (macOS): the pid check alone
    root = str(job.get("root") or "").encode()
    if b"nbsage.runtime" not in argv or b"--root" not in argv:
        return False
    given = argv[argv.index(b"--root") + 1] if argv.index(b"--root") + 1 < len(argv) else b""
    # algo-2 ... algo-N of a multi-host job run in siblings `<root>-algo-i`
    return not root or given == root or given.startswith((root.rstrip(b"/") + b"/", root.rstrip(b"/") + b"-"))


def supervisor_main(supervise, job_name: str, *args) -> int:
    """Run a supervisor's `supervise(job_name, *args)`; whatever escapes marks the job Failed, never InProgress.

    The job's end is recorded even when the store refuses writes for a while (a full disk): the
    lifecycle keeps it pending and retries until the store accepts it (JobLifecycle.waits_for_store).
    """
    JobLifecycle.waits_for_store = True
    try:
        return supervise(job_name, *args)
    except Exception as e:
        return fail_unexpectedly(job_name, e)


def fail_unexpectedly(job_name: str, error: BaseException) -> int:
    """A supervisor's last resort: print the traceback and mark the job Failed, never InProgress."""
    import traceback

    from nbsage.store import Stores
    try:
        traceback.print_exc()
    except (OSError, ValueError):  # the log is on a full disk
        pass
    kind = "training"
    store = Stores.from_environment().store
    try:
        kind = store.get_job(job_name)["kind"]
    except NBSageError:
        pass
    return JobLifecycle(store, job_name, kind).failed_internally(error)
