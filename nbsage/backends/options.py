"""A place's options, declared once next to its Backend class.

Each place lists what it accepts (`KernelBackend.options = (PlaceOption("gateway", ...), ...)`); the
registry (`nbsage.backends.get`) refuses any other keyword naming the option and the accepted ones,
and the faces build their `--gateway`, `--scheduler`, ... flags and help from the same list, so a
new option is one line here and not five copies in Estimator, the magics and the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlaceOption:
    """One keyword a place accepts: `Estimator(..., backend=PLACE, NAME=value)`, `--NAME VALUE` on a face.

    `type` is what a face parses a command-line value into: str, int, or dict (repeatable KEY=VALUE
    pairs). The API may accept richer values (a Dask Client for `scheduler`); the place checks those.
    """

    name: str
    help: str
    type: type = str
    metavar: str = "VALUE"
    choices: tuple[str, ...] = ()
    flag: str = ""  # the command-line flag when `--<name with dashes>` would be ambiguous

    @property
    def option_string(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")
