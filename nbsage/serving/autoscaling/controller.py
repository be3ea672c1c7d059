"""The autoscaling controller: every evaluation period, measure each scalable variant, decide, scale, record.

It runs off the request path, beside the endpoint's processes and as long-lived as they are, so scaling
goes on after the notebook kernel that asked for it has gone. Each period it reads the variant's
per-instance metrics over that period from the endpoint (the `fleet`: what the variant's instances did and
how many there are), applies the target-tracking rule (`decision.decide`), asks the fleet for the new count
(which starts instances, or drains them, without failing a request) and records a scaling activity: time,
from -> to, cause, and how it ended.

The evaluation period is 60 s by default, SageMaker's one-minute metrics; a target registered with
`EvaluationPeriod` (seconds; the short API's `evaluation_period`) or NBSAGE_AUTOSCALING_EVALUATION_SECONDS
makes it shorter, for notebooks and tests. Per-minute metrics (InvocationsPerInstance) are the period's
count scaled to a minute.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

from nbsage.serving.autoscaling.decision import Decision, decide
from nbsage.serving.autoscaling.records import ScalingRecords

DEFAULT_EVALUATION_PERIOD = 60.0  # seconds: SageMaker's CloudWatch metrics are per minute
SAMPLE_SECONDS = 0.05  # how often the fleet samples requests in flight


def evaluation_period(options: dict | None = None) -> float:
    """The target's EvaluationPeriod, else NBSAGE_AUTOSCALING_EVALUATION_SECONDS, else 60 s."""
    for value in ((options or {}).get("EvaluationPeriod"), os.environ.get("NBSAGE_AUTOSCALING_EVALUATION_SECONDS")):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            return seconds
    return DEFAULT_EVALUATION_PERIOD


@dataclass
class _History:
    last_scale_out: float | None = None
    last_scale_in: float | None = None
    next_evaluation: float = 0.0
    seen: set = field(default_factory=set)


class Controller:
    """Scales one endpoint's registered variants through `fleet`.

    `fleet` answers three things about a variant: `instance_count(variant)`, `metrics(variant, seconds)` ->
    {PredefinedMetricType: value per instance or None} over the last `seconds`, and `set_instance_count(variant,
    count)` (returns once the new count serves, raises to say why it could not).
    """

    def __init__(self, store, endpoint: str, fleet, clock=time.time):
        self.records = ScalingRecords(store)
        self.endpoint, self.fleet, self.clock = endpoint, fleet, clock
        self.history: dict[str, _History] = {}
        self.stopping = threading.Event()

    def _history(self, variant: str) -> _History:
        if variant not in self.history:  # a restarted controller remembers the recorded activities' times
            h = self.history[variant] = _History()
            from datetime import datetime
            for a in reversed(self.records.activities(self.endpoint, variant, limit=20)):
                when = datetime.fromisoformat(a["StartTime"]).timestamp()
                if a["Direction"] == "out":
                    h.last_scale_out = when
                else:
                    h.last_scale_in = when
        return self.history[variant]

    def step(self) -> list[Decision]:
        """One look at every registered variant whose evaluation is due; the decisions carried out."""
        done = []
        for target, row in self.records.targets(self.endpoint):
            variant = target.variant_name
            h = self._history(variant)
            now = self.clock()
            if now < h.next_evaluation:
                continue
            period = evaluation_period(row["options"])
            h.next_evaluation = now + period
            policies = [p for p, _ in self.records.policies(self.endpoint, variant)]
            current = self.fleet.instance_count(variant)
            metrics = self.fleet.metrics(variant, period) if policies else {}
            decision = decide(target, policies, current, metrics, now, h.last_scale_out, h.last_scale_in)
            if decision is None:
                continue
            activity = self.records.start_activity(self.endpoint, variant, decision.current, decision.desired,
                                                   decision.cause)
            try:
                self.fleet.set_instance_count(variant, decision.desired)
            except Exception as e:  # noqa: BLE001 - recorded on the activity; the next period tries again
                self.records.end_activity(activity, "Failed", f"{type(e).__name__}: {e}")
                print(f"nbsage autoscaling: {self.endpoint}/{variant}: could not scale to {decision.desired}: {e}",
                      file=sys.stderr, flush=True)
                continue
            self.records.end_activity(activity, "Successful",
                                      f"Successfully set desired instance count to {decision.desired}.")
            if decision.direction == "out":
                h.last_scale_out = self.clock()
            else:
                h.last_scale_in = self.clock()
            h.next_evaluation = self.clock() + period  # the next measurement sees the new count only
            done.append(decision)
        return done

    def run(self, still_wanted=lambda: True) -> None:
        """Sample (when the fleet samples) every SAMPLE_SECONDS and step twice a second, until stopped or
        `still_wanted()` says the endpoint is gone."""
        sample = getattr(self.fleet, "sample", None)
        next_step = 0.0
        while not self.stopping.is_set():
            if sample is not None:
                sample()
            if time.monotonic() >= next_step:
                next_step = time.monotonic() + 0.5
                try:
                    if not still_wanted():
                        return
                    self.step()
                except Exception as e:  # noqa: BLE001 - a busy store or a restarting instance: try again later
                    print(f"nbsage autoscaling: {self.endpoint}: {type(e).__name__}: {e}", file=sys.stderr,
                          flush=True)
            self.stopping.wait(SAMPLE_SECONDS)
