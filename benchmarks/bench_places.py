"""Places: job start-up overhead per place, and distributed XGBoost on the dask place.

1. Start-up overhead: a script-mode job whose script does nothing, end to end through
   Estimator.fit (fit called -> Completed recorded), on the local place (1 and 2 instances) and on
   the dask place (an existing LocalCluster of 2 workers, 1 and 2 instances; and a LocalCluster
   started for the job), against `python -m nbsage.runtime train --root ROOT` run directly on a
   staged root (the runtime alone: interpreter, imports, the script).
2. XGBoost on 1 and 2 Dask workers (1 thread each): the built-in algorithm on the dask place
   (instance_count = workers, train channel ShardedByS3Key over 4 CSV files) against
   xgboost.dask used directly on a cluster of the same shape (dask.dataframe.read_csv of the same
   files -> DaskDMatrix -> xgboost.dask.train). Both timed from the start of the read to the
   trained model; rows/s = training rows / that time.
"""
from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_section

REPEATS = 5
XGB_REPEATS = 3
ROWS, FEATURES, ROUNDS, FILES = 400_000, 20, 100, 4
PARAMS = {"objective": "binary:logistic", "eval_metric": "auc", "max_depth": 6, "eta": 0.1, "tree_method": "hist"}


def _cluster(workers: int):
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


# ---- 1. start-up overhead ---------------------------------------------------------------------------


def _runtime_direct(tmp: Path, src: Path, data: Path) -> float:
    from nbsage.backends.staging import prepare_root
    from nbsage.runtime.layout import JobRoot
    request = {
        "TrainingJobName": "direct", "AlgorithmSpecification": {"TrainingImage": "script", "TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": '"train.py"'},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": str(data), "S3DataDistributionType": "FullyReplicated"}}}],
        "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1},
    }
    root = prepare_root(JobRoot(tmp / f"direct-{time.monotonic_ns()}"), request, str(src))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def startup_overhead(tmp: Path) -> list[tuple[str, float]]:
    from nbsage import Estimator
    src = tmp / "src"
    src.mkdir()
    (src / "train.py").write_text("pass\n")
    data = tmp / "tiny"
    data.mkdir()
    for i in range(2):
        (data / f"part-{i}.csv").write_text("1,2\n")
    rows = []

    def median(fn) -> float:
        fn()  # warm the page cache and imports once
        return statistics.median(fn() for _ in range(REPEATS))

    rows.append(("runtime run directly (`python -m nbsage.runtime train`)", median(lambda: _runtime_direct(tmp, src, data))))
    for count in (1, 2):
        est = Estimator(entry_point="train.py", source_dir=str(src), instance_count=count)
        rows.append((f"local place, instance_count={count}", median(lambda: _timed_job(est, str(data)))))
    cluster = _cluster(2)
    try:
        for count in (1, 2):
            est = Estimator(entry_point="train.py", source_dir=str(src), instance_count=count, backend="dask",
                            scheduler=cluster.scheduler_address)
            rows.append((f"dask place, existing LocalCluster (2 workers), instance_count={count}",
                         median(lambda: _timed_job(est, str(data)))))
    finally:
        cluster.close()
    est = Estimator(entry_point="train.py", source_dir=str(src), backend="dask")
    rows.append(("dask place, LocalCluster started for the job, instance_count=1",
                 statistics.median(_timed_job(est, str(data)) for _ in range(3))))
    return rows


# ---- 2. XGBoost on Dask workers ------------------------------------------------------------------------


def make_data(folder: Path) -> None:
    import pandas as pd
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    per = ROWS // FILES
    for i in range(FILES):
        X = rng.normal(size=(per, FEATURES)).astype(np.float32)
        logits = X[:, 0] * 1.5 - X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
        y = (logits + rng.logistic(size=per) > 0).astype(np.float32)
        pd.DataFrame(np.column_stack([y, X])).to_csv(folder / f"part-{i}.csv", header=False, index=False,
                                                    float_format="%.6g")


def xgboost_dask_direct(client, folder: Path) -> float:
    import dask.dataframe as dd
    import xgboost as xgb
    import xgboost.dask  # noqa: F401  (a submodule xgboost does not import itself)
    start = time.perf_counter()
    features = [f"f{i}" for i in range(FEATURES)]
    df = dd.read_csv(str(folder / "*.csv"), header=None, names=["label", *features], dtype="float32")
    dtrain = xgb.dask.DaskDMatrix(client, df[features], df["label"])
    out = xgb.dask.train(client, PARAMS, dtrain, num_boost_round=ROUNDS, evals=[(dtrain, "train")])
    out["booster"].save_model(str(folder.parent / "direct.ubj"))
    return time.perf_counter() - start


def xgboost_on_dask(tmp: Path) -> list[tuple[int, float, float]]:
    from distributed import Client
    from nbsage import Estimator, TrainingInput
    folder = tmp / "train"
    make_data(folder)
    rows = []
    for workers in (1, 2):
        cluster = _cluster(workers)
        client = Client(cluster)
        try:
            est = Estimator("xgboost", {**PARAMS, "num_round": ROUNDS}, backend="dask", instance_count=workers,
                            scheduler=cluster.scheduler_address)
            inputs = {"train": TrainingInput(str(folder), content_type="text/csv", distribution="ShardedByS3Key")}
            direct, ours = [], []
            for _ in range(XGB_REPEATS):  # alternate, so that load from elsewhere hits both alike
                direct.append(xgboost_dask_direct(client, folder))
                ours.append(_timed_job(est, inputs))
            rows.append((workers, min(direct), min(ours)))
        finally:
            client.close()
            cluster.close()
    return rows


def main() -> dict:
    os.environ.setdefault("NBSAGE_HOME", tempfile.mkdtemp(prefix="nbsage-bench-places-"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "startup").mkdir()
        overhead = startup_overhead(Path(tmp) / "startup")
        scaling = xgboost_on_dask(Path(tmp))
    base = overhead[0][1]
    lines = ["### Job start-up overhead (a script that does nothing, end to end)", "",
             f"Median of {REPEATS} runs (3 for a LocalCluster per job), after one warm-up run.", "",
             "| Place | Seconds | Over the runtime alone |", "|---|---:|---:|"]
    for name, seconds in overhead:
        lines.append(f"| {name} | {seconds:.2f} | {seconds - base:+.2f} |")
    lines += ["", f"### XGBoost on Dask workers ({ROWS:,} rows x {FEATURES} features in {FILES} CSV files, "
                  f"{ROUNDS} rounds, depth 6, hist, 1 thread per worker)", "",
              f"Best of {XGB_REPEATS} runs each, alternating; time from the start of the read to the trained model "
              "(nbsage: from fit() to Completed, so it includes the job's start-up).", "",
              "| Workers | xgboost.dask directly (s) | rows/s | nbsage dask place (s) | rows/s | nbsage / direct |",
              "|---:|---:|---:|---:|---:|---:|"]
    for workers, direct, ours in scaling:
        lines.append(f"| {workers} | {direct:.2f} | {ROWS / direct:,.0f} | {ours:.2f} | {ROWS / ours:,.0f} | "
                     f"{ours / direct:.2f} |")
    write_section("Places (local, dask)", "\n".join(lines))
    return {"overhead": overhead, "xgboost_on_dask": scaling}


if __name__ == "__main__":
    print(main())
