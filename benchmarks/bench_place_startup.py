"""Start-up overhead per place for a small built-in job: XGBoost, 1 round, 100 rows x 4 features.

Each job is timed end to end through Estimator.fit (fit called -> Completed recorded, polling the
store every 10 ms) on:

- the local place;
- the kernel place through a Jupyter Kernel Gateway on 127.0.0.1 (started once, outside the timing,
  in a folder of its own as a remote one would be; each job starts and shuts down a kernel of its own,
  which is inside the timing);
- the dask place on a LocalCluster of 2 workers (started once, outside the timing), 1 and 2 instances;

against the runtime alone: `python -m nbsage.runtime train --root ROOT` run directly on a root staged
beforehand (interpreter start, imports, reading the CSV, one round, writing model.tar.gz).

Median of 5 runs after one warm-up run. The script-mode "empty job" numbers for the local and dask
places are bench_places.py's; this adds the kernel place and a real built-in algorithm.
"""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_section

REPEATS = 5
ROWS, FEATURES = 100, 4
HPS = {"num_round": 1, "objective": "binary:logistic", "max_depth": 2}


class Gateway:
    """A Jupyter Kernel Gateway on 127.0.0.1 in a folder of its own, with none of our NBSAGE_* settings."""

    def __init__(self, folder: Path):
        import requests
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NBSAGE_", "JUPYTER_"))}
        env["HOME"] = str(folder)
        self.log = open(folder / "gateway.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1",
             f"--KernelGatewayApp.port={port}"],
            cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.url}/api", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the kernel gateway did not start: {(folder / 'gateway.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def _cluster(workers: int):
    import logging
    from distributed import LocalCluster
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                        silence_logs=logging.ERROR)


def _timed_job(estimator, inputs) -> float:
    start = time.perf_counter()
    job = estimator.fit(inputs, wait=False)
    desc = job.wait_quietly(poll=0.01)
    elapsed = time.perf_counter() - start
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    return elapsed


def _runtime_direct(tmp: Path, inputs) -> float:
    """The runtime alone, on a root staged beforehand from the same request Estimator.fit would record."""
    from nbsage import Estimator
    from nbsage.backends.staging import prepare_root
    from nbsage.inputs import normalize_inputs
    from nbsage.runtime.layout import JobRoot
    name = f"direct-{time.monotonic_ns()}"
    request = Estimator("xgboost", HPS)._request(name, normalize_inputs(inputs))
    root = prepare_root(JobRoot(tmp / name), request)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    assert root.model_archive.exists(), "the runtime wrote no model.tar.gz"
    return elapsed


def _median(fn) -> float:
    fn()  # warm the page cache, imports (and, for the kernel place, the gateway) once
    return statistics.median(fn() for _ in range(REPEATS))


def startup(tmp: Path) -> list[tuple[str, float]]:
    from nbsage import Estimator, TrainingInput
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    data = tmp / "train"
    data.mkdir()
    half = ROWS // 2  # two files, so that 2 dask hosts each get one shard
    np.savetxt(data / "part-0.csv", np.column_stack([y, X])[:half], delimiter=",", fmt="%.6g")
    np.savetxt(data / "part-1.csv", np.column_stack([y, X])[half:], delimiter=",", fmt="%.6g")
    inputs = {"train": TrainingInput(str(data), content_type="text/csv")}
    sharded = {"train": TrainingInput(str(data), content_type="text/csv", distribution="ShardedByS3Key")}

    rows = [("runtime run directly (`python -m nbsage.runtime train --root`)",
             _median(lambda: _runtime_direct(tmp, inputs)))]
    rows.append(("local place", _median(lambda: _timed_job(Estimator("xgboost", HPS), inputs))))

    gateway_dir = tmp / "gateway"
    gateway_dir.mkdir()
    gateway = Gateway(gateway_dir)
    try:
        est = Estimator("xgboost", HPS, backend="kernel", gateway=gateway.url, kernel="python3")
        rows.append(("kernel place via a loopback Kernel Gateway (a kernel started per job)",
                     _median(lambda: _timed_job(est, inputs))))
    finally:
        gateway.stop()

    cluster = _cluster(2)
    try:
        for count in (1, 2):
            est = Estimator("xgboost", HPS, backend="dask", scheduler=cluster.scheduler_address,
                            instance_count=count)
            rows.append((f"dask place, existing LocalCluster (2 workers), instance_count={count}",
                         _median(lambda: _timed_job(est, sharded if count > 1 else inputs))))
    finally:
        cluster.close()
    return rows


def main() -> list[tuple[str, float]]:
    os.environ.setdefault("NBSAGE_HOME", tempfile.mkdtemp(prefix="nbsage-bench-place-startup-"))
    with tempfile.TemporaryDirectory() as tmp:
        rows = startup(Path(tmp))
    base = rows[0][1]
    lines = [f"XGBoost, {HPS['num_round']} round, {ROWS} rows x {FEATURES} features: time from `Estimator.fit` "
             "to Completed recorded, against the runtime run directly on a staged root. The kernel gateway "
             "and the LocalCluster are started once, outside the timing. "
             f"Median of {REPEATS} runs after one warm-up run.", "",
             "| Place | Seconds | Over the runtime alone |", "|---|---:|---:|"]
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds:.2f} | {seconds - base:+.2f} |")
    write_section("Place start-up overhead (XGBoost, 1 round, 100 rows)", "\n".join(lines))
    return rows


if __name__ == "__main__":
    for name, seconds in main():
        print(f"{seconds:7.2f} s  {name}")
