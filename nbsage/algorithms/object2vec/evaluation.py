"""Object2Vec's validation and test metrics, in SageMaker's names.

softmax: `accuracy` (share of pairs whose most likely class is the label) and `cross_entropy`
(mean negative log-likelihood of the label, natural log); mean_squared_error: `mean_squared_error`.
`loss` is what early stopping compares: cross_entropy or mean_squared_error.
"""
from __future__ import annotations

import numpy as np

from nbsage.algorithms.object2vec.predictor import Object2VecPredictor
from nbsage.algorithms.object2vec.records import Pairs


def score(predictor: Object2VecPredictor, pairs: Pairs) -> dict:
    """{metric name: value} of the model on `pairs`, and 'loss'."""
    out = predictor.outputs(pairs.in0, pairs.in1)
    y = pairs.labels
    if predictor.config.output_layer == "softmax":
        shifted = out - out.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        labels = y.astype(np.int64)
        ce = float(-log_p[np.arange(len(labels)), labels].mean())
        acc = float((out.argmax(axis=1) == labels).mean())
        return {"accuracy": acc, "cross_entropy": ce, "loss": ce}
    mse = float(np.mean((out.astype(np.float64) - y) ** 2))
    return {"mean_squared_error": mse, "loss": mse}


def reported(metrics: dict) -> list[tuple[str, str, float]]:
    """(name, 'score' or 'loss', value) of each metric SageMaker reports, in its log order."""
    kinds = {"accuracy": "score", "cross_entropy": "loss", "mean_squared_error": "loss"}
    return [(name, kinds[name], metrics[name]) for name in kinds if name in metrics]
