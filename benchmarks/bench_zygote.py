"""Short jobs at warm-process speed: the local place with its pre-warmed runtime (the zygote) and without.

`python benchmarks/bench_zygote.py [part ...] [--repeats N] [--trials N] [--no-write]` (parts:
overhead, xgb3s, tuning; default all) prints one Markdown block and writes RESULTS.md's "Pre-warmed
runtime" section. Every figure is taken next to its anchor in the same run, runs interleaved
(zygote, fresh interpreter, anchor, zygote, ...), median:

- overhead: a 1-round, 100-row XGBoost job, `Estimator.fit(logs=False)` to return, through the
  zygote and with NBSAGE_ZYGOTE=0 (a supervisor and a runtime interpreter, what every job did
  before), against `xgboost.train` of the same round on the same rows in this warm process; the
  fixed overhead is fit minus that.
- xgb3s: the 200,000 x 50, 100-round job (bench_perf2's) both ways, against `xgboost.train` on the
  same CSV files in this warm process (bench_xgboost_training.direct).
- tuning: bench_tuning's search (XGBoost on breast cancer, TPE, early stopping Off) through the
  tuner both ways, against Optuna driving `xgboost.train` directly; overhead per trial =
  (tuner wall - direct wall) x parallel / trials.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import write_section  # noqa: E402

MODES = ("zygote", "fresh")


def _mode(mode: str) -> None:
    os.environ["NBSAGE_ZYGOTE"] = "1" if mode == "zygote" else "0"


def _zygote_ready() -> None:
    """Start the zygote for this process's environment and wait until it listens (not timed)."""
    from nbsage.backends import zygote
    env = dict(os.environ, PYTHONUNBUFFERED="1", NBSAGE_ZYGOTE="1")
    path = zygote.socket_for(env)
    zygote.start(env)
    deadline = time.monotonic() + 120
    while path is not None and not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _load() -> float:
    return os.getloadavg()[0]


def overhead(repeats: int) -> str:
    import numpy as np
    import xgboost as xgb

    import nbsage
    rng = np.random.default_rng(0)
    X = rng.random((100, 4))
    y = (X[:, 0] > 0.5).astype(float)
    params = {"num_round": 1, "objective": "binary:logistic", "max_depth": 2}
    est = nbsage.Estimator("xgboost", hyperparameters=params)

    def anchor():
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 1)
        booster.save_raw()

    for mode in MODES:  # warm-up: uploads, page cache, the zygote up
        _mode(mode)
        est.fit({"train": (X, y)}, logs=False)
    _zygote_ready()
    anchor()
    times: dict[str, list[float]] = {"zygote": [], "fresh": [], "anchor": []}
    load = [_load()]
    for _ in range(repeats):
        for mode in MODES:
            _mode(mode)
            t = time.perf_counter()
            est.fit({"train": (X, y)}, logs=False)
            times[mode].append(time.perf_counter() - t)
        t = time.perf_counter()
        anchor()
        times["anchor"].append(time.perf_counter() - t)
    load.append(_load())
    m = {k: statistics.median(v) for k, v in times.items()}
    return (f"### 1-round job, 100 rows x 4\n\n"
            f"| `Estimator.fit(logs=False)` to return | seconds (median) | fixed overhead (- anchor) |\n"
            f"|---|---:|---:|\n"
            f"| through the zygote | **{m['zygote']:.3f}** | **{m['zygote'] - m['anchor']:.3f}** (target <= 0.25) |\n"
            f"| fresh interpreters (NBSAGE_ZYGOTE=0, as before) | {m['fresh']:.3f} | "
            f"{m['fresh'] - m['anchor']:.3f} |\n"
            f"| anchor: `xgboost.train`, 1 round on the same rows, this warm process | {m['anchor']:.4f} | |\n\n"
            f"Median of {repeats}, interleaved; zygote {[round(t, 3) for t in times['zygote']]}, "
            f"fresh {[round(t, 3) for t in times['fresh']]}; 1-minute load average {load[0]:.1f} before, "
            f"{load[1]:.1f} after, {os.cpu_count()} cores.")


