"""Managed spot training on every place: an interrupted job waits for capacity, restores its
checkpoints and trains again, until MaxWaitTimeInSeconds.

SageMaker's rules (contracts-detail 3.3, 3.4): with EnableManagedSpotTraining a job whose instances
are taken away goes `Interrupted`, then `Restarting` on new capacity with CheckpointConfig.S3Uri
copied back into the checkpoint folder (and the channels staged again), then `Training` again.
MaxRuntimeInSeconds counts the seconds spent training, over every attempt; MaxWaitTimeInSeconds
counts from the start, waiting included, and ends the job `Stopped`/`MaxWaitTimeExceeded`.
BillableTimeInSeconds leaves out the time spent Interrupted or Restarting.

nbsage has no spot market: what takes an instance away is a worker killed by a signal (the OOM
killer, `kill -9`), a Jupyter kernel that dies, a Dask worker that leaves the cluster. Under managed
spot that is an interruption; without it, as before, the job fails with the reason. A stop
(StopTrainingJob) is never an interruption. $NBSAGE_SPOT_RESTART_SECONDS (default 1) is how long
an interrupted job waits for "new capacity".

A place runs its training through `ManagedSpot.run`, giving it two hooks:

    spot = ManagedSpot(store, job_name, request, log=sink.write)   # request: a TrainingRequest
    last = spot.run(attempt, restart, stop_requested)

`attempt(limits)` trains once — `limits` are (seconds from now, name, log line): the first to
expire stops the training, which then reports that name in `Attempt.exceeded` — and says how it
ended; `restart()` gets the place ready to train again (a new kernel, checkpoints restored, ...);
an exception from it ends the loop as `RestartFailed`, the caller's to report.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from nbsage.backends.lifecycle import JobLifecycle
from nbsage.backends.lifecycle import signal_name as killed_by  # -9 -> 'SIGKILL', for the places
from nbsage.backends.runtime_process import max_runtime_limit

__all__ = ["Attempt", "ManagedSpot", "RestartFailed", "killed_by", "restart_seconds", "unbilled_seconds"]

UNBILLED = ("Interrupted", "Restarting")  # secondary statuses without capacity: not billed


def unbilled_seconds(transitions: list[dict], now: float) -> float:
    """Seconds a job spent Interrupted or Restarting (its SecondaryStatusTransitions as the store keeps them)."""
    return sum((t["end_time"] or now) - t["start_time"] for t in transitions if t["status"] in UNBILLED)


def restart_seconds() -> float:
    """How long an interrupted spot job waits for new capacity ($NBSAGE_SPOT_RESTART_SECONDS)."""
    return float(os.environ.get("NBSAGE_SPOT_RESTART_SECONDS", "1"))




class RestartFailed(Exception):
    """restart() raised: the job cannot train again (the checkpoints could not be restored, no new kernel)."""

    def __init__(self, error: BaseException):
        self.error = error
        super().__init__(f"{type(error).__name__}: {error}")


@dataclass
class Attempt:
    """How one attempt of training ended."""

    exceeded: str | None = None  # "MaxRuntimeExceeded" / "MaxWaitTimeExceeded": a limit stopped it
    interrupted: str | None = None  # the worker was taken away (why, in words): spot trains again
    stopped: bool = False  # StopTrainingJob, during the attempt or while waiting to restart


class ManagedSpot:
    """The managed-spot part of one training job's life (a no-op loop of one attempt without spot)."""

    def __init__(self, store, job_name: str, request, log: Callable[[str], None] | None = None,
                 started: float | None = None):
        self.store, self.job_name = store, job_name
        self.life = JobLifecycle(store, job_name, request.kind)
        self.enabled = request.managed_spot
        self.max_runtime = request.max_runtime
        self.max_wait = request.max_wait if self.enabled else None
        self.started = started if started is not None else time.time()
        self.log = log or (lambda line: None)
        self.trained = 0.0  # seconds of training over every attempt: MaxRuntimeInSeconds counts these
        self.attempts = 0  # attempts finished

    @property
    def training_message(self) -> str:
        """The `Training` status message of the attempt about to start."""
        return ("Training image download completed. Training in progress." if self.attempts == 0
                else "Training resumed from the last checkpoint")

    def limits(self) -> list[tuple[float, str, str]]:
        """(seconds from now, name, log line) for the attempt about to start."""
        limits = []
        if self.max_runtime:
            limits.append(max_runtime_limit(self.max_runtime, max(0.0, float(self.max_runtime) - self.trained)))
        if self.max_wait:
            limits.append((max(0.0, self.started + float(self.max_wait) - time.time()), "MaxWaitTimeExceeded",
                           f"MaxWaitTimeInSeconds ({self.max_wait}) exceeded: stopping the job"))
        return limits

    def run(self, attempt: Callable[[list], Attempt], restart: Callable[[], None],
            stop_requested: Callable[[], bool]) -> Attempt:
        """Train until an attempt ends other than interrupted under spot; returns how the last one ended."""
        while True:
            began = time.time()
            try:
                result = attempt(self.limits())
            finally:
                self.trained += time.time() - began
                self.attempts += 1
            if stop_requested():
                result.stopped = True
            if result.exceeded or result.stopped or not result.interrupted or not self.enabled:
                return result
            verdict = self._interrupt(result.interrupted, restart, stop_requested)
            if verdict == "Stopped":
                result.stopped = True
                return result
            if verdict:
                result.exceeded = verdict
                return result

    def _interrupt(self, why: str, restart: Callable[[], None], stop_requested: Callable[[], bool]) -> str | None:
        """Interrupted → wait for capacity → Restarting → restart(). Returns None (train again),
        "MaxWaitTimeExceeded" or "Stopped"."""
        self.life.interrupted(why)
        self.log(f"Training job interrupted: {why}; restarting")
        deadline = time.monotonic() + restart_seconds()
        while time.monotonic() < deadline:
            if stop_requested():
                return "Stopped"
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        if self.max_wait and time.time() - self.started >= float(self.max_wait):
            return "MaxWaitTimeExceeded"
        self.life.restarting()
        try:
            restart()
        except Exception as e:
            raise RestartFailed(e) from e
        return "Stopped" if stop_requested() else None

    def billable_seconds(self, now: float | None = None) -> float | None:
        """BillableTimeInSeconds: the time since the start less the time Interrupted or Restarting
        (None without spot: then it is the training time)."""
        if not self.enabled:
            return None
        now = time.time() if now is None else now
        lost = unbilled_seconds(self.store.transitions(self.job_name), now)
        return max(0.0, now - self.started - lost)

    def bill(self) -> None:
        """Record BillableTimeInSeconds now (managed spot only)."""
        billable = self.billable_seconds()
        if billable is not None:
            self.store.update_job(self.job_name, billable_seconds=billable)

    def end_exceeded(self, exceeded: str) -> int:
        """Set the job Stopped with the limit it ran past (MaxRuntimeExceeded or MaxWaitTimeExceeded)."""
        self.bill()
        return self.life.exceeded(exceeded, self.max_wait if exceeded == "MaxWaitTimeExceeded" else self.max_runtime)
