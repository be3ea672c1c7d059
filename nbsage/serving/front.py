"""The endpoint's front: one address for an endpoint of production variants, each of N model servers.

An endpoint built from an endpoint config (nbsage.serving.variants) is one front process at the
endpoint's address (host:port in its record) plus, per variant, `DesiredInstanceCount` model
servers (`python -m nbsage.runtime serve`), its children. The front:

- routes `POST /invocations` to a production variant drawn by weight, or to the one named by
  `X-Amzn-SageMaker-Target-Variant` (an unknown name is SageMaker's 400 ValidationError), and to the
  variant's least busy instance, over kept-alive pooled connections; the answer carries
  `X-Amzn-Invoked-Production-Variant`. `GET /ping` is 200 while a production variant serves;
- copies a sampled share of the traffic to the shadow variants *after* the caller's answer is
  ready, on a thread of its own through a bounded queue: a shadow never adds latency, never fails a
  request, its answers are never returned; production-vs-shadow pairs (a bounded sample) and counts
  go to `shadow.json` for the report (nbsage.serving.shadow);
- applies the endpoint's record, re-read on SIGHUP (what nbsage.serving.variants sends after a
  change) and once a second: new instances start and answer /ping before they get traffic, the
  routing table is swapped in one step, and the instances left out drain (their requests in flight
  finish) before they are stopped, so an update or a scaling change fails no request. An instance
  that dies is replaced after a backoff that grows with each crash in a row, logged and shown in
  describe_endpoint's VariantStatus (nbsage.serving.restarts); an update whose model fails to load, or
  whose new instance has not passed /ping by the startup deadline, is rolled back (the endpoint keeps
  serving its previous config, with the reason as FailureReason), and a create fails;
- writes `state.json` (what runs: weights, instance counts, per-variant status) when it changes and
  `metrics.json` (per-variant counters, in-flight requests, recent invocations per second, latency
  percentiles) twice a second, for describe_endpoint and autoscaling in other processes.

HTTP framing and the connection limits are the model server's own (nbsage.runtime.http1); the
instances and their connections are nbsage.serving.instances, the per-variant counters
nbsage.serving.variant_metrics.

Environment knobs: NBSAGE_SHADOW_QUEUE (copies waiting for the shadow, default 256; past it a copy is
dropped and counted), NBSAGE_SHADOW_SAMPLES (pairs kept for the report, default 1000), the
supervisor's NBSAGE_HEALTH_CHECK_INTERVAL_SECONDS / _TIMEOUT_SECONDS / NBSAGE_HEALTH_CHECK_FAILURES
for each instance, NBSAGE_STARTUP_TIMEOUT_SECONDS (a new instance's time to answer /ping, default 600,
unless its variant sets ContainerStartupHealthCheckTimeoutInSeconds),
NBSAGE_STOP_GRACE_SECONDS, and the model server's NBSAGE_MAX_CONNECTIONS and timeouts.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path

from nbsage.runtime.http1 import Connection, LimitedServer, busy_answer, error_answer
from nbsage.serving.instances import HOP_BY_HOP, HOST, Instance, Unreachable, env_number, request_head, stop_all
from nbsage.serving.restarts import STARTUP_HEALTH_CHECK_FIELD, backoff, crashes_after, ping_failure, restart_line
from nbsage.serving.variant_metrics import VariantMetrics

READY_NAME = "front.ready"
STATE_NAME = "state.json"
METRICS_NAME = "metrics.json"
SHADOW_NAME = "shadow.json"
TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
INVOKED_VARIANT = "X-Amzn-Invoked-Production-Variant"


def write_json(path: Path, value) -> None:
    """Replace path with value as JSON in one step (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


class Variant:
    """A production or shadow variant: its model, its instances and its metrics."""

    def __init__(self, spec: dict, shadow: bool, timeout: float):
        self.name = spec["VariantName"]
        self.shadow = shadow
        self.serve = spec["Serve"]
        self.signature = json.dumps(self.serve, sort_keys=True)
        self.weight = float(spec.get("DesiredWeight", spec.get("InitialVariantWeight", 1.0)))
        self.instances: list[Instance] = []
        self.metrics = VariantMetrics()
        self.timeout = timeout
        self.started_at = time.time()
        self.numbers = 0
        self.retired = False  # out of the routing table
        self.count = int(spec.get("DesiredInstanceCount", spec.get("InitialInstanceCount", 1)))
        self.startup_timeout = float(spec.get(STARTUP_HEALTH_CHECK_FIELD) or 0)  # 0: the front's own
        self.crashes = 0  # crashes in a row (nbsage.serving.restarts)
        self.retry_at = 0.0  # no new instance before (monotonic), after a crash
        self.problem: str | None = None  # the last crash, for describe_endpoint's VariantStatus

    def serving(self) -> list[Instance]:
        return [i for i in self.instances if i.state == "serving"]


# ---- shadow traffic ----------------------------------------------------------------------------------
class ShadowLog:
    """Counts and a bounded sample of production-vs-shadow answers, for the shadow report.

    `lock` also covers the shadow variant's own counters when a copy completes (`completed`) and the
    front's snapshot of every counter (Controller.write_metrics): metrics.json and shadow.json are cut at
    the same moment, so a copy shadow.json counts is never missing from metrics.json's invocations (a
    copy that finished between two separate snapshots once made the report one short)."""

    def __init__(self, limit: int):
        self.lock = threading.RLock()
        self.pairs: deque[dict] = deque(maxlen=limit)
        self.counts: dict[str, dict] = {}
        self.dirty = False

    def add(self, shadow: str, pair: dict, dropped: bool = False) -> None:
        with self.lock:
            counts = self.counts.setdefault(shadow, {"Sent": 0, "Errors": 0, "Dropped": 0})
            if dropped:
                counts["Dropped"] += 1
            else:
                counts["Sent"] += 1
                counts["Errors"] += pair["shadow_status"] >= 400
                self.pairs.append(pair)
            self.dirty = True

    def completed(self, shadow: "Variant", status: int, ms: float, pair: dict) -> None:
        """A copy the shadow answered (or failed): its variant's counters and the log, in one step."""
        with self.lock:
            shadow.metrics.finished(status, ms)
            self.add(shadow.name, pair)

    def snapshot(self) -> dict | None:
        with self.lock:
            if not self.dirty:
                return None
            self.dirty = False
            return {"Counts": {k: dict(v) for k, v in self.counts.items()}, "Pairs": list(self.pairs)}


def _text(data: bytes, limit: int = 4096) -> str | None:
    try:
        return data[:limit].decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---- the front server --------------------------------------------------------------------------------
class Table:
    """Where requests go: production variants with their cumulative weights, shadows with their share."""

    def __init__(self, production: list["Variant"], shadows: list["Variant"]):
        total, cumulative = 0.0, []
        for v in production:
            total += max(0.0, v.weight)
            cumulative.append(total)
        self.production, self.cumulative = production, cumulative
        # a shadow's weight over production's total is the share of requests it gets a copy of
        self.shadows = [(s, min(1.0, max(0.0, s.weight) / (total or 1.0))) for s in shadows]
        self.by_name = {(v.shadow, v.name): v for v in production + shadows}

    def pick(self, target: str | None) -> "Variant | None":
        """The variant named by TargetVariant (None when there is none), else one drawn by weight."""
        if target is not None:
            v = self.by_name.get((False, target))
            return v
        cumulative = self.cumulative
        if not cumulative:
            return None
        if cumulative[-1] <= 0:
            return self.production[0]
        x = random.random() * cumulative[-1]
        for v, edge in zip(self.production, cumulative):
            if x < edge:
                return v
        return self.production[-1]


_pending = threading.local()  # the shadow copies of the request this connection thread is answering


class FrontConnection(Connection):
    """A client connection to the front: shadow copies leave only after the caller's answer has."""

    def send(self, status: int, body: bytes = b"", content_type: str = "", extra: dict | None = None,
             close: bool = False) -> None:
        try:
            super().send(status, body, content_type, extra, close)
        finally:
            self.server.queue_shadow_copies()


class Front(LimitedServer):
    """The HTTP side: routes invocations over the current routing table."""

    def __init__(self, address, timeout: float):
        super().__init__(address, FrontConnection,
                         max_connections=int(env_number("NBSAGE_MAX_CONNECTIONS", 128)),
                         header_timeout=env_number("NBSAGE_HEADER_TIMEOUT_SECONDS", 10.0),
                         keep_alive_timeout=env_number("NBSAGE_KEEP_ALIVE_TIMEOUT_SECONDS", 60.0),
                         invocation_timeout=timeout + 5.0,
                         max_payload=int(env_number("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6) * 1024 * 1024))
        self.lock = threading.Lock()
        self.endpoint_name = ""
        self.table = Table([], [])
        self.shadow_queue: queue.Queue = queue.Queue(maxsize=int(env_number("NBSAGE_SHADOW_QUEUE", 256)))
        self.shadow_log = ShadowLog(int(env_number("NBSAGE_SHADOW_SAMPLES", 1000)))

    def set_table(self, production: list[Variant], shadows: list[Variant]) -> None:
        """Replace the routing table in one step; the variants left out are retired (a request that
        picked one a moment before goes to its successor of the same name, or is routed again)."""
        table = Table(production, shadows)
        with self.lock:
            old, self.table = self.table, table
            for v in old.production + [s for s, _ in old.shadows]:
                if table.by_name.get((v.shadow, v.name)) is not v:
                    v.retired = True

    def _acquire(self, variant: Variant, avoid: set) -> tuple[Variant, Instance | None]:
        """The variant's least busy serving instance, counted in flight (under the table's lock, so a
        drain that sees zero in flight knows no request can still pick it)."""
        with self.lock:
            if variant.retired:
                table = self.table
                successor = table.by_name.get((variant.shadow, variant.name))
                if successor is None and not variant.shadow:
                    successor = table.pick(None)
                if successor is None:
                    return variant, None
                variant = successor
            best = None
            for inst in variant.instances:
                if inst.state == "serving" and id(inst) not in avoid and (best is None or inst.in_flight < best.in_flight):
                    best = inst
            if best is not None:
                best.in_flight += 1
            return variant, best

    def _release(self, inst: Instance) -> None:
        with self.lock:
            inst.in_flight -= 1

    def forward(self, variant: Variant, body: bytes, headers: dict) -> tuple[Variant, tuple[int, bytes, str, dict]]:
        """One request to one of the variant's instances (an unreachable one is left for another): the
        variant that answered and its answer."""
        head = request_head(headers, len(body))
        avoid: set = set()
        for _ in range(3):
            variant, inst = self._acquire(variant, avoid)
            if inst is None:
                break
            try:
                return variant, inst.send(head, body)
            except Unreachable as exc:
                avoid.add(id(inst))
                print(f"nbsage endpoint front: variant {variant.name!r} instance {inst.number} is unreachable "
                      f"({exc}); trying another", file=sys.stderr, flush=True)
            finally:
                self._release(inst)
        return variant, busy_answer(f"variant {variant.name!r} of endpoint {self.endpoint_name!r} has no instance "
                                    "answering now; retry")

    def answer(self, method: str, path: str, body: bytes, headers: dict, deadline: float):
        if path == "/invocations":
            if method != "POST":
                return error_answer(405, "MethodNotAllowed", "use POST /invocations")
            return self.invoke(body, headers)
        if path == "/ping":
            if any(v.serving() for v in self.table.production):
                return 200, b'{"status": "Healthy"}\n', "application/json", None
            return error_answer(503, "ModelNotReady", "no production variant is serving yet")
        return error_answer(404, "NotFound", f"no route {method} {path}; an endpoint answers GET /ping and "
                                             "POST /invocations")

    def invoke(self, body: bytes, headers: dict):
        target = headers.get(TARGET_VARIANT)
        table = self.table
        variant = table.pick(target)
        if variant is None:
            if target is not None:
                names = ", ".join(repr(v.name) for v in table.production)
                return error_answer(400, "ValidationError",
                                    f"The variant {target!r} is not present in the endpoint config of endpoint "
                                    f"{self.endpoint_name!r}; its production variants are {names} "
                                    "(TargetVariant must name one of them)")
            return busy_answer(f"endpoint {self.endpoint_name!r} has no production variant serving; retry")
        upstream = {k: v for k, v in headers.items() if k not in HOP_BY_HOP and k != TARGET_VARIANT
                    and k not in ("host", "expect")}
        if "content-type" in headers:
            upstream["Content-Type"] = headers["content-type"]
        metrics = variant.metrics
        metrics.started()
        started = time.perf_counter()
        status = 500
        try:
            variant, (status, out, ctype, extra) = self.forward(variant, body, upstream)
        finally:
            ms = (time.perf_counter() - started) * 1000
            metrics.finished(status, ms)
        extra = dict(extra or {})
        extra[INVOKED_VARIANT] = variant.name
        shadows = table.shadows
        if shadows and target is None:
            jobs = [(shadow, body, upstream, variant.name, status, out, ctype, ms) for shadow, share in shadows
                    if share >= 1.0 or random.random() < share]
            if jobs:
                _pending.jobs = jobs  # queued once the caller's answer is sent (FrontConnection.send)
        return status, out, ctype, extra

    def queue_shadow_copies(self) -> None:
        jobs = getattr(_pending, "jobs", None)
        if not jobs:
            return
        _pending.jobs = None
        for job in jobs:
            try:
                self.shadow_queue.put_nowait(job)
            except queue.Full:
                self.shadow_log.add(job[0].name, {}, dropped=True)

    def shadow_worker(self, stopping: threading.Event) -> None:
        """Send the queued copies to their shadow variants; failures are counted, never raised."""
        while not stopping.is_set():
            try:
                job = self.shadow_queue.get(timeout=0.5)
            except queue.Empty:
                continue
            shadow, body, upstream, production, status, out, ctype, ms = job
            shadow.metrics.started()
            started = time.perf_counter()
            shadow_status, shadow_out, shadow_type = 500, b"", ""
            try:
                _, (shadow_status, shadow_out, shadow_type, _) = self.forward(shadow, body, upstream)
            except Exception as exc:  # noqa: BLE001 - a shadow's failure is only counted
                shadow_out = f"{type(exc).__name__}: {exc}".encode()
            shadow_ms = (time.perf_counter() - started) * 1000
            self.shadow_log.completed(shadow, shadow_status, shadow_ms, {
                "time": time.time(), "production_variant": production, "shadow_variant": shadow.name,
                "production_status": status, "shadow_status": shadow_status,
                "production_ms": round(ms, 3), "shadow_ms": round(shadow_ms, 3),
                "content_type": upstream.get("Content-Type"), "production_type": ctype, "shadow_type": shadow_type,
                "request": _text(body, 1024), "production": _text(out), "shadow": _text(shadow_out)})


# ---- applying the endpoint's record ------------------------------------------------------------------
class Controller:
    """Makes the running variants match the endpoint's record, and keeps them running."""

    def __init__(self, store, name: str, folder: Path):
        self.store, self.name, self.folder = store, name, Path(folder)
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.timeout = env_number("NBSAGE_INVOCATION_TIMEOUT_SECONDS",
                                   env_number("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60.0))
        self.startup_timeout = env_number("NBSAGE_STARTUP_TIMEOUT_SECONDS", 600.0)
        self.grace = env_number("NBSAGE_STOP_GRACE_SECONDS", 5.0)
        # the supervisor's health-check settings (nbsage.serving.supervisor), for each instance
        self.health_interval = env_number("NBSAGE_HEALTH_CHECK_INTERVAL_SECONDS", 5.0)
        self.ping_timeout = env_number("NBSAGE_HEALTH_CHECK_TIMEOUT_SECONDS", 2.0)
        self.max_ping_failures = int(env_number("NBSAGE_HEALTH_CHECK_FAILURES", 3))
        self.next_health_check = time.monotonic() + self.health_interval
        self.front = Front((HOST, 0), self.timeout)
        self.front.endpoint_name = name
        self.variants: dict[tuple[bool, str], Variant] = {}
        self.applied: dict | None = None  # the config now running
        self.status = "Creating"
        self.starting_problems: dict[str, str] = {}  # variant -> its last crash, while a create or update waits

    # ---- the store ------------------------------------------------------------------------------
    def _record(self) -> dict | None:
        from nbsage.errors import EndpointError
        try:
            return self.store.get_endpoint(self.name)
        except EndpointError:
            return None
        except Exception as e:  # noqa: BLE001 - a busy store is not a deletion
            print(f"nbsage endpoint front: cannot read the endpoint's record ({type(e).__name__}: {e})",
                  file=sys.stderr, flush=True)
            return {}

    def _set(self, **fields) -> None:
        record = self._record()
        if record and record["status"] in ("Creating", "InService", "Updating"):
            self.store.update_endpoint(self.name, **fields)

    # ---- instances ------------------------------------------------------------------------------
    def _new_instance(self, variant: Variant) -> Instance:
        variant.numbers += 1
        kind = "shadow" if variant.shadow else "variant"
        folder = self.folder / "instances" / f"{kind}-{variant.name}-{os.getpid()}-{id(variant):x}-{variant.numbers}"
        inst = Instance(variant, variant.numbers, folder)
        inst.start()
        return inst

    def _deadline(self, variant: Variant) -> float:
        """Seconds a new instance of the variant has to answer /ping during a create or an update."""
        return variant.startup_timeout or self.startup_timeout

    def _crashed(self, inst: Instance, served: float | None) -> float:
        """An instance's server ended (not a model that failed to load): out of its variant, the restart
        logged and scheduled; the seconds until another may start."""
        variant = inst.variant
        crashes = crashes_after(inst.crashes, served)
        delay = backoff(crashes)
        tail = inst.tail()
        print(restart_line(variant.name, variant.shadow, inst.number, inst.ended_how(), crashes, delay, tail),
              file=sys.stderr, flush=True)
        variant.crashes = crashes
        variant.retry_at = time.monotonic() + delay
        variant.problem = (f"instance {inst.number} ended ({inst.ended_how()}), crash {crashes} in a row; "
                           f"restarting in {delay:g} s" + (f"; its log ends with: {tail}" if tail else ""))
        with self.front.lock:
            inst.state = "failed"
            variant.instances = [i for i in variant.instances if i is not inst]
        inst.close_connections()
        shutil.rmtree(inst.folder, ignore_errors=True)
        if self.variants.get((variant.shadow, variant.name)) is not variant:  # a create or an update waits for it
            self.starting_problems[variant.name] = variant.problem
        self.write_state()
        return delay

    def _log_path(self) -> str:
        from nbsage.serving.endpoints import LOG_NAME
        return str(self.folder / LOG_NAME)

    def _wait_started(self, starting: list[Instance]) -> str | None:
        """Wait for new instances to answer /ping, starting another (after its backoff) in place of one
        whose server ends; the reason the operation fails, or None. A model that fails to load fails it at
        once (it would every time); an instance that has not answered by its variant's deadline fails it
        with SageMaker's reason. Instances started here are added to `starting`."""
        began = time.monotonic()
        poll = 0.02
        waiting = list(starting)
        restarts: list[tuple[float, Instance]] = []  # (when, the instance to replace)
        while waiting or restarts:
            if self.stopping.is_set():
                return "the endpoint is being deleted"
            for inst in list(waiting):
                started = inst.check_started(2.0)
                if started:
                    inst.state = "serving"
                    inst.serving_since = time.monotonic()
                    waiting.remove(inst)
                elif started is False:
                    if inst.load_failed:
                        return f"variant {inst.variant.name!r}: the model failed to load: {inst.failure}"
                    waiting.remove(inst)
                    restarts.append((time.monotonic() + self._crashed(inst, None), inst))
            now = time.monotonic()
            for item in list(restarts):
                when, old = item
                if now >= when and now <= began + self._deadline(old.variant):
                    restarts.remove(item)
                    inst = self._new_instance(old.variant)
                    inst.crashes = old.variant.crashes
                    old.variant.instances.append(inst)
                    starting.append(inst)
                    waiting.append(inst)
            for inst in waiting + [old for _, old in restarts]:
                if now > began + self._deadline(inst.variant):
                    return ping_failure(inst.variant.name, inst.variant.shadow, self._log_path())
            self.stopping.wait(poll)
            poll = min(poll * 1.5, 0.25)
        return None

    def _drain_and_stop(self, instances: list[Instance]) -> None:
        """Stop instances once the requests they are answering have finished (they get no new ones)."""
        deadline = time.monotonic() + self.timeout + 5.0
        for inst in instances:
            inst.state = "draining" if inst.state == "serving" else inst.state
        while any(i.in_flight for i in instances) and time.monotonic() < deadline:
            time.sleep(0.01)
        stop_all(instances, self.grace)

    # ---- one pass -------------------------------------------------------------------------------
    def apply(self, config: dict) -> None:
        """Make the running variants what `config` says, without failing a request."""
        wanted = [(False, v) for v in config.get("ProductionVariants") or []] + \
                 [(True, v) for v in config.get("ShadowProductionVariants") or []]
        plan: dict[tuple[bool, str], Variant] = {}
        starting: list[Instance] = []
        leaving: list[Instance] = []
        kept_extra: list[tuple[Variant, list[Instance]]] = []
        weights: dict[int, float] = {}  # new weights of kept variants, set once the change goes through
        counts: dict[int, int] = {}  # and their new instance counts
        for shadow, spec in wanted:
            key = (shadow, spec["VariantName"])
            current = self.variants.get(key)
            count = int(spec.get("DesiredInstanceCount", spec.get("InitialInstanceCount", 1)))
            if current is not None and current.signature == json.dumps(spec["Serve"], sort_keys=True):
                variant = current
                weights[id(variant)] = float(spec.get("DesiredWeight", spec.get("InitialVariantWeight", 1.0)))
                alive = [i for i in variant.instances if i.state in ("serving", "starting")]
                if len(alive) > count:
                    kept_extra.append((variant, alive[count:]))
                # instances missing after a crash come back through refill() (after their backoff)
                for _ in range(count - max(len(alive), variant.count)):
                    inst = self._new_instance(variant)
                    inst.crashes = variant.crashes
                    variant.instances.append(inst)
                    starting.append(inst)
                counts[id(variant)] = count
            else:
                variant = Variant(spec, shadow, self.timeout)
                variant.startup_timeout = variant.startup_timeout or float(config.get("StartupTimeout") or 0)
                for _ in range(count):
                    inst = self._new_instance(variant)
                    variant.instances.append(inst)
                    starting.append(inst)
                if current is not None:
                    leaving += current.instances
            plan[key] = variant
        for key, variant in self.variants.items():
            if key not in plan:
                leaving += variant.instances
        try:
            failure = self._wait_started(starting)
        finally:
            self.starting_problems = {}
        if failure:
            stop_all(starting, self.grace)
            for variant in plan.values():
                variant.instances = [i for i in variant.instances if i not in starting]
            raise RuntimeError(failure)
        # the switch: one routing table for the other, then the old instances drain
        for variant in plan.values():
            variant.weight = weights.get(id(variant), variant.weight)
            variant.count = counts.get(id(variant), variant.count)
        self.front.set_table([v for (s, _), v in plan.items() if not s], [v for (s, _), v in plan.items() if s])
        with self.front.lock:
            for variant, extra in kept_extra:
                variant.instances = [i for i in variant.instances if i not in extra]
                for inst in extra:
                    inst.state = "draining"
            for inst in leaving:
                if inst.state == "serving":
                    inst.state = "draining"
        self.variants = plan
        self.applied = config
        self.write_state()
        self._drain_and_stop(leaving + [i for _, extra in kept_extra for i in extra])

    def check_health(self) -> None:
        """GET /ping each serving instance every health-check interval (outside the routing lock); one that
        fails it `max_ping_failures` times in a row is killed, and replaced as a dead one is (a 503 with
        Retry-After, a server at its connection cap, is busy, not unhealthy)."""
        from nbsage.serving.supervisor import ping
        now = time.monotonic()
        if now < self.next_health_check:
            return
        self.next_health_check = now + self.health_interval
        for variant in list(self.variants.values()):
            for inst in list(variant.instances):
                if inst.state != "serving" or inst.proc.poll() is not None:
                    continue
                if ping(inst.port, self.ping_timeout, busy_is_healthy=True):
                    inst.ping_failures = 0
                    continue
                inst.ping_failures += 1
                if inst.ping_failures >= self.max_ping_failures:
                    print(f"nbsage endpoint front: variant {variant.name!r} instance {inst.number} failed GET /ping "
                          f"{inst.ping_failures} times in a row; replacing it", file=sys.stderr, flush=True)
                    inst.proc.kill()
                    inst.proc.wait()

    def replace_dead(self) -> bool:
        """Serving instances whose process ended are dropped, each with its restart logged and scheduled
        (refill() starts the new ones); True if any."""
        self.check_health()
        now = time.monotonic()
        dead = [i for v in list(self.variants.values()) for i in list(v.instances)
                if i.state == "serving" and i.proc.poll() is not None]
        for inst in dead:
            self._crashed(inst, now - (inst.serving_since or now))
        return bool(dead)

    def refill(self) -> bool:
        """Keep each variant at its instance count between updates: a starting instance serves once it
        answers /ping (or counts as a crash when it ends, or has not answered within the startup deadline);
        a missing one starts once its variant's backoff has passed. True if what serves changed."""
        changed = False
        for variant in list(self.variants.values()):
            for inst in [i for i in variant.instances if i.state == "starting"]:
                started = inst.check_started(self.ping_timeout)
                if started:
                    inst.serving_since = time.monotonic()
                    with self.front.lock:
                        inst.state = "serving"
                    if inst.crashes:
                        kind = "shadow variant" if variant.shadow else "variant"
                        print(f"nbsage endpoint front: {kind} {variant.name!r} instance {inst.number} serves "
                              f"(after {inst.crashes} crash{'es' if inst.crashes > 1 else ''} in a row)",
                              file=sys.stderr, flush=True)
                    changed = True
                elif started is False or time.monotonic() - inst.started_at > self._deadline(variant):
                    if started is None:
                        inst.proc.kill()
                        inst.proc.wait()
                    self._crashed(inst, None)
                    changed = True
            alive = [i for i in variant.instances if i.state in ("serving", "starting")]
            if len(alive) < variant.count and time.monotonic() >= variant.retry_at:
                for _ in range(variant.count - len(alive)):
                    try:
                        inst = self._new_instance(variant)
                    except OSError as exc:  # no process to be had now (memory, pids): the next try waits longer
                        variant.crashes += 1
                        variant.retry_at = time.monotonic() + backoff(variant.crashes)
                        variant.problem = f"a model server could not be started ({exc})"
                        print(f"nbsage endpoint front: variant {variant.name!r}: {variant.problem}", file=sys.stderr,
                              flush=True)
                        break
                    inst.crashes = variant.crashes
                    variant.instances.append(inst)
                changed = True
            if variant.problem and len(variant.serving()) >= variant.count:
                variant.problem = None
        return changed

    def _next_look(self) -> float:
        """Seconds until the next pass: 1, sooner while an instance starts or a restart falls due."""
        wait = 1.0
        for variant in list(self.variants.values()):
            if any(i.state == "starting" for i in variant.instances):
                wait = min(wait, 0.1)
            elif len([i for i in variant.instances if i.state == "serving"]) < variant.count:
                wait = min(wait, max(0.02, variant.retry_at - time.monotonic()))
        return wait

    def write_state(self) -> None:
        def one(v: Variant) -> dict:
            out = {"VariantName": v.name, "CurrentWeight": v.weight,
                   "CurrentInstanceCount": len(v.serving()), "Signature": v.signature}
            if v.problem:
                out["Problem"] = v.problem
            return out
        state = {"Status": self.status, "Starting": dict(self.starting_problems),
                 "ProductionVariants": [one(v) for (s, _), v in self.variants.items() if not s],
                 "ShadowProductionVariants": [one(v) for (s, _), v in self.variants.items() if s],
                 "EndpointConfigName": (self.applied or {}).get("EndpointConfigName"),
                 "Generation": (self.applied or {}).get("Generation")}
        write_json(self.folder / STATE_NAME, state)

    def write_metrics(self) -> None:
        """metrics.json, then shadow.json (when a copy was logged since), both from one cut of the counters
        (ShadowLog.lock): whoever reads shadow.json and then metrics.json finds every copy counted in both."""
        variants = {}
        log = self.front.shadow_log
        with log.lock:
            for (shadow, name), v in list(self.variants.items()):
                snap = v.metrics.snapshot(len(v.serving()))
                snap["Shadow"] = shadow
                variants[name] = snap
            shadow = log.snapshot()
        write_json(self.folder / METRICS_NAME, {"Timestamp": time.time(), "Variants": variants})
        if shadow is not None:
            write_json(self.folder / SHADOW_NAME, shadow)

    # ---- the loops ------------------------------------------------------------------------------
    def _reconcile(self) -> bool:
        """One look at the record; False once the endpoint is gone."""
        record = self._record()
        if record is None or (record and record["status"] == "Deleting"):
            return False
        if not record:
            return True
        config = record["config"]
        changed = self.replace_dead()
        if self.applied is not None:
            changed = self.refill() or changed
        if changed:
            self.write_state()
        if config == self.applied:
            if record["status"] == "Updating" and self.applied is not None:
                self.status = "InService"
                self._set(status="InService")
                self.write_state()
            return True
        first = self.applied is None
        previous = self.applied
        try:
            self.apply(config)
        except RuntimeError as exc:
            if first:
                self.status = "Failed"
                self._set(status="Failed", failure_reason=str(exc))
                return False
            # SageMaker rolls a failed update back: the endpoint keeps serving what it served
            reason = f"the update to endpoint config {config.get('EndpointConfigName')!r} failed and was rolled back: {exc}"
            print(f"nbsage endpoint front: {reason}", file=sys.stderr, flush=True)
            self.status = "InService"
            self._set(status="InService", config=previous, failure_reason=reason)
            self.applied = previous
            self.write_state()
            return True
        self.status = "InService"
        self.write_state()
        if first:
            self._set(status="InService", host=HOST, port=self.front.server_address[1], pid=os.getpid(),
                      failure_reason=None)
        else:
            latest = self._record()
            # InService only while nothing newer waits: a change written meanwhile is the next pass's
            if latest and latest["config"] == self.applied and latest["status"] == "Updating":
                self._set(status="InService", failure_reason=None)
        return True

    def run(self) -> int:
        threading.Thread(target=self.front.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                         name="nbsage-front").start()
        threading.Thread(target=self.front.shadow_worker, args=(self.stopping,), daemon=True,
                         name="nbsage-shadow").start()
        threading.Thread(target=self._metrics_loop, daemon=True, name="nbsage-front-metrics").start()
        try:  # the variants' scalable targets, if any (nbsage.serving.autoscaling); never the endpoint's end
            from nbsage.serving.autoscaling.fleet import start_autoscaling
            start_autoscaling(self)
        except Exception as exc:  # noqa: BLE001 - the endpoint serves on without automatic scaling
            print(f"nbsage endpoint front: automatic scaling is off ({type(exc).__name__}: {exc})",
                  file=sys.stderr, flush=True)
        write_json(self.folder / READY_NAME, self.front.server_address[1])
        code = 0
        try:
            while not self.stopping.is_set():
                try:
                    if not self._reconcile():
                        code = 1 if self.status == "Failed" else 0
                        break
                except Exception:  # noqa: BLE001 - a bug of ours must not take the serving variants down
                    print("nbsage endpoint front: unexpected error while applying the endpoint's record:",
                          file=sys.stderr)
                    traceback.print_exc(file=sys.stderr)
                    sys.stderr.flush()
                self.wake.wait(self._next_look())
                self.wake.clear()
        finally:
            self.front.shutdown()
            self.front.server_close()
            stop_all([i for v in self.variants.values() for i in v.instances], self.grace)
        return code

    def _metrics_loop(self) -> None:
        while not self.stopping.wait(0.5):
            try:
                self.write_metrics()
            except Exception as exc:  # noqa: BLE001 - metrics never stop the endpoint
                print(f"nbsage endpoint front: cannot write metrics ({type(exc).__name__}: {exc})",
                      file=sys.stderr, flush=True)

    def on_signal(self, signum, frame) -> None:
        if signum == signal.SIGHUP:
            self.wake.set()
        else:
            self.stopping.set()
            self.wake.set()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbsage.serving.front",
                                     description="Serve an endpoint's production and shadow variants at one address.")
    parser.add_argument("--db", required=True, help="the metadata store (NBSAGE_HOME/nbsage.db)")
    parser.add_argument("--name", required=True, help="the endpoint's name")
    parser.add_argument("--folder", required=True, help="the endpoint's folder")
    args = parser.parse_args(argv)
    from nbsage.store.metadata import MetadataStore
    controller = Controller(MetadataStore(Path(args.db)), args.name, Path(args.folder))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, controller.on_signal)
    return controller.run()


if __name__ == "__main__":
    sys.exit(main())
