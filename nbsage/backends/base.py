"""The backend interface every place implements.

A job is recorded in the store (status InProgress/Starting) before `start` is called. A backend
stages the channels into a job root, starts the runtime, streams log lines and metrics into the
store as they happen, collects model.tar.gz/output.tar.gz into the artifact store, and sets the
final status — Completed, Failed (with the reason) or Stopped. It must never leave a job
InProgress after its process is gone: `refresh` checks that when a job is looked at.
"""
from __future__ import annotations


class Backend:
    """Base class of a place. Subclasses implement start, stop and refresh."""

    name = "base"
    options: tuple = ()  # the PlaceOptions this place accepts (nbsage.backends.options); checked by backends.get

    def __init__(self, session, **options):
        self.session = session
        self.option_values = options

    def check(self, request: dict) -> None:
        """Refuse, before anything is recorded, a request this place cannot run (raise PlaceError)."""

    def start(self, job_name: str) -> None:
        """Start the job recorded under `job_name`; return once it is launched."""
        raise NotImplementedError

    def stop(self, job_name: str) -> None:
        """Ask the job to stop (SIGTERM semantics); the job ends Stopped."""
        raise NotImplementedError

    def refresh(self, job: dict) -> None:
        """Called with a job's record while it is InProgress: mark it Failed if its process is gone."""

    def describe_place(self) -> dict:
        """What this place offers (CPU count, GPUs, memory), for %sm_places."""
        return {"name": self.name}


def fail_unexpectedly(job_name: str, error: BaseException) -> int:
    """A supervisor's last resort: print the traceback and mark the job Failed, never InProgress."""
    import traceback
    from nbsage.session import Session
    traceback.print_exc()
    Session().store.set_status(job_name, "Failed", "Failed", "Internal error",
                               failure_reason=f"InternalServerError: {type(error).__name__}: {error}")
    return 1
