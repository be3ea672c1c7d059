"""One job's life as SageMaker tells it: its status, secondary status, messages and failure reasons.

Every place (local, multi-host, dask, kernel; training and processing jobs) and the API move a job
through the same statuses, and users and tests read the words: they are written here once.

    InProgress/Starting → Downloading → Training (or Processing) → Uploading → Completed
                            ↘ Interrupted → Restarting → Training   (managed spot)
    Stopping → Stopped | Stopped/MaxRuntimeExceeded | Stopped/MaxWaitTimeExceeded | Failed

A failure reason starts with SageMaker's category: `ClientError:` (the request or its data),
`AlgorithmError:` (the algorithm or the user's script) or `InternalServerError:` (nbsage itself).
A job kind (training, processing, and the transform and tuning jobs to come) names itself with
the words of `KIND_WORDS`; everything else is shared.
"""
from __future__ import annotations

import errno
import signal
import sys
import time
from dataclasses import dataclass

from nbsage.errors import StoreError


@dataclass(frozen=True)
class KindWords:
    """How the messages name a job of one kind."""

    noun: str  # "Training job"
    activity: str  # "training": "Stopped before training started"
    uploading: str  # the Uploading status message
    process: str  # the runtime in words, for "... was killed by SIGKILL"
    exiting: str = ""  # the same for "... exited with code 2", when it differs


KIND_WORDS = {
    "training": KindWords("Training job", "training", "Uploading generated training model", "the training process"),
    "processing": KindWords("Processing job", "processing", "Uploading generated output data",
                            "the processing job's runtime", "the processing job"),
    "transform": KindWords("Transform job", "transforming", "Writing the transformed data",
                           "the transform job's model servers", "the transform job"),
}


def words_for(kind: str) -> KindWords:
    return KIND_WORDS.get(kind) or KindWords(f"{kind.capitalize()} job", kind, "Uploading generated output data",
                                             f"the {kind} process")


# ---- failure reasons ----------------------------------------------------------------------------
def client_error(what) -> str:
    """The request or its data is at fault (a channel that cannot be read, a missing file)."""
    return f"ClientError: {what}"


def algorithm_error(what) -> str:
    """The algorithm or the user's script failed."""
    return f"AlgorithmError: {what}"


def internal_error(what) -> str:
    """nbsage itself failed (a supervisor that died, an upload that broke)."""
    return f"InternalServerError: {what}"


def described(error: BaseException) -> str:
    """'ValueError: bad value': an exception in words, for a failure reason."""
    return f"{type(error).__name__}: {error}"


def signal_name(rc: int) -> str:
    """-9 -> 'SIGKILL' (a runtime's exit status when a signal ended it)."""
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def store_failure(error: BaseException, store) -> str | None:
    """The reason of a job that NBSAGE_HOME could not hold (the store cannot be written, or the
    disk under the job roots is full), naming NBSAGE_HOME and the cause; None for other errors."""
    if isinstance(error, StoreError):
        return internal_error(error)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        from nbsage.store.metadata import store_error
        return internal_error(store_error(error, store.path))
    return None


def runtime_failure(rc: int, reported: str | None = None, process: str = "the training process",
                    exiting: str | None = None) -> str:
    """The failure reason of a runtime that exited with `rc` != 0: killed by a signal, the reason the
    runtime wrote itself (`reported`, /opt/ml/output/failure), or its exit code."""
    if rc < 0:
        return algorithm_error(f"{process} was killed by {signal_name(rc)}"
                               + (" (out of memory?)" if rc == -signal.SIGKILL else ""))
    return reported or algorithm_error(f"{exiting or process} exited with code {rc}")


