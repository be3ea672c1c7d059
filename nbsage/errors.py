"""One exception hierarchy, so a magic prints one line and a program catches one class.

Every message names what was wrong, where, and what is accepted.
"""
from __future__ import annotations

import difflib


class NBSageError(Exception):
    """Root of every error nbsage raises on purpose."""


class ValidationError(NBSageError, ValueError):
    """A request (hyperparameters, channels, a spec field) is not valid."""


class HyperparameterError(ValidationError):
    """A hyperparameter is unknown, missing, or outside its valid range.

    `hyperparameter` is the name of the field at fault (None for a rule that names several), so
    a form shows the error next to that field without reading the message.
    """

    def __init__(self, message: str, name: str | None = None):
        super().__init__(message)
        self.hyperparameter = name

    def __reduce__(self):  # keeps the name across processes (dask workers, kernels)
        return type(self), (*self.args[:1], self.hyperparameter)


class ChannelError(ValidationError):
    """A channel is missing, unknown, or has a content type the algorithm cannot read."""


class DataError(NBSageError, ValueError):
    """Input data is malformed; the message names the file and line or record."""


class UnsupportedContentType(NBSageError):
    """A request or channel uses a content type that is not accepted (HTTP 415)."""

    status = 415


class UnsupportedAccept(NBSageError):
    """A response type was asked for that the model server cannot produce (HTTP 406)."""

    status = 406


class PayloadTooLarge(NBSageError):
    """A request body is over the payload limit (HTTP 413)."""

    status = 413


class InvalidRequest(NBSageError, ValueError):
    """A request body cannot be parsed; the message names the problem (HTTP 400)."""

    status = 400


class JobError(NBSageError):
    """A job could not be created, found or controlled."""


class JobFailed(JobError):
    """A job ended Failed or Stopped while the caller waited for it to complete."""

    def __init__(self, job_name: str, status: str, reason: str | None, noun: str = "training job"):
        self.job_name, self.status, self.reason = job_name, status, reason
        super().__init__(f"{noun} {job_name!r} ended {status}: {reason or 'no reason recorded'}")


class EndpointError(NBSageError):
    """An endpoint could not be started, found, invoked or deleted."""


class ModelError(EndpointError):
    """The model server answered a request with an error status (SageMaker's ModelError)."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(f"model server answered {status}: {message}")


class StoreError(NBSageError):
    """NBSAGE_HOME's job store cannot be read or written; `cause` says why in one word
    ("full", "read-only", "locked", "unavailable") and `home` where."""

    def __init__(self, message: str, cause: str = "unavailable", home: str | None = None):
        super().__init__(message)
        self.cause, self.home = cause, home

    def __reduce__(self):
        return type(self), (*self.args[:1], self.cause, self.home)


class PlaceError(NBSageError):
    """A place (backend) cannot run the job as asked, e.g. a GPU job where there is no GPU."""


def did_you_mean(name: str, candidates) -> str:
    """Return "; did you mean 'x'?" for the closest candidate, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
