"""Places: where a job runs. One class per place, one registry; callers never branch on a name.

Adding a place means writing one module with a `Backend` subclass, its `options` declared on the
class (nbsage.backends.options.PlaceOption), and naming it here. `get` refuses an option the place
does not declare, for every place, naming the accepted ones.
"""
from __future__ import annotations

import importlib

from nbsage.backends.base import Backend
from nbsage.backends.options import PlaceOption
from nbsage.errors import StoreError, ValidationError, did_you_mean

# name -> "module:Class"; modules are imported on first use (dask, jupyter_client stay unloaded:
# the place modules import them only inside their methods)
_PLACES = {
    "local": "nbsage.backends.local:LocalBackend",
    "dask": "nbsage.backends.dask:DaskBackend",
    "kernel": "nbsage.backends.kernel:KernelBackend",
}


def names() -> list[str]:
    return sorted(_PLACES)


def place_class(name: str | None) -> type[Backend]:
    """The Backend subclass of the place called `name` (default local)."""
    key = (name or "local").lower()
    if key not in _PLACES:
        raise ValidationError(f"backend {name!r} is not a place nbsage knows; places are "
                              f"{', '.join(names())}{did_you_mean(key, _PLACES)}")
    module, cls = _PLACES[key].split(":")
    return getattr(importlib.import_module(module), cls)


def declared_options(name: str) -> tuple[PlaceOption, ...]:
    """The options the place called `name` declares."""
    return tuple(place_class(name).options)


def check_options(name: str | None, given) -> None:
    """Refuse an option the place does not declare, naming it and the ones it accepts."""
    cls = place_class(name)
    accepted = [o.name for o in cls.options]
    unknown = [k for k in given if k not in accepted]
    if not unknown:
        return
    option = unknown[0]
    owners = [other for other in names() if other != cls.name and option in [o.name for o in declared_options(other)]]
    if owners:
        hint = f"; it is an option of the {' and '.join(owners)} place (backend={owners[0]!r})"
    else:
        hint = did_you_mean(option, accepted)
    takes = f"its options are {', '.join(accepted)}" if accepted else "it takes no options"
    raise ValidationError(f"{option!r} is not an option of the {cls.name} place; {takes}{hint}")


def get(name: str, session, **options) -> Backend:
    """An instance of the place called `name` for `session`, with its declared options."""
    check_options(name, options)
    return place_class(name)(session, **options)


def refreshed_record(session, job_name: str) -> dict:
    """A job's record, after its place has checked that an InProgress job's process still lives.

    Where the store cannot be written (read-only, full) the record is shown as it is: reading a
    job never fails for that; a process that can write (nbsage.backends.reconciler) records the end.
    """
    job = session.store.get_job(job_name)
    if job["status"] in ("InProgress", "Stopping") and not session.store.read_only:
        try:
            get(job["backend"], session).refresh(job)
        except StoreError:
            return job
        job = session.store.get_job(job_name)
    return job
