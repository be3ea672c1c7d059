"""Jobs whose supervisor is gone are marked Failed within seconds, without anyone reading them.

A job's supervisor records how the job ended; when the supervisor itself dies (SIGKILL, the OOM
killer, a reboot) nobody does, and the job would stay InProgress until someone describes it. Any
nbsage process that has jobs open — a kernel that submitted or listed jobs, the CLI, the console's
server extension — runs one `Reconciler` per NBSAGE_HOME: a daemon thread that, every
`INTERVAL` seconds, asks each InProgress job's place to `refresh` it (the same check a read does).
It ends by itself after `IDLE_ROUNDS` rounds without a job in progress, and is started again by
the next submit or listing (`ensure_reconciler`).
"""
from __future__ import annotations

import threading

INTERVAL = 1.0  # seconds between rounds: a dead supervisor's job is Failed within ~2 rounds
IDLE_ROUNDS = 60  # rounds without an InProgress job before the thread ends

_lock = threading.Lock()
_running: dict[str, "Reconciler"] = {}  # NBSAGE_HOME -> its reconciler in this process


class Reconciler(threading.Thread):
    """The daemon thread that reconciles the jobs of one session's store."""

    def __init__(self, session):
        super().__init__(name=f"nbsage-reconciler {session.home}", daemon=True)
        self.session = session
        self.finished = threading.Event()  # set to end the thread early
        self.wanted = False  # a submit or listing came since the last round: keep going

    def run(self) -> None:
        idle = 0
        while not self.finished.wait(INTERVAL):
            try:
                idle = 0 if reconcile(self.session) else idle + 1
            except Exception:  # a busy or full store: the next round tries again
                idle = 0
            if idle < IDLE_ROUNDS:
                continue
            with _lock:  # decided under the lock: a submit now either sees this thread gone or keeps it
                if self.wanted:
                    self.wanted, idle = False, 0
                    continue
                _running.pop(str(self.session.home), None)
                return


def reconcile(session) -> int:
    """One round: every InProgress (or Stopping) job whose supervisor is gone is marked Failed (or
    Stopped, when a stop was asked for). Returns how many jobs were in progress."""
    from nbsage import backends
    jobs = session.store.jobs_in_progress()
    for job in jobs:
        try:
            backends.get(job["backend"], session).refresh(job)
        except Exception:  # one job's place failing does not keep the others from being reconciled
            continue
    return len(jobs)


def ensure_reconciler(session) -> None:
    """Start this process's reconciler of `session`'s store unless it runs (not on a read-only store)."""
    if session.store.read_only:
        return
    key = str(session.home)
    with _lock:
        current = _running.get(key)
        if current is not None and current.is_alive() and not current.finished.is_set():
            current.wanted = True
            return
        _running[key] = Reconciler(session)
        _running[key].start()
