"""A forked process's command line, rewritten to the one it would have had if started fresh.

A process forked from the pre-warmed runtime (nbsage.backends.zygote) runs a supervisor or a
runtime without exec, so /proc/PID/cmdline would still read the zygote's. Everything that checks
a recorded pid before signalling it (`supervises`, `_runs_runtime_of`, the tuning driver's
`driving`) reads that command line, so the forked process writes the command line it stands for
(`python -m nbsage.backends.local_supervisor JOB`, `python -m nbsage.runtime train --root ROOT`)
over the memory the kernel shows as its argv, as setproctitle does. The zygote is started with a
padding argument (`ROOM`) so there is room for any such line; the bytes left are NULs.
"""
from __future__ import annotations

import os

ROOM = 4096  # bytes of argv the zygote reserves for its children's command lines


def padding() -> str:
    """The zygote's last argument: the room its children's command lines are written into."""
    return "#" * ROOM


def _argv_area() -> tuple[int, int]:
    """(arg_start, arg_end) of this process, fields 48 and 49 of /proc/self/stat."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()  # the command name may hold spaces: fields after it
    return int(fields[45]), int(fields[46])


def set_command_line(argv: list[str]) -> bool:
    """Make /proc/self/cmdline read `argv`; False when it does not fit or cannot be written here."""
    try:
        start, end = _argv_area()
        payload = b"\0".join(os.fsencode(a) for a in argv) + b"\0"
        if len(payload) > end - start:
            return False
        fd = os.open("/proc/self/mem", os.O_RDWR)
        try:
            os.pwrite(fd, payload.ljust(end - start, b"\0"), start)
        finally:
            os.close(fd)
        with open("/proc/self/cmdline", "rb") as f:
            return f.read().rstrip(b"\0") == payload.rstrip(b"\0")
    except (OSError, ValueError, IndexError):
        return False
