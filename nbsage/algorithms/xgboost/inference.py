"""XGBoost's endpoint: `load(model_dir)` and the handler that answers /invocations.

Requests: text/csv (features only), text/libsvm (label optional), application/json
(`{"instances": [{"features": [...]}]}`, `{"data": {"features": {"values": [...]}}}`, or a list
of rows) and application/jsonlines (one such record a line), all read through nbsage.formats.
Responses: text/csv (one prediction a line; softprob rows comma-joined), application/json
`{"predictions": [{"score": ...}]}` and application/jsonlines `{"score": ...}` a line; with
SAGEMAKER_INFERENCE_OUTPUT the records hold the selected keys (see `output_keys`). An empty
request is answered 204 No Content, as SageMaker's XGBoost does. k-fold models are averaged, or
voted for multi:softmax and binary:hinge.
"""
from __future__ import annotations

import json
import os

import numpy as np

from nbsage import formats
from nbsage.algorithms.xgboost import output_keys
from nbsage.algorithms.xgboost.model import load_booster, model_files
from nbsage.errors import DataError, InvalidRequest
from nbsage.formats.text_csv import write_rows
from nbsage.inference_contract import EMPTY_BODY_IS_NO_CONTENT, InferenceHandler

# requests of at least this many rows use every core; smaller ones one thread (lowest latency)
_PARALLEL_ROWS = 1024


def request_threads() -> int:
    """Threads one large request predicts with: every core on an endpoint; in a batch container
    (SAGEMAKER_BATCH), its share of the cores, since batch transform keeps MaxConcurrentTransforms
    requests in flight (the container's workers: one per core, unless the job says otherwise) and
    threads beyond the cores only wait on each other (a third more CPU for the same rows)."""
    cores = os.cpu_count() or 1
    if os.environ.get("SAGEMAKER_BATCH", "").lower() != "true":
        return cores
    try:
        concurrent = int(os.environ.get("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "") or 0)
    except ValueError:
        concurrent = 0
    if concurrent <= 0:
        try:
            concurrent = int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "") or cores)
        except ValueError:
            concurrent = cores
    return max(1, cores // max(1, concurrent))


def _scores(preds) -> list:
    """float32 -> the shortest decimal that reads back as the same float32 (0.4386, not 0.43860000371)."""
    if preds.ndim == 1:
        return [float(s) for s in map(str, preds.astype(np.float32))]
    return [[float(s) for s in map(str, row)] for row in preds.astype(np.float32)]


# response body by Accept: the predictions as they are, or the SAGEMAKER_INFERENCE_OUTPUT records
_WRITERS = {
    "text/csv": write_rows,
    "application/json": lambda preds: json.dumps({"predictions": [{"score": s} for s in _scores(preds)]}).encode(),
    "application/jsonlines": lambda preds: "\n".join(json.dumps({"score": s}) for s in _scores(preds)).encode(),
}
_RECORD_WRITERS = {
    "text/csv": output_keys.to_csv,
    "application/json": lambda records, keys: json.dumps({"predictions": records}).encode(),
    "application/jsonlines": lambda records, keys: "\n".join(json.dumps(r) for r in records).encode(),
}


class XGBoostHandler(InferenceHandler):
    """Answers /invocations for one or more boosters (k-fold models are averaged, or voted)."""

    content_types = ("text/csv", "text/libsvm", "application/json", "application/jsonlines")
    accepts = tuple(_WRITERS)
    default_accept = "text/csv"
    empty_body_status = EMPTY_BODY_IS_NO_CONTENT  # SageMaker's XGBoost answers an empty request with 204

    def __init__(self, boosters: list, objective: str, num_class: int, num_features: int,
                 selected_keys: list[str] | None = None, default_accept: str | None = None,
                 threads: int | None = None):
        self.boosters = boosters
        self._parallel = None
        self.threads = threads or os.cpu_count() or 1  # for a large request (request_threads)
        self.objective, self.num_class, self.num_features = objective, num_class, num_features
        self.selected_keys = selected_keys
        if default_accept in self.accepts:
            self.default_accept = default_accept
        self.vote = objective in ("multi:softmax", "binary:hinge") and len(boosters) > 1

    def parse(self, body: bytes, content_type: str):
        """Request body -> dense float32 rows or CSR, checked against the model's feature count."""
        try:
            rows = formats.read_features(body, content_type, self.num_features)
        except DataError as e:
            raise InvalidRequest(str(e)) from None
        except UnicodeDecodeError as e:
            raise InvalidRequest(f"{content_type} request is not UTF-8 text (byte {e.start})") from None
        width = rows.shape[1]
        if hasattr(rows, "tocsr"):
            if width > self.num_features:
                raise InvalidRequest(
                    f"{content_type} request has feature index {width - 1}, and the model has {self.num_features} "
                    f"features (indices 0..{self.num_features - 1})")
            if width < self.num_features:
                rows.resize((rows.shape[0], self.num_features))
        elif width != self.num_features:
            raise InvalidRequest(
                f"{content_type} request has {width} features per row, and the model expects "
                f"{self.num_features}" + (" (send features only, no label column)" if width == self.num_features + 1
                                          else ""))
        return rows

    def predictions(self, rows):
        """Raw predictions (probabilities, class indices or values), averaged or voted over models."""
        boosters = self.boosters
        if rows.shape[0] >= _PARALLEL_ROWS and self.threads > 1:
            boosters = self._parallel_boosters()
        outputs = [b.inplace_predict(rows) for b in boosters]
        if len(outputs) == 1:
            return outputs[0]
        stacked = np.stack(outputs)
        if self.vote:
            votes = np.rint(stacked).astype(np.int64)
            return np.apply_along_axis(lambda v: np.bincount(v - v.min()).argmax() + v.min(), 0, votes).astype(np.float32)
        return stacked.mean(axis=0)

    def _parallel_boosters(self):
        if self._parallel is None:
            copies = [b.copy() for b in self.boosters]
            for b in copies:
                b.set_param({"nthread": self.threads})
            self._parallel = copies
        return self._parallel

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        if not body or body.isspace():  # (strip() would copy a 6 MB batch to find out)
            return b""  # SageMaker answers an empty request with 204 No Content
        preds = self.predictions(self.parse(body, content_type))
        if self.selected_keys:
            records = [output_keys.select(p, self.selected_keys, self.objective, self.num_class)
                       for p in _scores(preds)]
            return _RECORD_WRITERS[accept](records, self.selected_keys)
        return _WRITERS[accept](preds)


def load(model_dir) -> XGBoostHandler:
    """The inference handler for a model directory holding xgboost-model (or xgboost-model-0..k-1)."""
    models = model_files(model_dir)
    boosters = []
    device = os.environ.get("NBSAGE_INFERENCE_DEVICE") or "cpu"  # cuda on a GPU endpoint (nbsage.serving.gpu)
    for path in models:
        booster = load_booster(path)
        booster.set_param({"nthread": 1, "device": device})
        boosters.append(booster)
    config = json.loads(boosters[0].save_config())["learner"]
    objective = config["objective"]["name"]
    num_class = int(config["learner_model_param"].get("num_class", 0) or 0)
    num_features = boosters[0].num_features()
    for path, booster in zip(models, boosters):
        if booster.num_features() != num_features:
            raise DataError(f"{path} has {booster.num_features()} features and {models[0]} {num_features}; "
                            "the models of one directory must share their features")
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").split(";")[0].strip().lower() or None
    return XGBoostHandler(boosters, objective, num_class, num_features,
                          output_keys.from_environment(), default_accept, request_threads())
