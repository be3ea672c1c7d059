"""DeepAR's endpoint: `{"instances": [...], "configuration": {...}}` in, `{"predictions": [...]}` out.

Requests are `application/json` (instances plus an optional configuration) or
`application/jsonlines` (one training-format record per line, as batch transform sends them,
with the configuration taken from the DEEPAR_INFERENCE_CONFIG environment variable). Each
prediction holds only the requested `output_types` — `mean`, `quantiles` (keyed by the quantile
strings sent) and `samples` — each prediction_length long. The answer is JSON or JSON Lines (one
prediction per line, in input order) as Accept asks. All series of a request are forecast
together, num_samples x series paths in one batch.
"""
from __future__ import annotations

import json
import os

import numpy as np

from nbsage import formats
from nbsage.algorithms.deepar.predictor import DeepARPredictor
from nbsage.algorithms.deepar.records import Series, check_series, parse_record
from nbsage.errors import DataError, InvalidRequest, did_you_mean
from nbsage.inference_contract import InferenceHandler

OUTPUT_TYPES = ("mean", "quantiles", "samples")
DEFAULT_CONFIGURATION = {"num_samples": 100, "output_types": ["mean", "quantiles"],
                         "quantiles": ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]}
CONFIG_ENV = "DEEPAR_INFERENCE_CONFIG"
MAX_SAMPLES = 10_000
CONFIG_KEYS = ("num_samples", "output_types", "quantiles")


def parse_configuration(config, where: str = "configuration") -> dict:
    """Validate a request's configuration; missing keys take the defaults."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise InvalidRequest(f"{where} must be a JSON object with num_samples, output_types and quantiles")
    for key in config:
        if key not in CONFIG_KEYS:
            raise InvalidRequest(f"{where}: {key!r} is not a DeepAR inference setting; settings are "
                                 f"{', '.join(CONFIG_KEYS)}{did_you_mean(key, CONFIG_KEYS)}")
    out = {**DEFAULT_CONFIGURATION, **config}
    n = out["num_samples"]
    if isinstance(n, str) and n.strip().isdigit():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_SAMPLES:
        raise InvalidRequest(f"{where}: num_samples = {out['num_samples']!r} is not valid; expected an "
                             f"integer from 1 to {MAX_SAMPLES}")
    out["num_samples"] = n
    types = out["output_types"]
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or not types:
        raise InvalidRequest(f"{where}: output_types must be a non-empty list drawn from "
                             f"{', '.join(OUTPUT_TYPES)}")
    for t in types:
        if t not in OUTPUT_TYPES:
            raise InvalidRequest(f"{where}: output type {t!r} is not known; DeepAR answers "
                                 f"{', '.join(OUTPUT_TYPES)}{did_you_mean(str(t), OUTPUT_TYPES)}")
    out["output_types"] = list(dict.fromkeys(types))
    quantiles = out["quantiles"]
    if not isinstance(quantiles, list) or ("quantiles" in out["output_types"] and not quantiles):
        raise InvalidRequest(f"{where}: quantiles must be a list such as [\"0.1\", \"0.5\", \"0.9\"]")
    parsed = []
    for q in quantiles:
        try:
            value = float(q)
        except (TypeError, ValueError):
            value = float("nan")
        if isinstance(q, bool) or not 0 < value < 1:
            raise InvalidRequest(f"{where}: quantile {q!r} is not valid; quantiles are numbers between 0 "
                                 "and 1, e.g. \"0.9\"")
        parsed.append((q if isinstance(q, str) else json.dumps(q), value))
    out["quantiles"] = parsed
    return out


def environment_configuration() -> dict:
    """Batch transform's configuration: DEEPAR_INFERENCE_CONFIG, or the defaults."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        return parse_configuration(None)
    try:
        config = json.loads(text)
    except ValueError as e:
        raise InvalidRequest(f"environment variable {CONFIG_ENV} is not valid JSON ({e})") from None
    return parse_configuration(config, where=CONFIG_ENV)


def shape_prediction(samples: np.ndarray, config: dict) -> dict:
    """One instance's answer from its [num_samples, prediction_length] sample paths."""
    out: dict = {}
    for kind in config["output_types"]:
        if kind == "mean":
            out["mean"] = _floats(samples.mean(axis=0))
        elif kind == "quantiles":
            values = np.quantile(samples, [v for _, v in config["quantiles"]], axis=0)
            out["quantiles"] = {key: _floats(row) for (key, _), row in zip(config["quantiles"], values)}
        else:
            out["samples"] = [_floats(row) for row in samples]
    return out


def _floats(values: np.ndarray) -> list[float]:
    return np.asarray(values, dtype=np.float64).round(6).tolist()


class DeepARHandler(InferenceHandler):
    """Answers /invocations for a trained DeepAR model."""

    content_types = ("application/json", "application/jsonlines")
    accepts = ("application/json", "application/jsonlines")
    default_accept = "application/json"

    def __init__(self, predictor: DeepARPredictor):
        self.predictor = predictor

    def parse_instance(self, obj, where: str) -> Series:
        s = self.predictor.settings
        try:
            series = parse_record(obj, where)
        except DataError as e:
            raise InvalidRequest(str(e)) from None
        check_series(series, s.fields, min_length=1, future=s.prediction_length, likelihood=s.likelihood,
                     rule_lengths="a target with at least one value", error=InvalidRequest)
        if s.cardinality is None:
            series.cat = None
        if s.num_dynamic_feat is None:
            series.dynamic_feat = None
        return series.index(s.freq)

    def predict_series(self, series: list[Series], config: dict) -> list[dict]:
        if not series:
            return []
        samples = self.predictor.forecast(series, config["num_samples"])
        return [shape_prediction(paths, config) for paths in samples]

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        request = formats.read_request(body, content_type, expect="time series record")
        # batch transform's JSON Lines carry no configuration: it comes from the environment
        config = environment_configuration() if request.per_line else parse_configuration(request.configuration)
        series = [self.parse_instance(obj, where) for where, obj in request.instances]
        return formats.write_records(self.predict_series(series, config), accept)


def load(model_dir: str) -> DeepARHandler:
    """The handler for a model directory written by DeepAR training (CPU inference, as SageMaker's)."""
    from nbsage.algorithms.torch_device import set_threads
    set_threads()
    device = os.environ.get("NBSAGE_INFERENCE_DEVICE") or "cpu"  # cuda on a GPU endpoint (nbsage.serving.gpu)
    return DeepARHandler(DeepARPredictor.load(model_dir, device=device))
