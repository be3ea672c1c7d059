"""Helpers shared by test modules (tests/ is on pytest's pythonpath: `from support import wait_for`)."""
from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 90, what: str = "condition", interval: float = 0.05):
    """Poll predicate until it returns something true (returned); AssertionError naming `what` after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
