"""XGBoost -> ONNX through onnxmltools' tree-ensemble converter (ai.onnx.ml TreeEnsemble*).

XGBoost compares float32 features with float32 thresholds, as ONNX's tree ensembles do, so the compiled
model agrees with xgboost to float32 rounding of the sum of leaves. The objectives whose output the
converter reproduces are the ones accepted here; any other is refused naming it (onnxmltools 1.16
writes reg:logistic and count:poisson models whose output is not xgboost's). k-fold models (several
boosters averaged) are refused too: compile one fold's model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nbsage.compilation import ONNX_FILE, CompilationError, require

SUPPORTED_OBJECTIVES = ("binary:logistic", "multi:softprob", "multi:softmax", "reg:squarederror", "reg:linear",
                        "reg:absoluteerror", "reg:pseudohubererror")


def booster_of(model_dir):
    from nbsage.algorithms.xgboost.model import load_booster, model_files
    files = model_files(model_dir)
    if len(files) > 1:
        raise CompilationError(f"{model_dir} holds {len(files)} k-fold models ({files[0].name} ...); compilation "
                               "takes one booster: compile one fold's model")
    return load_booster(files[0])


def to_onnx(booster, num_features: int, margin: bool = False):
    """The ONNX model of a booster; with margin=True the raw sum of leaves (no sigmoid/softmax)."""
    require("onnx")
    require("onnxmltools")
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    try:
        model = convert_xgboost(booster, initial_types=[("features", FloatTensorType([None, num_features]))],
                                target_opset=15)
    except Exception as exc:  # noqa: BLE001 - the converter's own words, named
        raise CompilationError(f"onnxmltools could not convert this XGBoost model: {exc}") from None
    if margin:
        for node in model.graph.node:
            for attribute in node.attribute:
                if attribute.name == "post_transform":
                    attribute.s = b"NONE"
    return model


def output_of(objective: str) -> tuple[str, int | None]:
    """(ONNX output name, column) that holds xgboost's prediction for an objective."""
    if objective == "binary:logistic":
        return "probabilities", 1
    if objective == "multi:softprob":
        return "probabilities", None
    if objective == "multi:softmax":
        return "label", None
    return "variable", None


def convert(model_dir: Path, out_dir: Path, input_shape: dict | None) -> dict:
    """Write out_dir/model.onnx for the booster in model_dir; returns the manifest's algorithm part."""
    booster = booster_of(model_dir)
    config = json.loads(booster.save_config())["learner"]
    objective = config["objective"]["name"]
    if objective not in SUPPORTED_OBJECTIVES:
        raise CompilationError(f"objective {objective!r} is not supported by the XGBoost compiler; it compiles "
                               f"{', '.join(SUPPORTED_OBJECTIVES)}")
    num_features = booster.num_features()
    shape = _given_width(input_shape)
    if shape is not None and shape != num_features:
        raise CompilationError(f"input_shape gives {shape} features and the model has {num_features}")
    model = to_onnx(booster, num_features)
    Path(out_dir, ONNX_FILE).write_bytes(model.SerializeToString())
    output, column = output_of(objective)
    return {"Objective": objective, "NumClass": int(config["learner_model_param"].get("num_class", 0) or 0),
            "NumFeatures": num_features, "Output": output, "Column": column}


def _given_width(input_shape) -> int | None:
    if not input_shape:
        return None
    shape = list(input_shape.values())[0] if isinstance(input_shape, dict) else input_shape
    try:
        return int(shape[-1])
    except (TypeError, ValueError, IndexError):
        raise CompilationError(f"input_shape {input_shape!r} is not a shape such as {{'data': [1, 30]}}") from None


def parity_rows(model_dir: Path, n: int = 256) -> np.ndarray:
    """Rows that reach many leaves: each feature drawn from the model's own split thresholds, jittered."""
    booster = booster_of(model_dir)
    rng = np.random.default_rng(0)
    thresholds: dict[int, list[float]] = {}
    for tree in json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]:
        for index, cond, left in zip(tree["split_indices"], tree["split_conditions"], tree["left_children"]):
            if left != -1:
                thresholds.setdefault(int(index), []).append(float(cond))
    rows = rng.normal(size=(n, booster.num_features()))
    for feature, values in thresholds.items():
        rows[:, feature] = rng.choice(values, n) + rng.normal(scale=1e-3, size=n)
    return rows.astype(np.float32)


def native_predictions(model_dir: Path, rows: np.ndarray) -> np.ndarray:
    booster = booster_of(model_dir)
    booster.set_param({"nthread": 1})
    return booster.inplace_predict(rows)


def compiled_predictions(handler, rows: np.ndarray) -> np.ndarray:
    return handler.predictions(rows)
