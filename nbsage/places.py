"""Places for the faces: which places there are, the options each declares, what each offers.

The faces (magics, CLI, console) ask here rather than importing `nbsage.backends`: they build their
`--backend` choices and place-option flags from `option_table()`, and `%sm_places` / a console's
place list from `describe()`. Declarations live on the Backend classes (nbsage.backends.options).
"""
from __future__ import annotations

from nbsage import backends
from nbsage.backends.options import PlaceOption


def names() -> list[str]:
    """The places' names (local, dask, kernel, ...)."""
    return backends.names()


def options(place: str) -> tuple[PlaceOption, ...]:
    """The options one place declares."""
    return backends.declared_options(place)


def option_table() -> list[tuple[PlaceOption, list[str]]]:
    """Every declared option once, with the places that declare it (in name order)."""
    table: dict[str, tuple[PlaceOption, list[str]]] = {}
    for place in names():
        for option in options(place):
            table.setdefault(option.name, (option, []))[1].append(place)
    return list(table.values())


def check_options(place: str | None, given: dict) -> None:
    """Refuse options the place does not declare (ValidationError naming the accepted ones)."""
    backends.check_options(place, given)


def describe(place: str, session, **options) -> dict:
    """What one place offers (where, CPUs, GPUs, memory), with its declared option names."""
    info = dict(backends.get(place, session, **options).describe_place())
    info.setdefault("options", [o.name for o in backends.declared_options(place)])
    return info
