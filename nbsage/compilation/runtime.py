"""Serving a compiled model: the algorithm's own handler, with its arithmetic run by onnxruntime.

A compiled model directory holds the original model files, `model.onnx` and `nbsage-compilation.json`.
Its handler is the algorithm's handler (same request parsing, same response records, same errors) with
the part the graph computes swapped in: XGBoost's tree sums, Linear Learner's scores, BlazingText's
class probabilities, DeepAR's network step, Object Detection's SSD network. onnxruntime runs on the CPU,
or on CUDA where the endpoint has a GPU (NBSAGE_INFERENCE_DEVICE=cuda) and onnxruntime has the CUDA
provider. The model server loads this module (nbsage.runtime.serve), so it imports neither the store nor serving.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from nbsage.compilation import MANIFEST, ONNX_FILE, CompilationError, require


def is_compiled(model_dir) -> bool:
    return (Path(model_dir) / MANIFEST).is_file()


def read_manifest(model_dir) -> dict:
    return json.loads((Path(model_dir) / MANIFEST).read_text())


def providers() -> list[str]:
    """onnxruntime's execution providers: CUDA first on a GPU endpoint when onnxruntime has it."""
    ort = require("onnxruntime")
    available = ort.get_available_providers()
    if os.environ.get("NBSAGE_INFERENCE_DEVICE") == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session(model_dir, threads: int = 1):
    """An onnxruntime InferenceSession of model_dir/model.onnx (one intra-op thread: lowest latency
    for the small requests an endpoint gets, as the native handlers use)."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(Path(model_dir) / ONNX_FILE), sess_options=options, providers=providers())


def load(model_dir, algorithm: str):
    """The handler of a compiled model directory (see the module docstring)."""
    manifest = read_manifest(model_dir)
    if manifest.get("Algorithm") != algorithm:
        raise CompilationError(f"{model_dir} was compiled from a {manifest.get('Algorithm')} model, "
                               f"not {algorithm}")
    loader = {"xgboost": _xgboost, "linear-learner": _linear_learner, "blazingtext": _blazingtext,
              "deepar": _deepar, "object-detection": _object_detection}[algorithm]
    return loader(model_dir, manifest)


# ---- XGBoost ---------------------------------------------------------------------------------------
def _xgboost(model_dir, manifest):
    from nbsage.algorithms.xgboost import output_keys
    from nbsage.algorithms.xgboost.inference import XGBoostHandler

    class CompiledXGBoostHandler(XGBoostHandler):
        """XGBoost's handler with the tree sums run by onnxruntime."""

        def __init__(self, onnx_session, output: str, column, **kwargs):
            super().__init__([], **kwargs)
            self.session, self.output, self.column = onnx_session, output, column
            self.input = onnx_session.get_inputs()[0].name
            self._parallel_session = None

        def _session_for(self, rows: int):
            """One thread for small requests (lowest latency), every core for large ones, as natively."""
            from nbsage.algorithms.xgboost.inference import _PARALLEL_ROWS
            if rows < _PARALLEL_ROWS or (os.cpu_count() or 1) == 1:
                return self.session
            if self._parallel_session is None:
                self._parallel_session = session(model_dir, threads=os.cpu_count() or 1)
            return self._parallel_session

        def predictions(self, rows):
            if hasattr(rows, "tocsr"):  # an absent sparse entry is missing to xgboost, not zero
                csr = rows.tocsr()
                dense = np.full(csr.shape, np.nan, dtype=np.float32)
                dense[csr.nonzero()] = csr.data
            else:
                dense = np.ascontiguousarray(rows, dtype=np.float32)
            out = self._session_for(len(dense)).run([self.output], {self.input: dense})[0]
            if self.column is not None:
                out = out[:, self.column]
            elif out.ndim == 2 and out.shape[1] == 1:
                out = out[:, 0]
            return out.astype(np.float32)

    part = manifest["Model"]
    accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").split(";")[0].strip().lower() or None
    return CompiledXGBoostHandler(session(model_dir), part["Output"], part["Column"], objective=part["Objective"],
                                  num_class=part["NumClass"], num_features=part["NumFeatures"],
                                  selected_keys=output_keys.from_environment(), default_accept=accept)


# ---- Linear Learner --------------------------------------------------------------------------------
def _linear_learner(model_dir, manifest):
    from nbsage.algorithms.linear_learner.inference import LinearLearnerHandler, LinearModel

    class CompiledLinearModel(LinearModel):
        """Linear Learner's model with its scores computed by onnxruntime."""

        def margins(self, x):
            return self.onnx_session.run(None, {"features": np.ascontiguousarray(x, dtype=np.float64)})[0]

    native = LinearModel.load(model_dir)
    model = CompiledLinearModel(weights=native.weights, bias=native.bias, predictor_type=native.predictor_type,
                                loss=native.loss, num_classes=native.num_classes, threshold=native.threshold,
                                info=native.info)
    model.onnx_session = session(model_dir)
    accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").split(";")[0].strip().lower()
    return LinearLearnerHandler(model, accept or None)


# ---- BlazingText -----------------------------------------------------------------------------------
def _blazingtext(model_dir, manifest):
    import dataclasses

    from nbsage.algorithms.blazingtext.inference import BlazingTextHandler
    from nbsage.algorithms.blazingtext.model import ClassifierModel, load_model

    class CompiledClassifier(ClassifierModel):
        """BlazingText's classifier with the mean of rows, the output layer and softmax run by onnxruntime."""

        def probabilities(self, ptr, rows):
            return blazingtext_probabilities(self.onnx_session, ptr, rows, len(self.w_in) - 1)

    native = load_model(model_dir)
    model = CompiledClassifier(**{f.name: getattr(native, f.name) for f in dataclasses.fields(native)})
    model.onnx_session = session(model_dir)
    return BlazingTextHandler(model)


def blazingtext_probabilities(onnx_session, ptr: np.ndarray, rows: np.ndarray, zero_row: int) -> np.ndarray:
    """Each text's rows padded with the zero row to the longest text, then the graph:
    softmax(sum(w_in[rows]) / count @ w_out.T); an empty text averages to zeros, as natively."""
    ptr = np.asarray(ptr, dtype=np.int64)
    counts = np.diff(ptr)
    n, width = len(counts), max(1, int(counts.max()) if len(counts) else 1)
    padded = np.full((n, width), zero_row, dtype=np.int64)
    text = np.repeat(np.arange(n), counts)
    padded[text, np.arange(len(rows)) - ptr[text]] = rows
    return onnx_session.run(None, {"rows": padded,
                                   "counts": np.maximum(counts, 1).astype(np.float32).reshape(-1, 1)})[0]


# ---- DeepAR ----------------------------------------------------------------------------------------
def _deepar(model_dir, manifest):
    from nbsage.compilation.deepar import compiled_handler
    return compiled_handler(model_dir, session(model_dir))


# ---- Object Detection ------------------------------------------------------------------------------
def _object_detection(model_dir, manifest):
    from nbsage.compilation.object_detection import compiled_handler
    return compiled_handler(model_dir, session(model_dir))
