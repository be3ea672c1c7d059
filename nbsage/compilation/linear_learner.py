"""Linear Learner -> ONNX: scores = features @ weights + bias as one MatMul and one Add.

The graph computes in float64, as the native model does, so the compiled scores match it to the last
bits; the sigmoid/softmax and the threshold stay in the handler (nbsage.compilation.runtime), shared
with the native model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nbsage.compilation import ONNX_FILE, CompilationError, require


def convert(model_dir: Path, out_dir: Path, input_shape) -> dict:
    from nbsage.algorithms.linear_learner.inference import LinearModel
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper
    model = LinearModel.load(model_dir)
    features, outputs = model.weights.shape
    if input_shape:
        shape = list(input_shape.values())[0] if isinstance(input_shape, dict) else input_shape
        if int(shape[-1]) != features:
            raise CompilationError(f"input_shape gives {shape[-1]} features and the model has {features} "
                                   "(feature_dim)")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "weights"], ["product"]),
         helper.make_node("Add", ["product", "bias"], ["scores"])],
        "linear_learner",
        [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, features])],
        [helper.make_tensor_value_info("scores", TensorProto.DOUBLE, [None, outputs])],
        initializer=[numpy_helper.from_array(np.asarray(model.weights, dtype=np.float64), "weights"),
                     numpy_helper.from_array(np.asarray(model.bias, dtype=np.float64), "bias")])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], producer_name="nbsage")
    onnx.checker.check_model(onnx_model)
    Path(out_dir, ONNX_FILE).write_bytes(onnx_model.SerializeToString())
    return {"PredictorType": model.predictor_type, "FeatureDim": features}


def parity_rows(model_dir: Path, n: int = 256) -> np.ndarray:
    from nbsage.algorithms.linear_learner.inference import LinearModel
    return np.random.default_rng(0).normal(size=(n, LinearModel.load(model_dir).feature_dim))


def native_predictions(model_dir: Path, rows: np.ndarray) -> np.ndarray:
    from nbsage.algorithms.linear_learner.inference import LinearModel
    return LinearModel.load(model_dir).margins(rows)


def compiled_predictions(handler, rows: np.ndarray) -> np.ndarray:
    return handler.model.margins(rows)
