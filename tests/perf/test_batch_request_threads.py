"""XGBoost's threads per request: every core on an endpoint, a batch container's share in a transform.

Batch transform keeps MaxConcurrentTransforms requests in flight per instance, so a batch
container's large request predicts on cores / MaxConcurrentTransforms threads (the workers when the
job leaves it unset); the predictions are the same whichever thread count answers.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from nbsage.algorithms.xgboost import inference
from nbsage.formats import text_csv

CORES = os.cpu_count() or 1


@pytest.mark.parametrize("env, threads", [
    ({}, CORES),
    ({"SAGEMAKER_BATCH": "true"}, 1),
    ({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "1"}, CORES),
    ({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}, CORES),
    ({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "x"}, 1),
])
def test_request_threads(monkeypatch, env, threads):
    for name in ("SAGEMAKER_BATCH", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "SAGEMAKER_MODEL_SERVER_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert inference.request_threads() == threads


def test_one_thread_and_every_core_answer_the_same(tmp_path):
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(X, label=X[:, 0] > 0), 5)
    booster.save_model(str(tmp_path / "xgboost-model"))
    body = text_csv.write_rows(X)
    answers = []
    for threads in (1, CORES):
        handler = inference.load(tmp_path)
        handler.threads = threads
        answers.append(handler.invoke(body, "text/csv", "text/csv")[0])
    assert answers[0] == answers[1] and answers[0].count(b"\n") == len(X) - 1
    assert handler.invoke(b"  \n\n", "text/csv", "text/csv")[0] == b""  # whitespace only: 204, no copy made


def _answer(read, body):
    try:
        return "rows", read(body).tobytes()
    except Exception as e:  # noqa: BLE001 - the error's text is what is compared
        return type(e).__name__, str(e)


@pytest.mark.parametrize("rows", [100, 2500, 40000])  # one thread, pyarrow's threads, a batch's payload
@pytest.mark.parametrize("bad", [None, b"1,2,x,4", b"1,2,3", b"1,,3,4"])
def test_every_body_size_reads_as_cell_by_cell(rows, bad):
    lines = [",".join(f"{v:.5g}" for v in row).encode()
             for row in np.random.default_rng(rows).normal(size=(rows, 4)).astype(np.float32)]
    if bad is not None:
        lines[rows * 2 // 3] = bad
    body = b"\n".join(lines) + b"\n"
    expected = _answer(text_csv._read_features_by_cell, body)
    assert _answer(text_csv.read_features, body) == expected
    for threads in (True, False):  # whichever way the machine's load decides
        rows = text_csv._read_features_whole(body, threads)
        if bad is None:
            assert ("rows", rows.tobytes()) == expected
        else:
            assert rows is None  # the cell-by-cell parser then names the line and cell
