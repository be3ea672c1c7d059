"""The runtime as a child process, the same on every place: tied to its parent, stopped as a group.

Every place starts `python -m nbsage.runtime train|process --root ROOT` with `start_runtime`: its
own process group (`start_new_session`), SIGKILL if the place's process dies (`die_with_parent`),
its output on one pipe; and stops it with `terminate_group`.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

# seconds between SIGTERM and SIGKILL when a job is stopped
STOP_GRACE_SECONDS = float(os.environ.get("NBSAGE_STOP_GRACE_SECONDS", "10"))


def die_with_parent() -> None:
    """Linux: the runtime gets SIGKILL when the process that started it dies, so no job runs unwatched."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# a runtime forked ahead of time by a supervisor that was forked from the zygote
# (nbsage.backends.runtime_fork.PreparedRuntime); used once, by the first runtime it fits
prepared = None


def start_runtime(command: str, root, env: dict) -> subprocess.Popen:
    """`python -m nbsage.runtime <command> --root ROOT` in ROOT, stdout and stderr on one pipe."""
    global prepared
    if prepared is not None and prepared.fits(command, env):
        ready, prepared = prepared, None
        return ready.start(command, root, env)
    return subprocess.Popen([sys.executable, "-m", "nbsage.runtime", command, "--root", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(root), start_new_session=True, preexec_fn=die_with_parent)


def terminate_group(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the runtime's process group; SIGKILL whatever of it is left after `grace` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    try:
        proc.wait(grace)
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


def max_runtime_limit(max_runtime, seconds_left=None) -> tuple[float, str, str]:
    """MaxRuntimeInSeconds as a limit of `RuntimeRun.run`: (seconds from now, name, log line)."""
    left = float(max_runtime) if seconds_left is None else seconds_left
    return (left, "MaxRuntimeExceeded", f"MaxRuntimeInSeconds ({max_runtime}) exceeded: stopping the job")


class RuntimeRun:
    """The runtime run by a supervisor (or the kernel place's agent): started, its output handed on
    line by line, stopped on StopTrainingJob (`stop`, e.g. from a SIGTERM handler), and stopped by the
    first of its limits to expire — (seconds from now, name, log line), e.g. MaxRuntimeInSeconds."""

    def __init__(self, grace: float = STOP_GRACE_SECONDS):
        self.grace = grace
        self.proc: subprocess.Popen | None = None
        self.exceeded: str | None = None  # the limit the last run ran past
        self._stop_asked = False

    def stop(self, signum=None, frame=None) -> None:
        """SIGTERM the runtime's group, SIGKILL after the grace period (in a thread: a signal handler returns at once)."""
        self._stop_asked = True
        proc = self.proc
        if proc is not None:
            threading.Thread(target=terminate_group, args=(proc, self.grace), daemon=True).start()

    def run(self, command: str, root, env: dict, on_line: Callable[[str], None],
            limits=(), on_started: Callable[[int], bool] | None = None) -> tuple[int, str | None]:
        """Run it to its end: (exit status, the name of the limit it ran past or None).
        `on_started(pid)` returns True when a stop came before the runtime started. An exception
        while it runs (KeyboardInterrupt) leaves `proc` set, for the caller to stop it; an error
        from `on_line` (the store refusing the job's lines) stops the runtime first."""
        proc = self.proc = start_runtime(command, root, env)
        self.exceeded = None
        if (on_started and on_started(proc.pid)) or self._stop_asked:
            self.stop()
        lock = threading.Lock()

        def enforce(name: str, message: str):
            with lock:
                if self.exceeded or proc.poll() is not None:
                    return
                self.exceeded = name
            on_line(message)
            terminate_group(proc, self.grace)

        timers = [threading.Timer(float(seconds), enforce, args=(name, message)) for seconds, name, message in limits]
        for t in timers:
            t.daemon = True
            t.start()
        threading.Thread(target=self._reap, args=(proc,), daemon=True).start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                on_line(raw.decode("utf-8", errors="replace"))
            rc = proc.wait()
        except Exception:  # the lines cannot be recorded (a full store): the job fails, its runtime goes
            terminate_group(proc, self.grace)
            raise
        finally:
            for t in timers:
                t.cancel()
        self.proc = None
        with lock:
            return rc, self.exceeded

    @staticmethod
    def _reap(proc: subprocess.Popen) -> None:
        # a runtime killed by a signal leaves its children (the script, data loaders) holding the
        # log pipe open: they go too, so the log ends and the job can go on
        if proc.wait() < 0:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
