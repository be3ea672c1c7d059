"""SAGEMAKER_INFERENCE_OUTPUT: the keys an XGBoost endpoint's response records hold.

SageMaker's XGBoost container lets a model (or an inference pipeline) choose what each prediction
record says: `predicted_label`, `labels`, `probability`, `probabilities`, `raw_score`,
`raw_scores`, `predicted_score`. Which keys apply depends on the objective; a key that does not
apply is NaN, as in the container.
"""
from __future__ import annotations

import json
import os

from nbsage.errors import ValidationError

SELECTABLE_KEYS = ("predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores",
                   "predicted_score")
_VALID_KEYS = {
    "reg:squarederror": ("predicted_score",), "reg:linear": ("predicted_score",),
    "reg:logistic": ("predicted_score",), "reg:gamma": ("predicted_score",), "reg:tweedie": ("predicted_score",),
    "reg:pseudohubererror": ("predicted_score",), "reg:squaredlogerror": ("predicted_score",),
    "reg:absoluteerror": ("predicted_score",), "count:poisson": ("predicted_score",),
    "binary:logistic": SELECTABLE_KEYS[:6], "multi:softprob": SELECTABLE_KEYS[:6],
    "binary:logitraw": ("predicted_label", "labels", "raw_score", "raw_scores"),
    "binary:hinge": ("predicted_label", "labels", "raw_score", "raw_scores"),
    "multi:softmax": ("predicted_label", "labels", "raw_score", "raw_scores"),
}


def from_environment() -> list[str] | None:
    """The keys SAGEMAKER_INFERENCE_OUTPUT selects, or None when it is not set."""
    if not os.environ.get("SAGEMAKER_INFERENCE_OUTPUT"):
        return None
    selected = [k for k in os.environ["SAGEMAKER_INFERENCE_OUTPUT"].replace(" ", "").lower().split(",") if k]
    unknown = [k for k in selected if k not in SELECTABLE_KEYS]
    if unknown:
        raise ValidationError(f"SAGEMAKER_INFERENCE_OUTPUT: {unknown[0]!r} is not a selectable key; "
                              f"choose from {', '.join(SELECTABLE_KEYS)}")
    return selected


def select(score, keys: list[str], objective: str, num_class: int) -> dict:
    """One prediction (a number, or a list of class probabilities) as a record of the selected keys."""
    valid = _VALID_KEYS.get(objective, ())
    labels = list(range(num_class)) if objective.startswith("multi:") else [0, 1]
    out = {}
    for key in keys:
        if key not in valid:
            out[key] = float("nan")
        elif key == "predicted_label":
            out[key] = _predicted_label(score, objective)
        elif key == "labels":
            out[key] = labels
        elif key in ("probability", "raw_score"):
            out[key] = max(score) if isinstance(score, list) else score
        elif key in ("probabilities", "raw_scores"):
            out[key] = score if isinstance(score, list) else [1.0 - score, score]
        elif key == "predicted_score":
            out[key] = score
    return out


def _predicted_label(score, objective: str):
    if isinstance(score, list):
        return max(range(len(score)), key=score.__getitem__)
    if objective == "binary:logistic":
        return int(score > 0.5)
    if objective == "binary:logitraw":
        return int(score > 0)
    return score


def to_csv(records: list[dict], keys: list[str]) -> bytes:
    """The records as text/csv, one a line, the keys in the order selected; a list is one quoted cell."""
    lines = []
    for record in records:
        cells = []
        for key in keys:
            value = record[key]
            cells.append(f'"{json.dumps(value)}"' if isinstance(value, list) else json.dumps(value))
        lines.append(",".join(cells))
    return "\n".join(lines).encode()
