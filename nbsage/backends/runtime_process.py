"""The runtime as a child process, the same on every place: tied to its parent, stopped as a group.

A place starts `python -m nbsage.runtime ...` with `start_new_session=True, preexec_fn=die_with_parent`
(its own process group, SIGKILL if the place's process dies) and stops it with `terminate_group`.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time

# seconds between SIGTERM and SIGKILL when a job is stopped
STOP_GRACE_SECONDS = float(os.environ.get("NBSAGE_STOP_GRACE_SECONDS", "10"))


def die_with_parent() -> None:
    """Linux: the runtime gets SIGKILL when the process that started it dies, so no job runs unwatched."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


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
