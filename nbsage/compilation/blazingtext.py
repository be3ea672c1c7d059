"""BlazingText's supervised classifier -> ONNX: softmax(mean of w_in[rows] @ w_out.T).

Tokenising, the word ids and the hashed word n-gram buckets stay in Python (they are string work a
graph does badly); the graph takes each text's embedding rows, padded to the longest text with the
model's zero row, and their count, and computes the class probabilities. Word2Vec models (word
vectors, no classifier) do not compile: there is no network to run, a vector lookup is already as
fast as it gets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nbsage.compilation import ONNX_FILE, CompilationError, require


def _classifier(model_dir):
    from nbsage.algorithms.blazingtext.model import ClassifierModel, load_model
    model = load_model(model_dir)
    if not isinstance(model, ClassifierModel):
        raise CompilationError(f"{model_dir} holds BlazingText word vectors (Word2Vec mode); only the supervised "
                               "classifier (mode='supervised') compiles")
    return model


def convert(model_dir: Path, out_dir: Path, input_shape) -> dict:
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper
    model = _classifier(model_dir)
    labels, dim = model.w_out.shape
    graph = helper.make_graph(
        [helper.make_node("Gather", ["w_in", "rows"], ["embedded"], axis=0),
         helper.make_node("ReduceSum", ["embedded", "axis_1"], ["summed"], keepdims=0),
         helper.make_node("Div", ["summed", "counts"], ["hidden"]),
         helper.make_node("MatMul", ["hidden", "w_out_t"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "blazingtext_supervised",
        [helper.make_tensor_value_info("rows", TensorProto.INT64, [None, None]),
         helper.make_tensor_value_info("counts", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, labels])],
        initializer=[numpy_helper.from_array(np.asarray(model.w_in, dtype=np.float32), "w_in"),
                     numpy_helper.from_array(np.ascontiguousarray(np.asarray(model.w_out, dtype=np.float32).T),
                                             "w_out_t"),
                     numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_1")])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], producer_name="nbsage")
    onnx.checker.check_model(onnx_model)
    Path(out_dir, ONNX_FILE).write_bytes(onnx_model.SerializeToString())
    return {"Labels": int(labels), "Dim": int(dim)}


def parity_rows(model_dir: Path, n: int = 256) -> list[str]:
    """Texts of 1 to 12 words of the model's vocabulary (and one unknown word)."""
    model = _classifier(model_dir)
    rng = np.random.default_rng(0)
    words = list(model.words) + ["an-unknown-word"]
    return [" ".join(rng.choice(words, int(rng.integers(1, 13)))) for _ in range(n)]


def native_predictions(model_dir: Path, texts: list[str]) -> np.ndarray:
    model = _classifier(model_dir)
    ptr, rows = model.rows([t.split() for t in texts])
    return model.probabilities(ptr, rows)


def compiled_predictions(handler, texts: list[str]) -> np.ndarray:
    model = handler.model
    ptr, rows = model.rows([t.split() for t in texts])
    return model.probabilities(ptr, rows)
