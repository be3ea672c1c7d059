"""The endpoint against MLflow `models serve`: the same XGBoost booster behind both, the same client.

One breast-cancer XGBoost model (30 features, 50 rounds, as benchmarks/bench_endpoint.py) is
trained by nbsage and deployed to an nbsage endpoint; its `xgboost-model` file is loaded into
MLflow (`mlflow.xgboost.save_model`) in MLflow's own virtual environment and served there with
`mlflow models serve -m <model> --env-manager local -h 127.0.0.1 -p <port>`, MLflow's defaults
otherwise. Both get one-row CSV requests from bench_endpoint's keep-alive client: nbsage the bare
row (Content-Type text/csv, as SageMaker's XGBoost), MLflow the same row under a header line of
column names (MLflow's documented text/csv input is a CSV-serialised pandas DataFrame, whose first
line is the header) - the values are identical, and both answers are checked to agree. Per round,
interleaved (which side goes first alternates): p50/p99 of one client, then requests/s of 4 and of
8 concurrent clients. MLflow's JSON `dataframe_split` input is timed too (one client), since a
reader may use that instead.

MLflow is never installed into the project's venv (it pins its own stack); create its venv once:

    python3.11 -m venv /work/mlflow-venv
    /work/mlflow-venv/bin/pip install mlflow==3.17.2 xgboost==3.2.0

(3.17.2 because mlflow 3.18.0 needs mlflow-tracing 3.18.0, which the package index here lacks; any
recent mlflow serves the same way, through uvicorn and FastAPI; older releases used gunicorn and Flask.)

    python benchmarks/bench_mlflow.py [--venv /work/mlflow-venv] [--rounds 5] [--no-write]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_endpoint import percentile, requests_per_second, send  # noqa: E402
from common import write_section  # noqa: E402

DEFAULT_VENV = "/work/mlflow-venv"
TITLE = "Endpoint against MLflow models serve"
CSV_HEADERS = {"Content-Type": "text/csv", "Accept": "text/csv"}
JSON_HEADERS = {"Content-Type": "application/json"}
CONCURRENCY = (4, 8)
READY_SECONDS = 300.0  # MLflow imports pandas, FastAPI and the model on a loaded machine

# Run in MLflow's venv: the nbsage booster file -> an MLflow model folder, and the versions in use.
TO_MLFLOW = """
import json, sys
import importlib.metadata as md
import mlflow.xgboost, xgboost
booster = xgboost.Booster()
booster.load_model(sys.argv[1])
mlflow.xgboost.save_model(booster, sys.argv[2], model_format="ubj")
names = ("mlflow", "xgboost", "pandas", "uvicorn", "fastapi", "gunicorn", "flask")
versions = {}
for name in names:
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        pass
print(json.dumps({"versions": versions, "python": sys.version.split()[0]}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, server: subprocess.Popen, log: Path) -> None:
    """Wait until GET /ping answers 200 (MLflow's health check), or fail with the server's log."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # readiness poll of a foreign server: it offers no event to wait on
    raise RuntimeError(f"mlflow models serve not ready after {READY_SECONDS:.0f} s:\n{log.read_text()[-3000:]}")


def _post(port: int, body: bytes, headers: dict) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read()


def _mlflow_env(venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "NBSAGE_HOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def _measure(port: int, body: bytes, headers: dict, requests: int, per_client: int) -> dict:
    latencies: list[float] = []
    send("127.0.0.1", port, body, headers, requests, latencies)
    row = {"p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3}
    for clients in CONCURRENCY:
        row[f"rps_{clients}"] = requests_per_second("127.0.0.1", port, body, headers, clients, per_client // clients)
    return row


def missing_venv_message(venv: Path) -> str:
    return (f"MLflow's venv {venv} has no `mlflow` command. Create it (outside the project's venv), e.g.\n"
            f"    python3.11 -m venv {venv} && {venv}/bin/pip install mlflow==3.17.2 xgboost==3.2.0\n"
            f"or pass --venv PATH to one that has mlflow and xgboost.")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=DEFAULT_VENV, help="MLflow's virtual environment (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--requests", type=int, default=300, help="one-client requests per round and side")
    parser.add_argument("--concurrent-requests", type=int, default=400,
                        help="requests per round and side at each concurrency, split among the clients")
    parser.add_argument("--workers", type=int, default=None,
                        help="MLflow's `--workers` (default: not passed, MLflow's own default of 1)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    venv = Path(args.venv)
    if not (venv / "bin" / "mlflow").exists():
        message = missing_venv_message(venv)
        print(message, file=sys.stderr)
        return {"skipped": message}

    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    row = ",".join(f"{v:.6g}" for v in X[0]).encode()
    columns = [f"f{i}" for i in range(X.shape[1])]
    mlflow_csv = ",".join(columns).encode() + b"\n" + row
    mlflow_json = json.dumps({"dataframe_split": {"columns": columns,
                                                  "data": [[float(v) for v in row.split(b",")]]}}).encode()
    started = datetime.datetime.now(datetime.timezone.utc)
    loads = [_load()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["NBSAGE_HOME"] = str(tmp / "home")
        import nbsage
        est = nbsage.Estimator("xgboost", hyperparameters={"objective": "binary:logistic", "num_round": 50})
        desc = est.fit({"train": (X, y)}, wait=False).wait_quietly()
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        predictor = est.deploy()
        server = None
        try:
            url = predictor.describe()["Url"]
            ours_port = int(url.split("//")[1].split(":")[1].strip("/"))
            with tarfile.open(est.model_data) as tar:
                tar.extractall(tmp / "model", filter="data")
            env = _mlflow_env(venv)
            out = subprocess.run([str(venv / "bin" / "python"), "-c", TO_MLFLOW, str(tmp / "model" / "xgboost-model"),
                                  str(tmp / "mlflow-model")], env=env, check=True, capture_output=True, text=True)
            info = json.loads(out.stdout.strip().splitlines()[-1])
            mlflow_port = _free_port()
            log = tmp / "mlflow-serve.log"
            with open(log, "wb") as sink:
                server = subprocess.Popen(
                    [str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(tmp / "mlflow-model"),
                     "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port),
                     *(["--workers", str(args.workers)] if args.workers else [])],
                    env=env, cwd=tmp, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
            _wait_ready(mlflow_port, server, log)

            # the same answer from both (nbsage: CSV; MLflow: {"predictions": [...]})
            ours = float(_post(ours_port, row, CSV_HEADERS).decode().strip())
            theirs_csv = json.loads(_post(mlflow_port, mlflow_csv, CSV_HEADERS))["predictions"][0]
            theirs_json = json.loads(_post(mlflow_port, mlflow_json, JSON_HEADERS))["predictions"][0]
            assert abs(ours - float(theirs_csv)) < 1e-5 and abs(ours - float(theirs_json)) < 1e-5, \
                (ours, theirs_csv, theirs_json)

            sides = {"nbsage": (ours_port, row, CSV_HEADERS), "mlflow": (mlflow_port, mlflow_csv, CSV_HEADERS)}
            for port, body, headers in sides.values():
                send("127.0.0.1", port, body, headers, 100, [])  # warm-up
            send("127.0.0.1", mlflow_port, mlflow_json, JSON_HEADERS, 50, [])
            rounds = []
            for r in range(args.rounds):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                result = {"load": _load()}
                for name in order:
                    result[name] = _measure(*sides[name], args.requests, args.concurrent_requests)
                json_latencies: list[float] = []
                send("127.0.0.1", mlflow_port, mlflow_json, JSON_HEADERS, args.requests, json_latencies)
                result["mlflow_json_p50_ms"] = percentile(json_latencies, 50) * 1e3
                rounds.append(result)
                print(f"round {r + 1}/{args.rounds}: {json.dumps(result)}", file=sys.stderr)
            loads.append(_load())
            workers = _server_workers(log)
        finally:
            if server is not None and server.poll() is None:
                os.killpg(server.pid, 15)
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, 9)
                    server.wait()
            predictor.delete_endpoint()
    result = _summary(rounds, info, loads, started, workers, args)
    if not args.no_write:
        write_section(TITLE, _section(rounds, result, args))
    return result


def _server_workers(log: Path) -> str:
    """The server command MLflow ran (uvicorn or gunicorn, with its worker count), from its log."""
    for line in log.read_text(errors="replace").splitlines():
        if "Running command" in line:
            return line.split("Running command", 1)[1].strip(" '")
    return ""


def _median(rounds: list, side: str, key: str) -> float:
    return statistics.median(r[side][key] for r in rounds)


def _summary(rounds, info, loads, started, workers, args) -> dict:
    result = {"started": started.strftime("%Y-%m-%d %H:%M UTC"), "load_start_end": loads,
              "versions": info["versions"], "mlflow_python": info["python"], "mlflow_server_log": workers,
              "rounds": len(rounds)}
    for side in ("nbsage", "mlflow"):
        for key in ("p50_ms", "p99_ms", *(f"rps_{c}" for c in CONCURRENCY)):
            result[f"{side}_{key}"] = _median(rounds, side, key)
    result["mlflow_json_p50_ms"] = statistics.median(r["mlflow_json_p50_ms"] for r in rounds)
    result["p50_ratio"] = result["nbsage_p50_ms"] / result["mlflow_p50_ms"]
    result["p99_ratio"] = result["nbsage_p99_ms"] / result["mlflow_p99_ms"]
    for c in CONCURRENCY:
        result[f"rps_{c}_ratio"] = result[f"nbsage_rps_{c}"] / result[f"mlflow_rps_{c}"]
    return result


def _section(rounds, result, args) -> str:
    v = result["versions"]
    stack = ("uvicorn", "fastapi") if "uvicorn" in result["mlflow_server_log"] else ("gunicorn", "flask")
    server = " + ".join(f"{name} {v[name]}" for name in stack if name in v)
    lines = [
        "The breast-cancer XGBoost model of the endpoint benchmark (30 features, 50 rounds), trained once by",
        "nbsage; the same `xgboost-model` booster deployed as an nbsage endpoint and, loaded with",
        "`mlflow.xgboost.save_model`, served by `mlflow models serve --env-manager local` from MLflow's own",
        f"venv (mlflow {v.get('mlflow')}, xgboost {v.get('xgboost')}, pandas {v.get('pandas')}, served by {server};",
        "MLflow's defaults otherwise). One CSV row per request from the same keep-alive client (benchmarks/",
        "bench_endpoint.py's): nbsage gets the bare row (`text/csv`, SageMaker's XGBoost input), MLflow the",
        "same values under a header line of column names (its documented `text/csv` input, a CSV-serialised",
        "DataFrame; it answers JSON `{\"predictions\": [...]}`); both answers agree. Per round, in alternating",
        f"order: {args.requests} requests from 1 client (p50/p99), then {args.concurrent_requests} requests from 4",
        "and from 8 concurrent clients (requests/s; the clients are threads of the benchmark process, on the",
        "same cores as the servers). Figures below the rounds are medians of the rounds.",
        "",
        "| round | load (1/5/15 min) | nbsage p50 / p99 ms | MLflow p50 / p99 ms | nbsage req/s 4 / 8 clients | "
        "MLflow req/s 4 / 8 clients | MLflow JSON dataframe_split p50 ms |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(rounds, 1):
        o, m = r["nbsage"], r["mlflow"]
        lines.append(f"| {i} | {r['load']} | {o['p50_ms']:.3f} / {o['p99_ms']:.3f} | {m['p50_ms']:.2f} / {m['p99_ms']:.2f} "
                     f"| {o['rps_4']:,.0f} / {o['rps_8']:,.0f} | {m['rps_4']:,.0f} / {m['rps_8']:,.0f} "
                     f"| {r['mlflow_json_p50_ms']:.2f} |")
    s = result
    lines += [
        f"| **median** | start {s['load_start_end'][0]}, end {s['load_start_end'][1]} "
        f"| **{s['nbsage_p50_ms']:.3f} / {s['nbsage_p99_ms']:.3f}** | {s['mlflow_p50_ms']:.2f} / {s['mlflow_p99_ms']:.2f} "
        f"| **{s['nbsage_rps_4']:,.0f} / {s['nbsage_rps_8']:,.0f}** | {s['mlflow_rps_4']:,.0f} / {s['mlflow_rps_8']:,.0f} "
        f"| {s['mlflow_json_p50_ms']:.2f} |",
        "",
        f"nbsage / MLflow: p50 **{s['p50_ratio']:.3f}** ({1 / s['p50_ratio']:.1f}x faster), p99 {s['p99_ratio']:.3f}; "
        f"requests/s **{s['rps_4_ratio']:.1f}x** MLflow's at 4 clients, **{s['rps_8_ratio']:.1f}x** at 8.",
        "",
        f"MLflow ran `{s['mlflow_server_log'] or '(not logged)'}`; the nbsage endpoint is one server process",
        f"answering on a pool of {os.cpu_count()} threads (SAGEMAKER_MODEL_SERVER_WORKERS' default, the CPU count).",
        "",
        f"Command: `python benchmarks/bench_mlflow.py --venv {args.venv} --rounds {args.rounds}"
        f"{f' --workers {args.workers}' if args.workers else ''}`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    outcome = main()
    print(json.dumps(outcome, indent=2))
    sys.exit(2 if "skipped" in outcome else 0)
