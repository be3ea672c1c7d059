"""A forked process's command line, rewritten to the one it would have had if started fresh.

A process forked from the pre-warmed runtime (nbsage.backends.zygote) runs a supervisor or a
runtime without exec, so /proc/PID/cmdline would still read the zygote's. Everything that checks
a recorded pid before signalling it (`supervises`, `_runs_runtime_of`, the tuning driver's
`driving`) reads that command line, so the forked process writes the command line it stands for
(`python -m nbsage.backends.local_supervisor JOB`, `python -m nbsage.runtime train --root ROOT`)
over the memory the kernel shows as its argv, as setproctitle does, and its environment over the
memory shown as /proc/PID/environ. The zygote is started with a padding argument (`ROOM` bytes) and
a padding variable (4 x `ROOM`) so there is room for them; the bytes left are NULs.
"""
from __future__ import annotations

import os

ROOM = 4096  # bytes of argv the zygote reserves for its children's command lines


def padding() -> str:
    """The zygote's last argument (and ROOM_VARIABLE's value): the room its children's command lines
    (and environments) are written into."""
    return "#" * ROOM


ROOM_VARIABLE = "_NBSAGE_ZYGOTE_ROOM"  # the zygote's environment block, padded the same way


def _area(first: int) -> tuple[int, int]:
    """(start, end) of this process's argv (first=45: fields 48-49 of /proc/self/stat) or
    environment (first=47: fields 50-51)."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()  # the command name may hold spaces: fields after it
    return int(fields[first]), int(fields[first + 1])


def _write(first: int, payload: bytes) -> bool:
    start, end = _area(first)
    if len(payload) > end - start:
        return False
    fd = os.open("/proc/self/mem", os.O_RDWR)
    try:
        os.pwrite(fd, payload.ljust(end - start, b"\0"), start)
    finally:
        os.close(fd)
    return True


def set_command_line(argv: list[str]) -> bool:
    """Make /proc/self/cmdline read `argv`; False when it does not fit or cannot be written here."""
    try:
        payload = b"\0".join(os.fsencode(a) for a in argv) + b"\0"
        if not _write(45, payload):
            return False
        with open("/proc/self/cmdline", "rb") as f:
            return f.read().rstrip(b"\0") == payload.rstrip(b"\0")
    except (OSError, ValueError, IndexError):
        return False


def set_environ(env: dict[str, str]) -> bool:
    """Make /proc/self/environ show `env` (what tools and a test's clean-up read to tell whose a process
    is: NBSAGE_* first, then as many of the others as fit). Python's os.environ is set separately."""
    entries = sorted(env.items(), key=lambda kv: (not kv[0].startswith("NBSAGE_"), kv[0]))
    try:
        room = _area(47)[1] - _area(47)[0]
        payload = b""
        for key, value in entries:
            entry = os.fsencode(key) + b"=" + os.fsencode(value) + b"\0"
            if len(payload) + len(entry) > room:
                continue
            payload += entry
        return _write(47, payload)
    except (OSError, ValueError, IndexError):
        return False
