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
