"""Job and endpoint names: the rule SageMaker applies, and unique names made the way the SDK makes them.

Below the API because the platform (endpoints, supervisors) checks names too.
"""
from __future__ import annotations

import itertools
import re
import secrets
import time

from nbsage.errors import ValidationError

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


# a counter from a random start: names made in one process never clash (3 random hex digits did
# within one millisecond: 50 names had a 1 in 4 chance), names from two processes rarely do
_NAME_SUFFIX = itertools.count(secrets.randbelow(16**5))


def unique_name(base: str) -> str:
    """`<base>-YYYY-MM-DD-HH-MM-SS-mmm` like the SDK, plus 5 hex digits against clashes (at most 62 characters)."""
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-")[:32] or "job"
    now = time.time()
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    return f"{base}-{stamp}-{next(_NAME_SUFFIX) % 16**5:05x}"


def check_name(name: str, what: str = "job") -> str:
    if not JOB_NAME.match(name):
        raise ValidationError(f"{what} name {name!r} is not valid: use 1-63 letters, digits and hyphens, "
                              "starting with a letter or digit")
    return name
