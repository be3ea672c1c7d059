"""Load and fault: many clients on one endpoint while its model server is SIGKILLed mid-run.

50 keep-alive clients send one-row CSV requests to an XGBoost endpoint for 10 s; a third of the
way in, the model server is killed with SIGKILL and the endpoint's supervisor starts a new one
(Updating, then InService on a new port). Each client reconnects to the port the endpoint's record
names whenever its connection fails. What is counted: requests, answers by status, connection
errors (and whether each was against the killed server or before the endpoint was InService with
the new one), p50/p99 latency of the 2xx answers, and the recovery time: from the kill to the
first 2xx from the new server. `tests/reliability/test_load_and_fault.py` runs the same function
and asserts the designed behaviour; `make bench` writes the figures under "Reliability".
"""
from __future__ import annotations

import http.client
import io
import os
import signal
import tarfile
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLIENTS, SECONDS, KILL_AT = 50, 10.0, 1 / 3
ROW = b"0.1,0.2,0.3\n"
HEADERS = {"Content-Type": "text/csv", "Accept": "text/csv"}
FAST_CHECKS = {"NBSAGE_HEALTH_CHECK_INTERVAL_SECONDS": "0.2", "NBSAGE_HEALTH_CHECK_TIMEOUT_SECONDS": "1",
               "NBSAGE_HEALTH_CHECK_FAILURES": "2"}
CONNECTION_ERRORS = (ConnectionError, http.client.HTTPException, TimeoutError, OSError)


@dataclass
class Run:
    """What the clients saw."""

    statuses: Counter = field(default_factory=Counter)
    latencies: list = field(default_factory=list)   # seconds, 2xx answers
    errors: list = field(default_factory=list)      # (monotonic time, port tried, error name)
    killed_port: int | None = None
    killed_at: float | None = None
    recovered_at: float | None = None               # first 2xx from the new server
    back_in_service_at: float | None = None         # the record InService with a new server
    final_status: str | None = None
    answered_after: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)

    def figures(self) -> dict:
        lat = np.asarray(self.latencies) * 1000 if self.latencies else np.zeros(1)
        return {"clients": CLIENTS, "requests": self.requests, "statuses": dict(self.statuses),
                "connection_errors": len(self.errors),
                "error_window_s": round(max(e[0] for e in self.errors) - min(e[0] for e in self.errors), 2)
                if self.errors else 0.0,
                "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
                "recovery_s": None if self.recovered_at is None else round(self.recovered_at - self.killed_at, 2),
                "final_status": self.final_status, "answered_after": self.answered_after}


def model_archive(folder: Path) -> Path:
    """A 3-feature XGBoost model.tar.gz (trained here in a few milliseconds)."""
    import xgboost as xgb
    rng = np.random.default_rng(0)
    x = rng.random((64, 3))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2},
                        xgb.DMatrix(x, label=(x[:, 0] > 0.5).astype(float)), num_boost_round=3)
    data = bytes(booster.save_raw("json"))
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


def _server_pid(session, name: str) -> int | None:
    from nbsage.serving import endpoints
    try:
        return int((endpoints.endpoint_dir(session, name) / "server.pid").read_text())
    except (OSError, ValueError):
        return None


def _client(session, name: str, run: Run, stop: threading.Event) -> None:
    conn, port = None, None
    while not stop.is_set():
        if conn is None:
            port = session.store.get_endpoint(name)["port"]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        try:
            conn.request("POST", "/invocations", body=ROW, headers=HEADERS)
            response = conn.getresponse()
            response.read()
        except CONNECTION_ERRORS as exc:
            with run.lock:
                run.errors.append((time.monotonic(), port, type(exc).__name__))
            conn.close()
            conn = None
            stop.wait(0.05)  # pace reconnects while the new server starts
            continue
        with run.lock:
            run.statuses[response.status] += 1
            if 200 <= response.status < 300:
                run.latencies.append(time.perf_counter() - started)
                if run.killed_at is not None and run.recovered_at is None and port != run.killed_port:
                    run.recovered_at = time.monotonic()
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = None


def _watch(session, name: str, old_pid: int, run: Run, stop: threading.Event) -> None:
    """Note when the record is InService again with a new server."""
    while not stop.is_set() and run.back_in_service_at is None:
        record = session.store.get_endpoint(name)
        pid = _server_pid(session, name)
        if record["status"] == "InService" and pid not in (None, old_pid):
            run.back_in_service_at = time.monotonic()
        stop.wait(0.02)


def load_and_fault(home: Path, clients: int = CLIENTS, seconds: float = SECONDS, kill_at: float = KILL_AT) -> Run:
    """Deploy, load with `clients` for `seconds`, SIGKILL the server at `kill_at` of the run; the Run seen."""
    from nbsage.serving import endpoints
    from nbsage.session import Session
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    session = Session(home=home / "home")
    name = "load-and-fault"
    endpoints.deploy(session, name, str(model_archive(home)), algorithm="xgboost", environment=FAST_CHECKS)
    run, stop = Run(), threading.Event()
    try:
        threads = [threading.Thread(target=_client, args=(session, name, run, stop), daemon=True)
                   for _ in range(clients)]
        for t in threads:
            t.start()
        stop.wait(seconds * kill_at)
        old_pid = _server_pid(session, name)
        run.killed_port = session.store.get_endpoint(name)["port"]
        run.killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        watcher = threading.Thread(target=_watch, args=(session, name, old_pid, run, stop), daemon=True)
        watcher.start()
        stop.wait(seconds * (1 - kill_at))
        stop.set()
        for t in threads + [watcher]:
            t.join(timeout=60)
        endpoints.wait_for_endpoint(session, name, timeout=60)
        run.final_status = session.store.get_endpoint(name)["status"]
        body, _, _ = endpoints.invoke_endpoint(session, name, ROW, "text/csv", None)
        run.answered_after = bool(body.strip())
    finally:
        stop.set()
        endpoints.delete_endpoint(session, name)
    return run


def main() -> dict:
    from common import write_section
    with tempfile.TemporaryDirectory() as tmp:
        figures = load_and_fault(Path(tmp)).figures()
    statuses = ", ".join(f"{n} × {s}" for s, n in sorted(figures["statuses"].items()))
    write_section("Reliability", f"""
{figures['clients']} keep-alive clients send one-row CSV requests to an XGBoost endpoint for {SECONDS:g} s; a
third of the way in the model server is killed with SIGKILL and the endpoint's supervisor replaces it
(`benchmarks/bench_reliability.py`; `tests/reliability/test_load_and_fault.py` asserts the same run).

| requests | answers | connection errors (reconnect attempts, every 50 ms per client) | their window | p50 | p99 | recovery (kill → first 2xx from the new server) | after |
|---:|---|---:|---:|---:|---:|---:|---|
| {figures['requests']:,} | {statuses} | {figures['connection_errors']} | {figures['error_window_s']} s | {figures['p50_ms']} ms | {figures['p99_ms']} ms | {figures['recovery_s']} s | {figures['final_status']}, answering |

Only 2xx and the designed 503 (server busy, with Retry-After) are answered; connection errors
happen only against the killed server or before the endpoint is InService again.
""")
    return figures


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    print(main())