def xgb3s(repeats: int) -> str:
    import bench_xgboost_training as bx

    import nbsage
    folder = Path(tempfile.mkdtemp(prefix="zygote-data-", dir=os.environ.get("NBSAGE_HOME")))
    train, val = folder / "train.csv", folder / "validation.csv"
    bx.make_data(train, 200_000, 0, 50)
    bx.make_data(val, 50_000, 1, 50)
    est = nbsage.Estimator("xgboost", hyperparameters={**bx.PARAMS, "num_round": 100})
    inputs = {"train": nbsage.TrainingInput(str(train), content_type="text/csv"),
              "validation": nbsage.TrainingInput(str(val), content_type="text/csv")}
    bx.direct(train, val, 100)  # warm: imports and page cache, as a notebook that trained before
    _mode("zygote")
    _zygote_ready()
    times: dict[str, list[float]] = {"zygote": [], "fresh": [], "direct": []}
    load = [_load()]
    for _ in range(repeats):
        times["direct"].append(bx.direct(train, val, 100))
        for mode in MODES:
            _mode(mode)
            t = time.perf_counter()
            est.fit(inputs, logs=False)
            times[mode].append(time.perf_counter() - t)
    load.append(_load())
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    return (f"### XGBoost 200,000 x 50, 100 rounds (+ 50,000-row validation), fit() to return\n\n"
            f"| | seconds, median (fastest) | / `xgboost.train` median (fastest) |\n|---|---:|---:|\n"
            f"| through the zygote | **{med['zygote']:.2f}** ({best['zygote']:.2f}) | "
            f"**{med['zygote'] / med['direct']:.3f}** ({best['zygote'] / best['direct']:.3f}) (target <= 1.10) |\n"
            f"| fresh interpreters (NBSAGE_ZYGOTE=0) | {med['fresh']:.2f} ({best['fresh']:.2f}) | "
            f"{med['fresh'] / med['direct']:.3f} ({best['fresh'] / best['direct']:.3f}) |\n"
            f"| `xgboost.train` in this warm process (read CSV with pyarrow, train, evaluate, save) | "
            f"{med['direct']:.2f} ({best['direct']:.2f}) | 1 |\n\n"
            f"{repeats} rounds, interleaved; zygote {[round(t, 2) for t in times['zygote']]}, fresh "
            f"{[round(t, 2) for t in times['fresh']]}, direct {[round(t, 2) for t in times['direct']]}; "
            f"1-minute load average {load[0]:.1f} before, {load[1]:.1f} after, {os.cpu_count()} cores"
            + (f"; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} on both sides (libgomp's spin-waiting on an "
               "oversubscribed machine makes every run many times slower and the figures noise)"
               if os.environ.get("OMP_WAIT_POLICY") else "") + ".")


def tuning(trials: int, parallel: int = 2, num_round: int = 50) -> str:
    import bench_tuning as bt
    train, valid, arrays = bt.data()
    _mode("zygote")
    _zygote_ready()
    load = [_load()]
    results = {"direct": bt.run_direct(arrays, trials, parallel, num_round, 0, "Off")}
    for mode in MODES:
        _mode(mode)
        results[mode] = bt.run_nbsage(train, valid, trials, parallel, num_round, 0, "Off")
    load.append(_load())
    d = results["direct"]["wall"]

    def per_trial(mode):
        return (results[mode]["wall"] - d) * parallel / trials

    rows = [f"| Optuna + `xgboost.train` (threads) | {results['direct']['best']:.5f} | {d:.1f} | "
            f"{d * parallel / trials:.2f} | |"]
    for mode, name in (("zygote", "nbsage tuner, through the zygote"), ("fresh", "nbsage tuner, fresh interpreters")):
        r = results[mode]
        rows.append(f"| {name} | {r['best']:.5f} | {r['wall']:.1f} | {r['wall'] * parallel / trials:.2f} | "
                    f"{'**' if mode == 'zygote' else ''}+{per_trial(mode):.2f}{'**' if mode == 'zygote' else ''} |")
    return (f"### Tuning: {trials} XGBoost trials, {parallel} in parallel, {num_round} rounds, early stopping Off\n\n"
            f"| | best validation:auc | wall (s) | seconds per trial slot | overhead per trial (target < 0.5 s) |\n"
            f"|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
            f"bench_tuning's search (`bench_tuning.run_direct` / `run_nbsage`), one run each; 1-minute load "
            f"average {load[0]:.1f} before, {load[1]:.1f} after, {os.cpu_count()} cores.")


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["overhead", "xgb3s", "tuning"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("NBSAGE_HOME", tempfile.mkdtemp(prefix="bench-zygote-"))
    blocks = []
    for part in args.parts:
        block = {"overhead": lambda: overhead(args.repeats), "xgb3s": lambda: xgb3s(max(2, args.repeats // 2)),
                 "tuning": lambda: tuning(args.trials)}[part]()
        print(block, flush=True)
        blocks.append(block)
    body = ("The local place forks each job's supervisor and, ahead of time, its training runtime from a "
            "pre-warmed process with the supervisor, the runtime and xgboost imported (nbsage.backends.zygote); "
            "NBSAGE_ZYGOTE=0 starts both as fresh interpreters, as every job did before. "
            f"`python benchmarks/bench_zygote.py {' '.join(args.parts)} --repeats {args.repeats} "
            f"--trials {args.trials}`.\n\n" + "\n\n".join(blocks))
    if not args.no_write:
        write_section("Pre-warmed runtime (zygote): short jobs and tuning trials", body)
    return body


if __name__ == "__main__":
    main()
