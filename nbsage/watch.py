"""Following a running job: the watcher that `fit(wait=True, logs=True)` uses.

Faces register their watchers here (the API never imports a face): in a Jupyter kernel the
notebook face's live monitor is used — `nbsage/__init__.py` registers a hook that imports it the
first time a job is followed there; in a terminal or under papermill, plain progress lines are printed.
"""
from __future__ import annotations

import sys
import time
from collections import deque

POLL_SECONDS = 0.2
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


class TextWatcher:
    """Prints log lines (and a progress line per 10% of rounds) until the job ends."""

    def __init__(self, job, logs: bool = True, stream=None):
        self.job, self.logs = job, logs
        self.stream = stream or sys.stdout

    def run(self) -> dict:
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
            time.sleep(POLL_SECONDS)
