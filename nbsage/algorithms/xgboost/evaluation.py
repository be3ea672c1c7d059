"""Which evaluation metrics xgboost computes and which the container computes, and how.

SageMaker's container computes accuracy, f1, r2, ... (metrics xgboost has no native name for)
with scikit-learn; numpy gives the same values here without importing scikit-learn into every job.
On several hosts a container metric is the row-weighted mean of the hosts' values.
"""
from __future__ import annotations

import numpy as np

from nbsage.algorithms.xgboost.declaration import CONTAINER_METRICS
from nbsage.errors import DataError


class EvalPlan:
    """Which metrics xgboost computes, which this module computes, and which one early stopping watches."""

    def __init__(self, hps: dict):
        requested = list(hps.get("eval_metric") or [])
        tuning = hps.get("_tuning_objective_metric")
        tuning_metric = tuning.split(":", 1)[1] if tuning else None
        metrics = requested + ([tuning_metric] if tuning_metric and tuning_metric not in requested else [])
        self.native = [m for m in metrics if m not in CONTAINER_METRICS]
        self.custom = [m for m in metrics if m in CONTAINER_METRICS]
        self.early_stopping_metric = tuning_metric or (requested[-1] if requested else None)
        objective = hps.get("objective", "reg:squarederror")
        self.custom_metric = container_metrics(self.custom, objective) if self.custom else None


def container_metrics(names: list[str], objective: str):
    """xgboost's custom_metric computing the named container metrics for one objective's predictions."""
    def evaluate(predt, dmatrix):
        labels = dmatrix.get_label()
        if predt.ndim == 1 and predt.size != labels.size and labels.size:
            predt = predt.reshape(labels.size, -1)
        predicted = _predicted_labels(predt, objective)
        return [(name, float(_METRIC_FUNCTIONS[name](labels, predicted, predt))) for name in names]
    return evaluate


def _predicted_labels(predt, objective: str):
    if predt.ndim == 2:
        return predt.argmax(axis=1)
    if objective == "binary:logitraw":
        return (predt > 0).astype(np.int64)
    if objective in ("binary:logistic", "reg:logistic"):
        return (predt > 0.5).astype(np.int64)
    return np.rint(predt)


def _confusion(y, p):
    """Per-class true positives, predicted counts and true counts over the classes seen in y or p."""
    y, p = np.rint(y).astype(np.int64), np.asarray(p).astype(np.int64)
    classes = np.union1d(y, p)
    yi, pi = np.searchsorted(classes, y), np.searchsorted(classes, p)
    k = len(classes)
    cm = np.bincount(yi * k + pi, minlength=k * k).reshape(k, k)
    return classes, np.diag(cm).astype(np.float64), cm.sum(axis=0).astype(np.float64), cm.sum(axis=1).astype(np.float64)


def _ratio(a, b):
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)  # 0 where undefined, as scikit-learn


def _f1(precision, recall):
    return _ratio(2 * precision * recall, precision + recall)


def _binary(metric: str, y, p):
    classes, tp, predicted, actual = _confusion(y, p)
    if not set(classes.tolist()) <= {0, 1}:
        raise DataError(f"eval_metric {metric!r} is for binary labels 0 and 1, and the labels and predictions hold "
                        f"classes {classes.tolist()[:10]}; use {metric.split('_')[0]}_macro for more classes")
    where = np.searchsorted(classes, 1)
    if where >= len(classes) or classes[where] != 1:
        return 0.0, 0.0
    precision = _ratio(tp[where:where + 1], predicted[where:where + 1])[0]
    recall = _ratio(tp[where:where + 1], actual[where:where + 1])[0]
    return precision, recall


def _macro(y, p):
    _, tp, predicted, actual = _confusion(y, p)
    precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
    return precision.mean(), recall.mean(), _f1(precision, recall).mean()


def _balanced_accuracy(y, p):
    _, tp, _, actual = _confusion(y, p)
    present = actual > 0
    return (tp[present] / actual[present]).mean()


def _r2(y, predt):
    predt = predt if predt.ndim == 1 else predt.argmax(axis=1)
    residual = float(((y - predt) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


def _mse(y, predt):
    predt = predt if predt.ndim == 1 else predt.argmax(axis=1)
    return float(((y - predt) ** 2).mean())


_METRIC_FUNCTIONS = {
    "accuracy": lambda y, p, raw: float((np.rint(y) == p).mean()),
    "balanced_accuracy": lambda y, p, raw: _balanced_accuracy(y, p),
    "f1": lambda y, p, raw: _macro(y, p)[2],
    "f1_macro": lambda y, p, raw: _macro(y, p)[2],
    "f1_binary": lambda y, p, raw: float(_f1(*(np.array([v]) for v in _binary("f1_binary", y, p)))[0]),
    "precision": lambda y, p, raw: _binary("precision", y, p)[0],
    "recall": lambda y, p, raw: _binary("recall", y, p)[1],
    "precision_macro": lambda y, p, raw: _macro(y, p)[0],
    "recall_macro": lambda y, p, raw: _macro(y, p)[1],
    # single-label classification: micro precision = micro recall = accuracy
    "precision_micro": lambda y, p, raw: float((np.rint(y) == p).mean()),
    "recall_micro": lambda y, p, raw: float((np.rint(y) == p).mean()),
    "mse": lambda y, p, raw: _mse(y, raw),
    "r2": lambda y, p, raw: _r2(y, raw),
}


def shared_metric(evaluate, names: list[str]):
    """A container metric over all hosts: the row-weighted mean of each host's value (exact for
    accuracy and mse; close for f1, r2 and the other ratios), the same on every host, so that early
    stopping decides alike everywhere."""
    def shared(predt, dmatrix):
        from nbsage.algorithms import distributed
        rows = dmatrix.num_row()
        values = [v for _, v in evaluate(predt, dmatrix)] if rows else [0.0] * len(names)
        local = np.array([v * rows for v in values], dtype=np.float64)
        totals = distributed.allreduce(np.append(local, float(rows)), "sum")
        return [(name, float(totals[i] / totals[-1]) if totals[-1] else 0.0) for i, name in enumerate(names)]
    return shared

