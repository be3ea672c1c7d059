"""Endpoint latency and throughput against calling the loaded model in-process.

A breast-cancer XGBoost model is deployed to an nbsage endpoint (a real HTTP server on
127.0.0.1). Single-row requests from one keep-alive client give p50/p99 latency; several
concurrent clients give requests per second. The in-process baseline calls the same handler the
server uses (parse CSV, inplace_predict, format) with no HTTP in between. Under abuse: the time
to refuse a 6 MB body of the wrong width, and the latency of a one-row request sent while two of
them are being answered.
"""
from __future__ import annotations

import http.client
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from common import write_section

REQUESTS, CLIENTS, PER_CLIENT = 2000, 4, 500


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def send(host: str, port: int, body: bytes, headers: dict, n: int, out: list) -> None:
    """One keep-alive client: n POST /invocations of body; each request's seconds appended to out.

    A non-200 answer stops the run: an error answered fast would otherwise pass for a fast server.
    """
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        for _ in range(n):
            t = time.perf_counter()
            conn.request("POST", "/invocations", body=body, headers=headers)
            resp = conn.getresponse()
            answer = resp.read()
            out.append(time.perf_counter() - t)
            if resp.status != 200:
                raise RuntimeError(f"{host}:{port} answered {resp.status}: {answer[:300]!r}")
    finally:
        conn.close()


def requests_per_second(host: str, port: int, body: bytes, headers: dict, clients: int, per_client: int) -> float:
    """Requests/s of `clients` concurrent keep-alive clients sending per_client requests each."""
    done: list[float] = []
    errors: list[BaseException] = []

    def run():
        try:
            send(host, port, body, headers, per_client, done)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return len(done) / elapsed


def main() -> dict:
    import os
    from sklearn.datasets import load_breast_cancer
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NBSAGE_HOME"] = str(Path(tmp) / "home")
        import nbsage
        X, y = load_breast_cancer(return_X_y=True)
        est = nbsage.Estimator("xgboost", hyperparameters={"objective": "binary:logistic", "num_round": 50})
        job = est.fit({"train": (X, y)}, wait=False)
        desc = job.wait_quietly()
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        predictor = est.deploy()
        url = predictor.describe()["Url"] if hasattr(predictor, "describe") else None
        host, port = url.split("//")[1].split(":")
        port = int(port.strip("/"))
        row = ",".join(f"{v:.6g}" for v in X[0]).encode()
        headers = {"Content-Type": "text/csv", "Accept": "text/csv"}

        send(host, port, row, headers, 200, [])  # warm-up
        latencies: list[float] = []
        send(host, port, row, headers, REQUESTS, latencies)
        rps = requests_per_second(host, port, row, headers, CLIENTS, PER_CLIENT)

        # under abuse: a 6 MB body of one-value rows (wrong width) and a one-row request behind two of them
        bad = b"1\n" * 3_000_000

        def post(body, out=None):
            conn = http.client.HTTPConnection(host, port, timeout=300)
            t = time.perf_counter()
            conn.request("POST", "/invocations", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if out is not None:
                out.append(time.perf_counter() - t)
            return resp.status

        rejections: list[float] = []
        assert post(bad, rejections) == 400
        behind: list[float] = []
        bad_clients = [threading.Thread(target=post, args=(bad,)) for _ in range(2)]
        for t in bad_clients:
            t.start()
        time.sleep(0.5)  # the bad bodies are sent and being answered
        assert post(row, behind) == 200
        for t in bad_clients:
            t.join()

        # in-process: the same handler the server calls, no HTTP
        import tarfile
        from nbsage import algorithms
        model_dir = Path(tmp) / "model"
        with tarfile.open(est.model_data) as tar:
            tar.extractall(model_dir, filter="data")
        handler = algorithms.get("xgboost").load(str(model_dir))
        for _ in range(200):
            handler.invoke(row, "text/csv", "text/csv")
        inproc = []
        for _ in range(REQUESTS):
            t = time.perf_counter()
            handler.invoke(row, "text/csv", "text/csv")
            inproc.append(time.perf_counter() - t)
        predictor.delete_endpoint()
    p50, p99 = percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3
    i50, i99 = percentile(inproc, 50) * 1e3, percentile(inproc, 99) * 1e3
    result = {"p50_ms": p50, "p99_ms": p99, "rps": rps, "inproc_p50_ms": i50,
              "bad_body_rejected_s": rejections[0], "one_row_behind_two_bad_bodies_ms": behind[0] * 1e3}
    body = f"""
XGBoost breast-cancer model (30 features, 50 rounds), one CSV row per request, Accept text/csv.

| | p50 | p99 |
|---|---|---|
| endpoint, 1 keep-alive client, {REQUESTS} requests | **{p50:.3f} ms** (target < 2 ms) | {p99:.3f} ms |
| in-process handler call (parse + predict + format) | {i50:.3f} ms (target < 2 ms) | {i99:.3f} ms |
| HTTP + server cost (p50 difference) | {p50 - i50:.3f} ms | |

Throughput with {CLIENTS} concurrent keep-alive clients: **{rps:,.0f} requests/s**
(in-process single thread: {1e3 / i50:,.0f} calls/s).

Under abuse: a 6 MB body of 3,000,000 one-value rows (the model expects 30) is refused (400) in
**{rejections[0]:.3f} s**, by its first row; a one-row request sent while two such bodies are being
answered takes **{behind[0] * 1e3:.1f} ms**.
"""
    write_section("Endpoint latency and throughput", body)
    return result


if __name__ == "__main__":
    print(main())
