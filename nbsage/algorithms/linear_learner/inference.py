"""The saved Linear Learner model and the handler that serves it.

A model directory holds `linear-learner-model.npz` (weights [features, outputs] and bias
[outputs], on raw features) and `linear-learner-model.json` (predictor type, loss, decision
threshold, and how the model was chosen). Requests are text/csv, application/json or
application/jsonlines; responses are SageMaker's:

* binary: `{"score": p, "predicted_label": 0|1}` — p is P(label=1) with logistic loss, the raw
  margin with hinge_loss; predicted_label is 1 when score > the tuned threshold;
* multiclass: `{"score": [p0, ..., pk], "predicted_label": k}` (softmax probabilities);
* regressor: `{"score": y}`;

inside `{"predictions": [...]}` for application/json, one per line for application/jsonlines.
text/csv answers one predicted_label (classifiers) or score (regressor) per line.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nbsage import formats
from nbsage.errors import DataError, InvalidRequest
from nbsage.inference_contract import InferenceHandler

WEIGHTS_FILE = "linear-learner-model.npz"
SETTINGS_FILE = "linear-learner-model.json"
FORMAT = "nbsage-linear-learner"
FORMAT_VERSION = 1


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class LinearModel:
    """A linear model on raw features: scores = x @ weights + bias."""

    weights: np.ndarray          # [features, outputs]
    bias: np.ndarray             # [outputs]
    predictor_type: str
    loss: str
    num_classes: int
    threshold: float | None = None  # binary: on the score's scale (probability for logistic)
    info: dict = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.weights.shape[0])

    def score_threshold(self) -> float:
        """predicted_label is 1 above this score (0.5 probability, or margin 0, unless tuned)."""
        if self.threshold is not None:
            return float(self.threshold)
        return 0.5 if self.loss == "logistic" else 0.0

    def threshold_margin(self) -> float:
        """The threshold on the linear score (logit for logistic loss)."""
        t = self.score_threshold()
        if self.loss == "logistic":
            t = min(max(t, 1e-300), 1.0 - 1e-16)
            return float(np.log(t) - np.log1p(-t))
        return t

    def margins(self, x: np.ndarray) -> np.ndarray:
        """The linear scores x @ weights + bias [n, outputs] (a compiled model computes these its own way)."""
        return x.astype(np.float64) @ self.weights + self.bias

    def predict(self, x: np.ndarray) -> dict:
        """{"score": ..., "predicted_label": ...} arrays for feature rows x [n, features]."""
        if x.ndim != 2 or x.shape[1] != self.feature_dim:
            got = x.shape[1] if x.ndim == 2 else "?"
            raise InvalidRequest(f"records have {got} features; this model was trained on "
                                 f"{self.feature_dim} (feature_dim)")
        z = self.margins(x)
        if self.predictor_type == "binary_classifier":
            score = _sigmoid(z[:, 0]) if self.loss == "logistic" else z[:, 0]
            return {"score": score, "predicted_label": (score > self.score_threshold()).astype(np.int64)}
        if self.predictor_type == "multiclass_classifier":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            return {"score": p, "predicted_label": p.argmax(axis=1)}
        return {"score": z[:, 0]}

    def records(self, x: np.ndarray) -> list[dict]:
        """One SageMaker response record per row."""
        out = self.predict(x)
        score = out["score"]
        if "predicted_label" not in out:
            return [{"score": float(s)} for s in score]
        labels = out["predicted_label"]
        if score.ndim == 2:
            return [{"score": [float(v) for v in row], "predicted_label": int(k)}
                    for row, k in zip(score, labels)]
        return [{"score": float(s), "predicted_label": int(k)} for s, k in zip(score, labels)]

    def save(self, model_dir: Path) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        np.savez(model_dir / WEIGHTS_FILE, weights=self.weights, bias=self.bias)
        settings = {"format": FORMAT, "version": FORMAT_VERSION,
                    "predictor_type": self.predictor_type, "loss": self.loss,
                    "num_classes": self.num_classes, "feature_dim": self.feature_dim,
                    "threshold": self.threshold, **self.info}
        (model_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=1, default=_jsonable))

    @classmethod
    def load(cls, model_dir) -> "LinearModel":
        model_dir = Path(model_dir)
        settings_path, weights_path = model_dir / SETTINGS_FILE, model_dir / WEIGHTS_FILE
        if not settings_path.exists() or not weights_path.exists():
            raise DataError(f"{model_dir} holds no Linear Learner model: expected {SETTINGS_FILE} and "
                            f"{WEIGHTS_FILE} (written by a linear-learner training job)")
        try:
            settings = json.loads(settings_path.read_text())
            with np.load(weights_path) as arrays:
                weights, bias = arrays["weights"], arrays["bias"]
        except (ValueError, KeyError, OSError) as e:
            raise DataError(f"{model_dir}: the Linear Learner model files are damaged ({e})") from None
        if settings.get("format") != FORMAT or int(settings.get("version", 0)) > FORMAT_VERSION:
            raise DataError(f"{settings_path}: not a Linear Learner model this version of nbsage reads "
                            f"(format {settings.get('format')!r}, version {settings.get('version')!r})")
        if weights.ndim != 2 or bias.shape != (weights.shape[1],):
            raise DataError(f"{weights_path}: weights {weights.shape} and bias {bias.shape} do not fit")
        known = {"format", "version", "predictor_type", "loss", "num_classes", "feature_dim", "threshold"}
        return cls(weights=weights, bias=bias, predictor_type=settings["predictor_type"],
                   loss=settings["loss"], num_classes=int(settings["num_classes"]),
                   threshold=settings.get("threshold"),
                   info={k: v for k, v in settings.items() if k not in known})


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class LinearLearnerHandler(InferenceHandler):
    """Answers /invocations for a Linear Learner model."""

    content_types = ("text/csv", "application/json", "application/jsonlines")
    accepts = ("application/json", "application/jsonlines", "text/csv")
    default_accept = "application/json"

    def __init__(self, model: LinearModel, default_accept: str | None = None):
        self.model = model
        if default_accept in self.accepts:
            self.default_accept = default_accept

    def features(self, body: bytes, content_type: str) -> np.ndarray:
        """Feature rows of a request body (a JSON record's width is checked against feature_dim)."""
        return formats.read_features(body, content_type, num_features=self.model.feature_dim)

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        records = self.model.records(self.features(body, content_type))
        column = "score" if self.model.predictor_type == "regressor" else "predicted_label"
        return formats.write_records(records, accept, column=column)


def load(model_dir) -> LinearLearnerHandler:
    """The inference handler of a Linear Learner model directory.

    SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, as in SageMaker, answers requests without an Accept.
    """
    accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").split(";")[0].strip().lower()
    return LinearLearnerHandler(LinearModel.load(model_dir), accept or None)
