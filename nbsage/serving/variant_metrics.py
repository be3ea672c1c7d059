"""Per-variant traffic counters the front keeps on every request, in CloudWatch's names.

`VariantMetrics.snapshot` is what the front writes to metrics.json twice a second (read by
nbsage.serving.variants.variant_metrics and automatic scaling in other processes); the counters
themselves (`per_second`, `in_flight`, under `lock`) are read in the front's process too.
"""
from __future__ import annotations

import threading
import time
from collections import deque

METRIC_WINDOW = 60  # seconds of per-second invocation counts and latencies kept for metrics


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class VariantMetrics:
    """Counters for one variant, in CloudWatch's names; cheap to update on every request."""

    def __init__(self):
        self.lock = threading.Lock()
        self.invocations = self.errors_4xx = self.errors_5xx = 0
        self.in_flight = self.peak_in_flight = 0
        self.per_second: deque[list] = deque()  # [epoch second, invocations]
        self.latencies: deque[tuple[float, float]] = deque(maxlen=4096)  # (epoch, ms)

    def started(self) -> None:
        with self.lock:
            self.in_flight += 1
            if self.in_flight > self.peak_in_flight:
                self.peak_in_flight = self.in_flight

    def finished(self, status: int, ms: float) -> None:
        now = time.time()
        second = int(now)
        with self.lock:
            self.in_flight -= 1
            self.invocations += 1
            if 400 <= status < 500:
                self.errors_4xx += 1
            elif status >= 500:
                self.errors_5xx += 1
            if self.per_second and self.per_second[-1][0] == second:
                self.per_second[-1][1] += 1
            else:
                self.per_second.append([second, 1])
                while self.per_second and self.per_second[0][0] <= second - METRIC_WINDOW:
                    self.per_second.popleft()
            self.latencies.append((now, ms))

    def snapshot(self, instances: int) -> dict:
        now = time.time()
        with self.lock:
            recent = [list(x) for x in self.per_second if x[0] > now - METRIC_WINDOW]
            latencies = [ms for t, ms in self.latencies if t > now - METRIC_WINDOW]
            peak, self.peak_in_flight = self.peak_in_flight, self.in_flight
            out = {"Invocations": self.invocations, "Invocation4XXErrors": self.errors_4xx,
                   "Invocation5XXErrors": self.errors_5xx, "ConcurrentRequests": self.in_flight,
                   "PeakConcurrentRequests": peak}
        last_minute = sum(c for _, c in recent)
        per = max(1, instances)
        out.update({
            "CurrentInstanceCount": instances,
            "InvocationsLastMinute": last_minute,
            "InvocationsPerInstance": last_minute / per,  # per minute, as SageMakerVariantInvocationsPerInstance
            "ConcurrentRequestsPerInstance": out["ConcurrentRequests"] / per,
            "PeakConcurrentRequestsPerInstance": peak / per,
            "RecentInvocations": recent,  # [epoch second, count] for the last 60 s: any window is a sum
            "ModelLatencyP50": _percentile(latencies, 0.50), "ModelLatencyP90": _percentile(latencies, 0.90),
            "ModelLatencyP99": _percentile(latencies, 0.99),
        })
        return out
