"""Metric and progress log lines: nbsage's one documented format, and MetricDefinitions.

Built-in algorithms print, besides SageMaker's own log lines, one line per metric value:

    #metric validation:auc=0.981234 step=12

and one line per finished round or epoch:

    #progress step=12 total=100

Whatever runs the job scans stdout/stderr with `parse_line`; scripts' metrics are scraped with
the job's MetricDefinitions (first capture group is the value), exactly as SageMaker does.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass

METRIC_LINE = re.compile(r"^#metric (?P<name>\S+)=(?P<value>\S+)(?: step=(?P<step>-?\d+))?\s*$")
PROGRESS_LINE = re.compile(r"^#progress step=(?P<step>\d+) total=(?P<total>\d+)\s*$")


@dataclass
class MetricValue:
    name: str
    value: float
    step: int | None = None


def emit_metric(name: str, value: float, step: int | None = None, stream=None) -> None:
    line = f"#metric {name}={float(value):.6g}" + (f" step={step}" if step is not None else "")
    print(line, file=stream or sys.stdout, flush=True)


def emit_progress(step: int, total: int, stream=None) -> None:
    print(f"#progress step={int(step)} total={int(total)}", file=stream or sys.stdout, flush=True)


class MetricScraper:
    """Turns log lines into metric values: nbsage's format plus any MetricDefinitions."""

    def __init__(self, metric_definitions: list[dict] | None = None):
        self.definitions = []
        for d in metric_definitions or []:
            try:
                self.definitions.append((d["Name"], re.compile(d["Regex"])))
            except (KeyError, re.error) as e:
                raise ValueError(f"MetricDefinition {d!r} is not valid: {e}") from None
        self._counts: dict[str, int] = {}

    def scrape(self, line: str) -> list[MetricValue]:
        found = []
        m = METRIC_LINE.match(line)
        if m:
            try:
                found.append(MetricValue(m["name"], float(m["value"]),
                                         int(m["step"]) if m["step"] is not None else None))
            except ValueError:
                pass
            return found
        for name, regex in self.definitions:
            rm = regex.search(line)
            if rm and rm.groups():
                try:
                    value = float(rm.group(1))
                except (TypeError, ValueError):
                    continue
                step = self._counts.get(name, 0)
                self._counts[name] = step + 1
                found.append(MetricValue(name, value, step))
        return found


def parse_progress(line: str) -> tuple[int, int] | None:
    m = PROGRESS_LINE.match(line)
    return (int(m["step"]), int(m["total"])) if m else None
