"""Inference pipelines: what each extra stage adds to a one-row CSV request, over the single-model endpoint.

Endpoints, all on this machine, keep-alive connections, one client, requests interleaved round by round
so that a busy machine slows every endpoint alike:

* `xgboost`: the built-in XGBoost endpoint alone (the baseline);
* `k x pass-through + xgboost` (k = 1, 2, 4): k inference-script stages that answer their request as it
  came (transform_fn returning body and Content-Type) before XGBoost: the cost of a stage itself, with
  its own work as small as it gets. Added per stage = (p50 of the pipeline - p50 of xgboost) / k;
  the target is under 0.5 ms;
* `preprocess + xgboost`: the test pipeline (a scikit-learn ColumnTransformer script on raw rows with a
  text column, then XGBoost), against the XGBoost endpoint given the already preprocessed row, and
  against the preprocessor's transform in-process (pandas read + transform + CSV write), which is that
  stage's own work.

`python benchmarks/bench_pipelines.py [requests]` (default 2000 per endpoint).
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

PASS_THROUGH = '''
def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return body, content_type
'''


LOADED = (" — **taken on a loaded machine**: other work shares the cores, absolute figures are high and move "
          "from run to run")


def p50_ms(values) -> float:
    return 1000 * float(np.percentile(values, 50))


def p99_ms(values) -> float:
    return 1000 * float(np.percentile(values, 99))


def main(requests: int = 2000) -> dict:
    from pipelines.pipeline_data import CODE, build_parts, frame, raw_rows, to_csv

    from nbsage.model import Model
    from nbsage.pipeline import PipelineModel
    from nbsage.serving.endpoints import invoke_endpoint
    from nbsage.session import Session
    with tempfile.TemporaryDirectory(prefix="bench-pipelines-") as tmp:
        tmp = Path(tmp)
        os.environ["NBSAGE_HOME"] = str(tmp / "home")
        session = Session(home=tmp / "home")
        prep, booster, _ = build_parts(tmp)
        passthrough = tmp / "passthrough"
        passthrough.mkdir()
        (passthrough / "inference.py").write_text(PASS_THROUGH)

        def xgb_model(name="xgb"):
            return Model(str(tmp / "xgboost.tar.gz"), algorithm="xgboost", name=name, sagemaker_session=session)

        def pass_model(i):
            return Model(str(tmp / "xgboost.tar.gz"), entry_point="inference.py", source_dir=str(passthrough),
                         name=f"pass-{i}", sagemaker_session=session)

        endpoints = {"xgboost": xgb_model().deploy(endpoint_name="bench-xgb").endpoint_name}
        for k in (1, 2, 4):
            models = [pass_model(i) for i in range(k)] + [xgb_model()]
            PipelineModel(models, sagemaker_session=session).deploy(endpoint_name=f"bench-pass-{k}")
            endpoints[f"{k} x pass-through + xgboost"] = f"bench-pass-{k}"
        prep_model = Model(str(tmp / "preprocessor.tar.gz"), entry_point="inference.py", source_dir=str(CODE),
                           env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}, name="preprocess",
                           sagemaker_session=session)
        PipelineModel([prep_model, xgb_model()], sagemaker_session=session).deploy(endpoint_name="bench-prep")
        endpoints["preprocess + xgboost"] = "bench-prep"

        row = raw_rows(1, seed=5)
        raw_body = to_csv(row).encode()
        features = prep.transform(frame(row))
        feature_body = ("".join(",".join(f"{v:.9g}" for v in r) + "\n" for r in features)).encode()
        bodies = {name: raw_body if name == "preprocess + xgboost" else feature_body for name in endpoints}
        answers = {}
        for name, endpoint in endpoints.items():  # warm up, and the answers agree
            for _ in range(50):
                answers[name] = float(invoke_endpoint(session, endpoint, bodies[name], "text/csv", "text/csv")[0])
        assert len({round(v, 6) for v in answers.values()}) == 1, answers
        times = {name: [] for name in endpoints}
        for _ in range(requests):
            for name, endpoint in endpoints.items():
                started = time.perf_counter()
                invoke_endpoint(session, endpoint, bodies[name], "text/csv", "text/csv")
                times[name].append(time.perf_counter() - started)
        in_process = []
        import io

        import pandas as pd
        for _ in range(min(requests, 500)):
            started = time.perf_counter()
            data = pd.read_csv(io.StringIO(raw_body.decode()), header=None, names=["age", "income", "city"])
            out = io.StringIO()
            np.savetxt(out, prep.transform(data), delimiter=",", fmt="%.9g")
            in_process.append(time.perf_counter() - started)
        for endpoint in endpoints.values():
            from nbsage.serving.endpoints import delete_endpoint
            delete_endpoint(session, endpoint)
    base = p50_ms(times["xgboost"])
    result = {"requests": requests, "p50_ms": {n: round(p50_ms(t), 3) for n, t in times.items()},
              "p99_ms": {n: round(p99_ms(t), 3) for n, t in times.items()},
              "added_per_stage_ms": {k: round((p50_ms(times[f"{k} x pass-through + xgboost"]) - base) / k, 3)
                                     for k in (1, 2, 4)},
              "preprocess_stage_added_ms": round(p50_ms(times["preprocess + xgboost"]) - base, 3),
              "preprocess_in_process_ms": round(p50_ms(in_process), 3),
              "load": os.getloadavg()[0]}
    rows = "\n".join(f"| {n} | {result['p50_ms'][n]:.3f} | {result['p99_ms'][n]:.3f} | "
                     + (f"{result['added_per_stage_ms'][int(n[0])]:.3f}" if "pass-through" in n else
                        f"{result['preprocess_stage_added_ms']:.3f} (the stage's own work in process: "
                        f"{result['preprocess_in_process_ms']:.3f})" if n.startswith("preprocess") else "-")
                     + " |" for n in times)
    loaded = result["load"] > (os.cpu_count() or 1)
    body = f"""One-row CSV requests, {requests} per endpoint, interleaved, one client, keep-alive
(`python benchmarks/bench_pipelines.py {requests}`). All stages of a pipeline run in one model server
process (nbsage.runtime.serial_pipeline), so a stage adds its own parse/predict/format and nothing else.
Load average at the end: {result['load']:.1f}{LOADED if loaded else ''}.

| endpoint | p50 (ms) | p99 (ms) | added per stage over `xgboost`, p50 (ms) |
|---|---|---|---|
{rows}

Target: under 0.5 ms p50 per extra stage (the pass-through rows)."""
    write_section("Inference pipelines: latency per stage", body)
    return result


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
