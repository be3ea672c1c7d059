"""Places: where a job runs. One class per place, one registry; callers never branch on a name.

Adding a place means writing one module with a `Backend` subclass and naming it here.
"""
from __future__ import annotations

import importlib

from nbsage.backends.base import Backend
from nbsage.errors import ValidationError, did_you_mean

# name -> "module:Class"; modules are imported on first use (dask, jupyter_client stay unloaded)
_PLACES = {
    "local": "nbsage.backends.local:LocalBackend",
    "dask": "nbsage.backends.dask:DaskBackend",
    "kernel": "nbsage.backends.kernel:KernelBackend",
}


def names() -> list[str]:
    return sorted(_PLACES)


def get(name: str, session, **options) -> Backend:
    """An instance of the place called `name` for `session`."""
    key = (name or "local").lower()
    if key not in _PLACES:
        raise ValidationError(f"backend {name!r} is not a place nbsage knows; places are "
                              f"{', '.join(names())}{did_you_mean(key, _PLACES)}")
    module, cls = _PLACES[key].split(":")
    return getattr(importlib.import_module(module), cls)(session, **options)


def refreshed_record(session, job_name: str) -> dict:
    """A job's record, after its place has checked that an InProgress job's process still lives."""
    job = session.store.get_job(job_name)
    if job["status"] in ("InProgress", "Stopping"):
        get(job["backend"], session).refresh(job)
        job = session.store.get_job(job_name)
    return job
