"""Following a running job: the watcher that `fit(wait=True, logs=True)` uses.

Faces register their watchers here (the API never imports a face): in a Jupyter kernel the
notebook face's live monitor is used — `nbsage/__init__.py` registers a hook that imports it the
first time a job is followed there; in a terminal or under papermill, plain progress lines are printed.

A watcher does not check the job on a fixed beat: `StoreChanges` wakes it when the store's files
change (inotify on the folder of nbsage.db — every status, log line and metric is a write there),
so a job's end is seen within milliseconds of being recorded, not up to a poll period later. Where
inotify cannot be used (another OS, no watch left, a store on a network file system whose writers
are elsewhere) it waits POLL_SECONDS, as before; POLL_SECONDS is also the longest wait with no
change, so a place that only learns of a job's end when asked (a dead supervisor) is still asked.
"""
from __future__ import annotations

import os
import select
import sys
import time
from collections import deque
from pathlib import Path

POLL_SECONDS = 0.2
MIN_SECONDS = 0.02  # at most ~50 checks a second while a job writes to the store non-stop
_factories: list = []


def register(factory) -> None:
    """factory(job) -> a watcher object with .run() (blocking until the job ends), or None."""
    if factory not in _factories:
        _factories.insert(0, factory)


def in_notebook_kernel() -> bool:
    shell = sys.modules.get("IPython") and getattr(sys.modules["IPython"], "get_ipython", lambda: None)()
    return bool(shell) and type(shell).__name__ == "ZMQInteractiveShell"


def watcher_for(job, logs: bool = True):
    """The first registered watcher that takes the job, else plain lines."""
    for factory in list(_factories):  # a factory may register another (the lazy notebook hook)
        w = factory(job, logs=logs)
        if w is not None:
            return w
    return TextWatcher(job, logs=logs)


_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000
_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100


class StoreChanges:
    """Waits until a file in the store's folder changes (or `timeout` passes); `with` closes it."""

    def __init__(self, folder: str | os.PathLike | None, min_seconds: float = MIN_SECONDS):
        self.fd = _inotify(folder) if folder is not None else None
        self.min_seconds = min_seconds  # the shortest time between two wakes
        self._last = 0.0

    def wait(self, timeout: float = POLL_SECONDS) -> None:
        """Return when the store has changed since the last wait, else after `timeout` seconds."""
        if self.fd is None:
            time.sleep(timeout)
            return
        rest = self._last + self.min_seconds - time.monotonic()
        if rest > 0:  # a rate limit, not a synchronisation: changes in between are still pending
            time.sleep(rest)
        select.select([self.fd], [], [], max(0.0, timeout - max(rest, 0.0)))
        try:
            while os.read(self.fd, 65536):  # drain: one wake for every change so far
                pass
        except BlockingIOError:
            pass
        self._last = time.monotonic()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _inotify(folder) -> int | None:
    """An inotify descriptor watching the folder's files, or None where there is none to be had."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only when a job is followed: `import nbsage` stays light
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
    if libc.inotify_add_watch(fd, os.fsencode(folder), mask) < 0:
        os.close(fd)
        return None
    return fd


def store_changes(job, min_seconds: float = MIN_SECONDS) -> StoreChanges:
    """The changes of the store a job is recorded in (its nbsage.db's folder)."""
    path = getattr(getattr(job, "_store", None), "path", None)
    return StoreChanges(Path(path).parent if path is not None else None, min_seconds)


class TextWatcher:
    """Prints log lines (and a progress line per 10% of rounds) until the job ends."""

    def __init__(self, job, logs: bool = True, stream=None):
        self.job, self.logs = job, logs
        self.stream = stream or sys.stdout

    def run(self) -> dict:
        with store_changes(self.job) as changes:
            return self._follow(changes)

    def _follow(self, changes: StoreChanges) -> dict:
        seq, last_status, last_decile = 0, None, -1
        recent: deque[str] = deque(maxlen=200)  # the last log lines shown: a failure they hold is not repeated
        while True:
            desc = self.job.describe()
            if self.logs:
                for seq, _, line in self.job._store.get_logs(self.job.name, seq):
                    if not line.startswith("#metric ") and not line.startswith("#progress "):
                        print(line, file=self.stream)
                        recent.append(line.strip())
                self.stream.flush()
            else:
                step, total = desc.get("nbsage:Progress", (None, None))
                if step and total and step * 10 // total > last_decile:
                    last_decile = step * 10 // total
                    print(f"{self.job.name}: {step}/{total}", file=self.stream, flush=True)
            status = f"{desc['TrainingJobStatus']} - {desc['SecondaryStatus']}"
            if status != last_status:
                print(f"{time.strftime('%H:%M:%S')} {self.job.name}: {status}", file=self.stream, flush=True)
                last_status = status
            if desc["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
                reason = desc.get("FailureReason")
                if reason and reason.strip() not in recent:
                    print(f"{self.job.name}: {reason}", file=self.stream, flush=True)
                return desc
            changes.wait(POLL_SECONDS)
