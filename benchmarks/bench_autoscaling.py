"""Throughput and p99 latency of one endpoint variant at 1, 2 and 4 instances, for a CPU-bound model.

What automatic scaling buys on this machine: each instance is a model-server process behind the
endpoint's front, so more instances help only while there are free cores. The model does a few
milliseconds of pure-Python arithmetic per request (CPU-bound, GIL-held), clients are threads on
kept-alive loopback connections sending a fixed number of one-row CSV requests each. On the 2-core
machine this runs on, the curve flattens at 2 instances (and the clients and the front share those cores):
it is that machine's scaling curve, not a claim about larger ones.

    python benchmarks/bench_autoscaling.py [--requests 400] [--clients 8] [--counts 1,2,4]
"""
from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from common import write_section

MODEL = """
import os
import numpy as np

def model_fn(model_dir):
    return np.load(os.path.join(model_dir, "weights.npy"))

def predict_fn(data, model):
    total = 0.0
    for i in range(40000):  # a few ms of CPU per request, holding the GIL
        total += i * 1e-12
    return np.atleast_2d(np.asarray(data, dtype=float)) @ model + total
"""


def make_model(root: Path) -> Path:
    src = root / "src"
    (src / "code").mkdir(parents=True)
    np.save(src / "weights.npy", np.asarray([1.0, 2.0, 3.0]))
    (src / "code" / "inference.py").write_text(MODEL)
    archive = root / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(src.iterdir()):
            tar.add(entry, arcname=entry.name)
    return archive


def measure(session, name: str, clients: int, per_client: int) -> dict:
    from nbsage.serving.endpoints import invoke_endpoint
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        mine = []
        for _ in range(per_client):
            t = time.perf_counter()
            try:
                invoke_endpoint(session, name, b"1,2,3", "text/csv", "text/csv")
            except Exception as e:  # noqa: BLE001 - counted
                failures.append(str(e))
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    arr = np.asarray(latencies) * 1e3
    return {"rps": len(latencies) / wall, "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)), "failures": len(failures), "requests": len(latencies)}


def model_ms() -> float:
    """The model's own time per request, in process (the CPU one instance spends on each)."""
    scope: dict = {}
    exec(MODEL, scope)  # noqa: S102 - the benchmark's own model code, above
    weights, row = np.asarray([1.0, 2.0, 3.0]), np.asarray([[1.0, 2.0, 3.0]])
    runs = []
    for _ in range(50):
        t = time.perf_counter()
        scope["predict_fn"](row, weights)
        runs.append(time.perf_counter() - t)
    return float(np.median(runs)) * 1e3


def main(requests: int = 400, clients: int = 8, counts=(1, 2, 4)) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NBSAGE_HOME"] = str(Path(tmp) / "home")
        from nbsage.serving import endpoints
        from nbsage.serving.variants import set_desired_instance_count
        from nbsage.session import Session
        session = Session()
        endpoints.deploy(session, "bench-scaling", str(make_model(Path(tmp))))
        load1 = os.getloadavg()[0]
        own_ms = model_ms()
        rows = {}
        try:
            for n in counts:
                set_desired_instance_count(session, "bench-scaling", "AllTraffic", n, wait=True)
                measure(session, "bench-scaling", clients, 20)  # warm every instance's connections
                rows[n] = measure(session, "bench-scaling", clients, max(1, requests // clients))
        finally:
            endpoints.delete_endpoint(session, "bench-scaling")
        load2 = os.getloadavg()[0]
    base = rows[counts[0]]["rps"]
    lines = "\n".join(f"| {n} | {r['rps']:.0f} | {r['rps'] / base:.2f}x | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms "
                      f"| {r['failures']} |" for n, r in rows.items())
    body = f"""
One variant of a CPU-bound model ({own_ms:.1f} ms of pure-Python arithmetic per one-row CSV request in
process, so at most ~{1000 / own_ms:.0f} requests/s per busy core) behind the
endpoint's front, at 1, 2 and 4 instances (model-server processes), set with
`set_desired_instance_count`; {clients} client threads on kept-alive loopback connections send
{requests // clients} requests each per row (after 20 each to warm up). **This is a 2-core machine's
scaling curve**: the model servers, the front and the clients share two cores (load average
{load1:.1f} before, {load2:.1f} after{', loaded: other work ran' if load1 > 1.5 else ''}), so throughput can
rise to about 2 instances and no further; on a machine with more cores the curve goes on.

| instances | requests/s | vs 1 instance | p50 | p99 | failed requests |
|---|---:|---:|---:|---:|---:|
{lines}

Command: `python benchmarks/bench_autoscaling.py --requests {requests} --clients {clients}`.
"""
    write_section("Automatic scaling: throughput and p99 at 1, 2 and 4 instances", body)
    return {n: {k: round(v, 3) for k, v in r.items()} for n, r in rows.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--counts", default="1,2,4")
    args = parser.parse_args()
    print(main(args.requests, args.clients, tuple(int(c) for c in args.counts.split(","))))
