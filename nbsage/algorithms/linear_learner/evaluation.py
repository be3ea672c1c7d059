"""Metrics and the binary decision threshold, vectorised over models where training needs it."""
from __future__ import annotations

import math

import numpy as np


def _safe_div(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def f_score(precision, recall, beta: float):
    b2 = beta * beta
    return _safe_div((1 + b2) * precision * recall, b2 * precision + recall)


def tune_threshold(z: np.ndarray, y: np.ndarray, criteria: str, beta: float = 1.0,
                   target_recall: float = 0.8, target_precision: float = 0.8):
    """Best decision threshold of each model for a selection criterion.

    z: scores [n, models] (a record is positive when its score > threshold); y: labels 0/1 [n].
    Returns (criterion value [models], threshold [models]). Every cut between two distinct
    scores is a candidate, and so are "all negative" and "all positive".
    """
    n, m = z.shape
    order = np.argsort(-z, axis=0)  # ties need no order: cuts between equal scores are invalid
    zs = np.take_along_axis(z, order, axis=0)
    ys = y[order]
    positives = float(y.sum())
    negatives = n - positives
    tp = np.zeros((n + 1, m))
    np.cumsum(ys, axis=0, out=tp[1:])
    predicted = np.arange(n + 1, dtype=np.float64)[:, None]
    fp = predicted - tp
    # a cut after i records is only realisable if record i-1 scores strictly above record i
    valid = np.ones((n + 1, m), dtype=bool)
    valid[1:n] = zs[:-1] > zs[1:]
    thresholds = np.empty((n + 1, m))
    thresholds[0] = zs[0]
    thresholds[n] = zs[n - 1] - 1.0
    thresholds[1:n] = 0.5 * (zs[:-1] + zs[1:])
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, positives) if positives else np.zeros_like(tp)
    if criteria == "accuracy":
        value = (tp + (negatives - fp)) / n
    elif criteria == "f_beta":
        value = f_score(precision, recall, beta)
    elif criteria == "precision_at_target_recall":
        value = np.where(recall >= target_recall - 1e-12, precision, -1.0 + precision * 1e-3)
    elif criteria == "recall_at_target_precision":
        value = np.where(precision >= target_precision - 1e-12, recall, -1.0 + precision * 1e-3)
    else:
        raise ValueError(f"no threshold is tuned for criteria {criteria!r}")
    value = np.where(valid, value, -np.inf)
    best = value.argmax(axis=0)
    cols = np.arange(m)
    chosen = value[best, cols]
    # a target that cannot be met scores 0, so that any model meeting it wins
    return np.maximum(chosen, 0.0), thresholds[best, cols]


def roc_auc(z: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); nan with one class only."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    _, inverse, counts = np.unique(z, return_inverse=True, return_counts=True)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    average_rank = starts + (counts + 1) / 2.0  # 1-based ranks, averaged over ties
    rank_sum = average_rank[inverse][y == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def binary_metrics(z: np.ndarray, y: np.ndarray, threshold_z: float, beta: float) -> dict:
    predicted = z > threshold_z
    truth = y == 1
    tp = float(np.sum(predicted & truth))
    precision = float(_safe_div(tp, predicted.sum()))
    recall = float(_safe_div(tp, truth.sum()))
    return {
        "binary_classification_accuracy": float(np.mean(predicted == truth)),
        "binary_f_beta": float(f_score(precision, recall, beta)),
        "precision": precision,
        "recall": recall,
        "roc_auc_score": roc_auc(z, y),
    }


def multiclass_metrics(z: np.ndarray, y: np.ndarray, num_classes: int, top_k: int, beta: float) -> dict:
    """z: scores [n, classes] (any monotone transform of the probabilities); y: labels [n]."""
    labels = y.astype(np.int64)
    rows = np.arange(len(labels))
    true_score = z[rows, labels]
    rank = (z > true_score[:, None]).sum(axis=1)  # 0 when the label has the top score
    predicted = z.argmax(axis=1)
    tp = np.bincount(labels[predicted == labels], minlength=num_classes).astype(np.float64)
    n_pred = np.bincount(predicted, minlength=num_classes)
    n_true = np.bincount(labels, minlength=num_classes)
    present = (n_pred + n_true) > 0
    precision = _safe_div(tp, n_pred)[present]
    recall = _safe_div(tp, n_true)[present]
    return {
        "multiclass_accuracy": float(np.mean(predicted == labels)),
        "multiclass_top_k_accuracy": float(np.mean(rank < top_k)),
        "dcg": float(np.mean(1.0 / np.log2(rank + 2.0))),
        "macro_recall": float(recall.mean()),
        "macro_precision": float(precision.mean()),
        "macro_f_beta": float(f_score(precision, recall, beta).mean()),
    }


def regression_metrics(prediction: np.ndarray, y: np.ndarray) -> dict:
    r = prediction - y
    mse = float(np.mean(r * r))
    return {"mse": mse, "rmse": math.sqrt(mse), "absolute_loss": float(np.mean(np.abs(r)))}
