"""The log lines SageMaker's built-in algorithms print, for the algorithms that print them the same way.

`[12/03/2026 08:29:01 INFO 140234] message`, and the quality lines users and notebooks grep for:
`#quality_metric: host=algo-1, epoch=3, train loss <loss>=0.412`.
"""
from __future__ import annotations

import json
import threading
import time


class SageMakerLog:
    """A job's SageMaker-style log lines, written through the training environment's `log`."""

    def __init__(self, env):
        self.env = env
        self.host = env.current_host

    def info(self, message: str) -> None:
        stamp = time.strftime("%m/%d/%Y %H:%M:%S")
        self.env.log(f"[{stamp} INFO {threading.get_ident()}] {message}")

    def quality(self, what: str, kind: str, value: float, epoch: int | None = None) -> None:
        """`#quality_metric: host=..., [epoch=N, ]<what> <kind>=<value>`."""
        where = f"epoch={epoch}, " if epoch is not None else ""
        self.info(f"#quality_metric: host={self.host}, {where}{what} <{kind}>={float(value)!r}")

    def total_time(self, algorithm: str, started: float) -> str:
        """The `#metrics {...}` line of the job's total time, as SageMaker's algorithms print it at the end."""
        ended = time.time()
        ms = (ended - started) * 1000.0
        return "#metrics " + json.dumps({
            "StartTime": started, "EndTime": ended,
            "Dimensions": {"Algorithm": algorithm, "Host": self.host, "Operation": "training"},
            "Metrics": {"totaltime": {"sum": ms, "count": 1, "min": ms, "max": ms}}})