class JobLifecycle:
    """The status transitions of one recorded job; each method is one of SageMaker's steps.

    A terminal job never moves again (the store refuses), so a late call is harmless. Methods
    that end the job return the supervisor's exit code, so a place can `return life.completed(...)`.

    In a supervisor process (`waits_for_store`, set by nbsage.backends.base.supervisor_main) nobody
    else will record how the job ended: a terminal status the store refuses (full, locked,
    read-only for now) is kept pending and written again, with backoff, until the store accepts it,
    rather than the supervisor dying and leaving "ended unexpectedly" behind.
    """

    waits_for_store = False  # True in a supervisor process
    RETRY_FIRST, RETRY_MAX = 0.2, 5.0  # seconds between tries of a pending terminal status

    def __init__(self, store, job_name: str, kind: str = "training"):
        self.store, self.job_name, self.kind = store, job_name, kind
        self.words = words_for(kind)

    def _set(self, status: str, secondary: str, message: str, **fields) -> bool:
        try:
            return self.store.set_status(self.job_name, status, secondary, message, **fields)
        except StoreError as e:
            if not (self.waits_for_store and status in ("Completed", "Failed", "Stopped")):
                raise
            return self._set_when_store_accepts(e, status, secondary, message, fields)

    def _set_when_store_accepts(self, error: StoreError, status, secondary, message, fields) -> bool:
        delay = self.RETRY_FIRST
        _say(f"The job ended {status} but the store refused it ({error}); trying again until it accepts it")
        while True:
            time.sleep(delay)  # a back-off between tries, not a synchronisation
            delay = min(delay * 2, self.RETRY_MAX)
            try:
                done = self.store.set_status(self.job_name, status, secondary, message, **fields)
            except StoreError:
                continue
            _say(f"The store accepted the job's end ({status})")
            return done

    # ---- InProgress ----------------------------------------------------------------------------
    def downloading(self, message: str = "Downloading input data") -> None:
        self._set("InProgress", "Downloading", message)

    def training(self, message: str = "Training image download completed. Training in progress.") -> None:
        self._set("InProgress", "Training", message)

    def processing(self) -> None:
        self._set("InProgress", "Processing", f"{self.words.noun} in progress")

    def transforming(self, message: str | None = None) -> None:
        """A transform job sends its records to the model."""
        self._set("InProgress", "Transforming", message or f"{self.words.noun} in progress")

    def uploading(self) -> None:
        self._set("InProgress", "Uploading", self.words.uploading)

    def interrupted(self, why: str) -> None:
        """Managed spot: the instance was taken away."""
        self._set("InProgress", "Interrupted", f"{self.words.noun} interrupted: {why}")

    def restarting(self) -> None:
        self._set("InProgress", "Restarting", f"Restarting {self.words.activity} from the last checkpoint")

    def stopping(self) -> None:
        """StopTrainingJob / StopProcessingJob was asked for."""
        self._set("Stopping", "Stopping", f"Stopping the {self.words.noun.lower()}")

    # ---- terminal --------------------------------------------------------------------------------
    def completed(self, model: str | None = None, output: str | None = None) -> int:
        fields = {"output_artifacts": output}
        if model is not None or self.kind == "training":
            fields["model_artifacts"] = model
        self._set("Completed", "Completed", f"{self.words.noun} completed", **fields)
        return 0

    def stopped(self, message: str | None = None, model: str | None = None, **fields) -> int:
        """Stopped; `model` is the model.tar.gz the stopped runtime left (nbsage.backends.staging.stopped_model)."""
        if model:
            fields["model_artifacts"] = model
        self._set("Stopped", "Stopped", message or f"{self.words.noun} stopped", **fields)
        return 0

    def stopped_before_start(self) -> int:
        return self.stopped(f"Stopped before {self.words.activity} started")

    def exceeded(self, limit: str, seconds, **fields) -> int:
        """Stopped with the limit it ran past: MaxRuntimeExceeded or MaxWaitTimeExceeded."""
        if limit == "MaxWaitTimeExceeded":
            message = f"{self.words.noun} exceeded MaxWaitTimeInSeconds provided ({seconds} s)"
            reason = f"MaxWaitTimeExceeded: the job did not finish within {seconds} s"
        else:
            message = f"{self.words.noun} runtime exceeded MaxRuntimeInSeconds provided ({seconds} s)"
            reason = f"MaxRuntimeExceeded: the job ran longer than {seconds} s"
        self._set("Stopped", limit, message, failure_reason=reason, **fields)
        return 0

    def failed(self, reason: str, message: str | None = None, **fields) -> int:
        """Failed with a full reason (already prefixed with its category)."""
        self._set("Failed", "Failed", message or f"{self.words.noun} failed", failure_reason=reason, **fields)
        return 0

    def failed_client(self, error, message: str | None = None, **fields) -> int:
        """The request or its data is at fault; the message is the error itself unless given.
        A full or unwritable NBSAGE_HOME is not the request's fault: its reason names NBSAGE_HOME."""
        if isinstance(error, BaseException) and (reason := store_failure(error, self.store)):
            return self.failed(reason, message or "NBSAGE_HOME could not hold the job", **fields)
        return self.failed(client_error(error), str(error) if message is None else message, **fields)

    def failed_runtime(self, rc: int, reported: str | None = None, message: str | None = None, **fields) -> int:
        """The runtime ended with exit status `rc` != 0 (see `runtime_failure`)."""
        return self.failed(runtime_failure(rc, reported, self.words.process, self.words.exiting), message, **fields)

    def failed_restoring_checkpoints(self, error) -> int:
        return self.failed(client_error(f"restoring checkpoints failed: {error}"), "Restoring checkpoints failed")

    def failed_restarting(self, error, where: str = "") -> int:
        return self.failed(internal_error(f"restarting the interrupted job{where} failed: {error}"), "Restarting failed")

    def failed_uploading(self, error, reason: str | None = None, **fields) -> int:
        """The artifacts could not be written (nbsage's side, unless `reason` says otherwise)."""
        return self.failed(reason or internal_error(f"uploading artifacts failed: {error}"), "Uploading failed",
                           **fields)

    def failed_internally(self, error: BaseException) -> int:
        """A supervisor's last resort: the job never stays InProgress."""
        reason = store_failure(error, self.store)
        self.failed(reason or internal_error(described(error)),
                    "NBSAGE_HOME could not hold the job" if reason else "Internal error")
        return 1

    def could_not_start(self, error: BaseException) -> None:
        """The place refused to launch the job after it was recorded."""
        self.failed(client_error(described(error)), "The job could not be started")

    def supervisor_gone(self, pid: int, what: str, log) -> None:
        """The process that looked after the job died without ending it (seen by `refresh`)."""
        self.failed(internal_error(f"the process that {what} (pid {pid}) ended unexpectedly; see {log}"),
                    "The job's supervisor process ended unexpectedly")


def _say(line: str) -> None:
    """A line to the supervisor's log, which may be on the full disk itself: never an error."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
