"""The autoscaling controller's view of an endpoint, from inside its front process (nbsage.serving.front).

The front routes every request, so it already knows each variant's traffic; the controller runs as a thread
there (`start_autoscaling`), lives as long as the endpoint does and, like the endpoint, outlives the kernel
that created it. `FrontFleet` is what the controller asks:

- `instance_count(variant)`: the variant's instances serving now;
- `metrics(variant, seconds)`: per-instance values over the last `seconds`, by predefined metric type —
  SageMakerVariantInvocationsPerInstance from the front's per-second invocation counts (the window's last
  whole seconds, scaled to a minute, divided by the instances), and
  SageMakerVariantConcurrentRequestsPerModelHighResolution as the mean of the requests in flight, sampled
  every controller.SAMPLE_SECONDS, divided by the instances; None (no data) until the variant serves;
- `set_instance_count(variant, count)`: nbsage.serving.variants.set_desired_instance_count — the front starts
  instances (serving only once they answer /ping) or drains them (their requests in flight finish first),
  so no request fails; it returns once the front runs the new count.
"""
from __future__ import annotations

import threading
import time
from collections import deque

from nbsage.serving.autoscaling.policy import METRICS

IPI, CONCURRENCY = list(METRICS)


class FrontFleet:
    """The variants of one endpoint's front (`front` is nbsage.serving.front's Controller)."""

    def __init__(self, front, window: float = 600.0):
        self.front = front
        self.samples: dict[str, deque] = {}
        self.window = window
        self.lock = threading.Lock()

    def _variant(self, name: str):
        return self.front.variants.get((False, name))

    def sample(self) -> None:
        """Note each production variant's requests in flight (the controller calls it every SAMPLE_SECONDS)."""
        now = time.time()
        for (shadow, name), variant in list(self.front.variants.items()):
            if shadow:
                continue
            samples = self.samples.setdefault(name, deque())
            samples.append((now, variant.metrics.in_flight))
            while samples and samples[0][0] < now - self.window:
                samples.popleft()

    def instance_count(self, name: str) -> int:
        variant = self._variant(name)
        return len(variant.serving()) if variant is not None else 0

    def metrics(self, name: str, seconds: float) -> dict:
        variant = self._variant(name)
        count = self.instance_count(name)
        if variant is None or count == 0:
            return {}
        now = time.time()
        out: dict[str, float | None] = {IPI: None, CONCURRENCY: None}
        # the last whole seconds the window spans (at least one; the current second is still counting)
        last = int(now)
        first = last - max(1, round(seconds))
        if variant.started_at <= first:
            with variant.metrics.lock:
                calls = sum(c for s, c in variant.metrics.per_second if first <= s < last)
            out[IPI] = calls / count * 60.0 / (last - first)
        in_window = [n for t, n in self.samples.get(name, ()) if t >= now - seconds]
        if in_window:
            out[CONCURRENCY] = sum(in_window) / len(in_window) / count
        return out

    def set_instance_count(self, name: str, count: int) -> None:
        """nbsage.serving.variants.set_desired_instance_count, waiting until the front runs the new count."""
        from types import SimpleNamespace
        from nbsage.serving.variants import set_desired_instance_count
        front = self.front
        # what the serving functions read of a session: the store and where endpoints live
        session = SimpleNamespace(store=front.store, endpoints_dir=front.folder.parent, home=front.store.path.parent)
        set_desired_instance_count(session, front.name, name, count, wait=True,
                                   timeout=front.startup_timeout + front.timeout + 10.0)


def start_autoscaling(front) -> threading.Thread:
    """Run the autoscaling controller for `front`'s endpoint in a daemon thread of the front process (made
    in that thread, so the endpoint's start never waits on the store for it)."""
    def run() -> None:
        from nbsage.serving.autoscaling.controller import Controller
        controller = Controller(front.store, front.name, FrontFleet(front))
        controller.stopping = front.stopping
        controller.run()
    thread = threading.Thread(target=run, daemon=True, name=f"autoscaling-{front.name}")
    thread.start()
    return thread
