"""Compilation to ONNX: parity with the native model over 10,000 rows, and latency, onnxruntime vs native.

For each compilable algorithm, a model is compiled with nbsage.compilation (the same converter and
compiled handler an endpoint uses) and both sides run in this process, one thread each:

* XGBoost (30 features, binary:logistic, 100 rounds of depth 4): max |margin difference| (target 1e-5)
  and max |probability difference|; latency of `Booster.inplace_predict` vs the onnxruntime session.
* Linear Learner (30 features, binary): scores (float64 graph) vs LinearModel.margins.
* BlazingText supervised (bigrams, 2 labels): class probabilities of 10,000 texts; latency of the
  probabilities for 1 and 1,000 texts (tokenising shared).
* DeepAR (one LSTM layer of 40 cells): the network step on 10,000 random inputs; latency of one
  forecast of 100 sample paths (the sampling loop in Python on both sides).

Latency is the median of repeated calls; which side is faster is written as measured.
`python benchmarks/bench_compilation.py [rows]` (default 10000).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import write_section  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def compiled(folder: Path, archive: Path, algorithm: str, session):
    """(compiled handler, compiled model directory) through Model.compile, as a user gets it."""
    import tarfile

    from nbsage.model import Model
    from nbsage.runtime.serve import load_handler
    model = Model(str(archive), algorithm=algorithm, sagemaker_session=session).compile(
        "ml_c5", output_path=str(folder / f"out-{algorithm}"))
    target = folder / f"compiled-{algorithm}"
    with tarfile.open(model.model_data) as tar:
        tar.extractall(target, filter="data")
    return load_handler(target, algorithm), target


def main(rows: int = 10000) -> dict:
    import xgboost as xgb
    from compilation import models

    from nbsage.compilation import blazingtext as bt_compile
    from nbsage.compilation import deepar as deepar_compile
    from nbsage.compilation.xgboost import to_onnx
    from nbsage.session import Session
    out: dict = {"rows": rows}
    repeats_one, repeats_batch = 300, 20
    with tempfile.TemporaryDirectory(prefix="bench-compilation-") as tmp:
        tmp = Path(tmp)
        os.environ["NBSAGE_HOME"] = str(tmp / "home")
        session = Session(home=tmp / "home")

        # ---- XGBoost
        booster, archive, _ = models.xgboost_model(tmp, features=30, rounds=100, rows=5000)
        booster.set_param({"nthread": 1})
        handler, _ = compiled(tmp, archive, "xgboost", session)
        X = np.random.default_rng(9).normal(size=(rows, 30)).astype(np.float32)
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        margin_session = ort.InferenceSession(to_onnx(booster, 30, margin=True).SerializeToString(), options)
        margin_diff = float(np.abs(margin_session.run(["probabilities"], {"features": X})[0][:, 1]
                                   - booster.inplace_predict(X, predict_type="margin")).max())
        prob_diff = float(np.abs(handler.predictions(X) - booster.inplace_predict(X)).max())
        session_run = handler.session.run
        one, batch = X[:1], X[:1000]
        out["xgboost"] = {
            "margin_max_abs_diff": margin_diff, "probability_max_abs_diff": prob_diff,
            "native_1_ms": median_ms(lambda: booster.inplace_predict(one), repeats_one),
            "onnx_1_ms": median_ms(lambda: session_run(None, {"features": one}), repeats_one),
            "native_1000_ms": median_ms(lambda: booster.inplace_predict(batch), repeats_batch),
            "onnx_1000_ms": median_ms(lambda: session_run(None, {"features": batch}), repeats_batch)}

        # ---- Linear Learner
        from nbsage.algorithms.linear_learner.inference import LinearModel
        (tmp / "ll-model").mkdir()
        archive = models.linear_learner_model(tmp / "ll-model", "binary_classifier", features=30)
        native = LinearModel.load(tmp / "ll-model" / "ll")
        handler, _ = compiled(tmp, archive, "linear-learner", session)
        L = np.random.default_rng(10).normal(size=(rows, 30))
        out["linear-learner"] = {
            "score_max_abs_diff": float(np.abs(handler.model.margins(L) - native.margins(L)).max()),
            "native_1_ms": median_ms(lambda: native.margins(L[:1]), repeats_one),
            "onnx_1_ms": median_ms(lambda: handler.model.margins(L[:1]), repeats_one),
            "native_1000_ms": median_ms(lambda: native.margins(L[:1000]), repeats_batch),
            "onnx_1000_ms": median_ms(lambda: handler.model.margins(L[:1000]), repeats_batch)}

        # ---- BlazingText
        from nbsage.algorithms.blazingtext.model import load_model
        archive = models.blazingtext_model(tmp, dim=32)
        native_bt = load_model(tmp / "bt")
        handler, target = compiled(tmp, archive, "blazingtext", session)
        texts = bt_compile.parity_rows(target, rows)
        ptr, ids = native_bt.rows([t.split() for t in texts])
        compiled_bt = handler.model
        p1, i1 = native_bt.rows([texts[0].split()])
        pk, ik = native_bt.rows([t.split() for t in texts[:1000]])
        out["blazingtext"] = {
            "probability_max_abs_diff": float(np.abs(compiled_bt.probabilities(ptr, ids)
                                                     - native_bt.probabilities(ptr, ids)).max()),
            "native_1_ms": median_ms(lambda: native_bt.probabilities(p1, i1), repeats_one),
            "onnx_1_ms": median_ms(lambda: compiled_bt.probabilities(p1, i1), repeats_one),
            "native_1000_ms": median_ms(lambda: native_bt.probabilities(pk, ik), repeats_batch),
            "onnx_1000_ms": median_ms(lambda: compiled_bt.probabilities(pk, ik), repeats_batch)}

        # ---- DeepAR
        from nbsage import algorithms
        archive, records = models.deepar_model(tmp)
        handler, target = compiled(tmp, archive, "deepar", session)
        native_handler = algorithms.get("deepar").load(str(tmp / "root" / "model"))
        step_rows = deepar_compile.parity_rows(target, rows)
        step_diff = float(np.abs(deepar_compile.compiled_predictions(handler, step_rows)
                                 - deepar_compile.native_predictions(target, step_rows)).max())
        series = [native_handler.parse_instance(records[0], "record 0")]
        out["deepar"] = {
            "step_max_abs_diff": step_diff,
            "native_forecast_ms": median_ms(lambda: native_handler.predictor.forecast(series, 100), 10),
            "onnx_forecast_ms": median_ms(lambda: handler.predictor.forecast(series, 100), 10)}
    out["load"] = os.getloadavg()[0]
    write_section("Compilation to ONNX: parity and latency", _table(out))
    return out


def _faster(native: float, onnx: float) -> str:
    return f"onnxruntime {native / onnx:.2f}x faster" if onnx < native else f"native {onnx / native:.2f}x faster"


def _table(out: dict) -> str:
    x, ll, bt, da = out["xgboost"], out["linear-learner"], out["blazingtext"], out["deepar"]
    lines = ["| model | parity over %d rows: max abs diff | 1 row: native / onnxruntime (ms) | "
             "1,000 rows: native / onnxruntime (ms) |" % out["rows"], "|---|---|---|---|"]
    for name, d, parity in [("XGBoost (30 features, 100 trees, depth 4)", x,
                             f"margins {x['margin_max_abs_diff']:.2e} (target 1e-5); probabilities "
                             f"{x['probability_max_abs_diff']:.2e}"),
                            ("Linear Learner (30 features)", ll, f"scores {ll['score_max_abs_diff']:.2e}"),
                            ("BlazingText supervised (dim 32, bigrams)", bt,
                             f"probabilities {bt['probability_max_abs_diff']:.2e}")]:
        lines.append(f"| {name} | {parity} | {d['native_1_ms']:.4f} / {d['onnx_1_ms']:.4f} "
                     f"({_faster(d['native_1_ms'], d['onnx_1_ms'])}) | {d['native_1000_ms']:.4f} / "
                     f"{d['onnx_1000_ms']:.4f} ({_faster(d['native_1000_ms'], d['onnx_1000_ms'])}) |")
    lines.append(f"| DeepAR (LSTM step; forecast of 100 paths x 12 steps) | network step "
                 f"{da['step_max_abs_diff']:.2e} | forecast {da['native_forecast_ms']:.2f} / "
                 f"{da['onnx_forecast_ms']:.2f} ({_faster(da['native_forecast_ms'], da['onnx_forecast_ms'])}) | - |")
    loaded = out["load"] > (os.cpu_count() or 1)
    note = (f"Load average at the end: {out['load']:.1f}"
            + (" — **taken on a loaded machine**: latencies are high and move from run to run; the parity "
               "figures do not depend on load." if loaded else "."))
    return ("Both sides in one process, one thread each, median of repeated calls "
            f"(`python benchmarks/bench_compilation.py {out['rows']}`). {note}\n\n" + "\n".join(lines)
            + "\n\nGPU: not measured (no GPU on this machine); the GPU paths (XGBoost device=cuda, DeepAR on "
            "CUDA, onnxruntime's CUDA provider) are tested by tests/pipelines/test_gpu_endpoints.py where a GPU "
            "is present.")


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000))
