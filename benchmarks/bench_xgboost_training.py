"""XGBoost trained through nbsage (a local job) against xgboost.train called directly.

Both sides read the same 200k-row CSV (pyarrow for the direct side, as a user would) and train
with the same parameters and threads. Reported: wall times, their ratio, and the fixed job
overhead (a 1-round job on 100 rows, end to end through Estimator.fit).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_section

ROWS, FEATURES, ROUNDS = 200_000, 20, 100
PARAMS = {"objective": "binary:logistic", "eval_metric": "auc", "max_depth": 6, "eta": 0.1, "tree_method": "hist"}


def make_data(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    logits = X[:, 0] * 1.5 - X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
    y = (logits + rng.logistic(size=rows) > 0).astype(np.float32)
    import pandas as pd
    pd.DataFrame(np.column_stack([y, X])).to_csv(path, header=False, index=False, float_format="%.6g")


def direct(train: Path, validation: Path) -> float:
    import pyarrow.csv as pacsv
    import xgboost as xgb
    start = time.perf_counter()
    def load(p):
        t = pacsv.read_csv(p, read_options=pacsv.ReadOptions(autogenerate_column_names=True))
        m = np.column_stack([c.to_numpy() for c in t.columns]).astype(np.float32)
        return xgb.DMatrix(m[:, 1:], label=m[:, 0])
    dtrain, dval = load(train), load(validation)
    booster = xgb.train(PARAMS, dtrain, ROUNDS, evals=[(dtrain, "train"), (dval, "validation")], verbose_eval=False)
    booster.save_model(str(train.parent / "direct.ubj"))
    return time.perf_counter() - start


def through_nbsage(train: Path, validation: Path, rounds: int = ROUNDS) -> tuple[float, str]:
    import nbsage
    est = nbsage.Estimator("xgboost", hyperparameters={**PARAMS, "num_round": rounds})
    start = time.perf_counter()
    job = est.fit({"train": nbsage.TrainingInput(str(train), content_type="text/csv"),
                   "validation": nbsage.TrainingInput(str(validation), content_type="text/csv")},
                  wait=False)
    desc = job.wait_quietly(poll=0.02)
    elapsed = time.perf_counter() - start
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    return elapsed, job.name


def main(repeats: int = 3) -> dict:
    import os
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["NBSAGE_HOME"] = str(tmp / "home")
        train, validation = tmp / "train.csv", tmp / "validation.csv"
        make_data(train, ROWS, 0)
        make_data(validation, ROWS // 4, 1)
        small_train, small_val = tmp / "small.csv", tmp / "small_val.csv"
        make_data(small_train, 100, 2)
        make_data(small_val, 100, 3)
        through_nbsage(small_train, small_val, 1)  # warm caches (imports, page cache)
        direct_times, nbsage_times, overheads = [], [], []
        for _ in range(repeats):
            direct_times.append(direct(train, validation))
            nbsage_times.append(through_nbsage(train, validation)[0])
            overheads.append(through_nbsage(small_train, small_val, 1)[0])
    d, n, o = statistics.median(direct_times), statistics.median(nbsage_times), statistics.median(overheads)
    result = {"direct_s": d, "nbsage_s": n, "ratio": n / d, "overhead_s": o}
    body = f"""
{ROWS:,} rows x {FEATURES} features (CSV, label first), validation {ROWS // 4:,} rows, {ROUNDS} rounds,
`{PARAMS}`; median of {repeats} runs. Both sides include reading the CSV files.

| | wall time |
|---|---|
| xgboost.train directly (pyarrow CSV read + DMatrix + train + save) | {d:.2f} s |
| nbsage local job (Estimator.fit: record, stage, process, train, pack, upload) | {n:.2f} s |
| **ratio nbsage / direct** | **{n / d:.3f}** (target <= 1.10) |
| fixed job overhead (1 round on 100 rows, end to end) | **{o * 1000:.0f} ms** (target < 1 s) |
"""
    write_section("XGBoost training: nbsage job vs xgboost.train", body)
    return result


if __name__ == "__main__":
    print(main())
