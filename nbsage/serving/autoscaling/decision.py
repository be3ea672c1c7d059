"""The target-tracking rule, as a pure function of what was measured and when the variant last scaled.

Application Auto Scaling "scales out proportionally to the metric as fast as it can, but scales in more
gradually". Locally that is:

- each policy with a measurement asks for `ceil(current × metric / target)` instances (the count at which the
  per-instance metric would sit at its target); the largest ask wins, so scale-in happens only when every
  policy agrees; a policy with DisableScaleIn never asks for fewer instances than there are;
- the ask is clamped to [MinCapacity, MaxCapacity] (a count outside new bounds moves at once, cooldowns or not);
- scale-out waits for ScaleOutCooldown since the last scale-out;
- scale-in waits for ScaleInCooldown since the last scaling activity of either kind, so capacity just added is
  never taken away while the load that asked for it may still be arriving (a local, documented simplification
  of the CloudWatch alarms' 3 and 15 datapoint rules);
- no measurement (the metric is missing, e.g. the variant is not serving yet) means no scaling, as an alarm in
  INSUFFICIENT_DATA does nothing. Zero traffic is a measurement (0), and scales in to MinCapacity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nbsage.serving.autoscaling.policy import ScalableTarget, TargetTrackingPolicy


@dataclass(frozen=True)
class Decision:
    """Scale the variant from `current` to `desired` instances because of `cause`."""

    current: int
    desired: int
    cause: str

    @property
    def direction(self) -> str:
        return "out" if self.desired > self.current else "in"


def capacity_for(current: int, metric_value: float, target_value: float) -> int:
    """The instance count at which `metric_value` (measured per instance at `current` instances) would be
    `target_value`: ceil(current × metric / target), never below 0."""
    if metric_value <= 0:
        return 0
    # a hair under a whole number is that number: 2 instances at exactly twice the target ask for 4, not 5
    return max(0, math.ceil(current * metric_value / target_value - 1e-9))


def decide(target: ScalableTarget, policies: list[TargetTrackingPolicy], current: int,
           metrics: dict[str, float | None], now: float, last_scale_out: float | None = None,
           last_scale_in: float | None = None) -> Decision | None:
    """The scaling the variant needs now, or None.

    `metrics` maps a predefined metric type to its value per instance over the last evaluation period
    (None or absent: no data). Times are seconds on one clock (`now`, the last scale-out's and scale-in's).
    """
    low, high = target.min_capacity, target.max_capacity
    if current < low or current > high:
        desired = min(max(current, low), high)
        return Decision(current, desired, f"the instance count {current} is outside the scalable target's "
                                          f"bounds [{low}, {high}] (MinCapacity, MaxCapacity)")
    asks = []
    for policy in policies:
        value = metrics.get(policy.metric)
        if value is None:
            continue
        want = capacity_for(current, value, policy.target_value)
        if policy.disable_scale_in:
            want = max(want, current)
        asks.append((want, policy, value))
    if not asks:
        return None
    want, policy, value = max(asks, key=lambda a: a[0])
    desired = min(max(want, low), high)
    if desired == current:
        return None
    why = (f"policy {policy.policy_name!r}: {policy.metric} was {value:.4g} per instance at {current} "
           f"instance{'s' if current != 1 else ''}, target {policy.target_value:g}")
    if desired > current:
        if last_scale_out is not None and now - last_scale_out < policy.scale_out_cooldown:
            return None
        clamp = " (MaxCapacity)" if want > high else ""
        return Decision(current, desired, f"{why}: scale out to {desired}{clamp}")
    cooldown = max(p.scale_in_cooldown for _, p, _ in asks)
    last = max((t for t in (last_scale_out, last_scale_in) if t is not None), default=None)
    if last is not None and now - last < cooldown:
        return None
    clamp = " (MinCapacity)" if want < low else ""
    return Decision(current, desired, f"{why}: scale in to {desired}{clamp}")
