"""Compilation, Neo's local counterpart: a built-in algorithm's model converted to ONNX, served by onnxruntime.

SageMaker Neo compiles a model.tar.gz for a target (`ml_c5`, `ml_m5`, ... or an edge device) into a new
model.tar.gz that a Neo runtime serves. Here the output is ONNX, run by onnxruntime on this machine:
`converter(algorithm).convert(model_dir, out_dir, input_shape)` writes `model.onnx` beside the original
model files and returns what the compiled handler needs (the manifest). One module per algorithm:
XGBoost (onnxmltools' tree-ensemble converter), Linear Learner (a MatMul + Add graph), BlazingText's
supervised classifier (Gather + mean + MatMul + Softmax; tokenising and hashing stay in Python) and
DeepAR's one-step network (the LSTM step; the sampling loop over the horizon stays in Python) and
Object Detection's SSD network (image -> class logits and box offsets; decoding and NMS stay in torch).

The job that records a compilation (CreateCompilationJob / DescribeCompilationJob) is
nbsage.compilation.job; the handlers that serve a compiled model are nbsage.compilation.runtime (which,
like the converters, imports neither the store nor serving: the model server loads it). onnx,
onnxruntime and onnxmltools are imported where they are used.
"""
from __future__ import annotations

import importlib

from nbsage.errors import ValidationError

MANIFEST = "nbsage-compilation.json"
ONNX_FILE = "model.onnx"
# algorithm -> the module that converts its models
CONVERTERS = {
    "xgboost": "nbsage.compilation.xgboost",
    "linear-learner": "nbsage.compilation.linear_learner",
    "blazingtext": "nbsage.compilation.blazingtext",
    "deepar": "nbsage.compilation.deepar",
    "object-detection": "nbsage.compilation.object_detection",
}
# Neo's framework names each algorithm's model may be given as (None: the algorithm's own)
FRAMEWORKS = {
    "xgboost": ("xgboost", "onnx"),
    "linear-learner": ("mxnet", "pytorch", "onnx"),
    "blazingtext": ("pytorch", "onnx"),
    "deepar": ("pytorch", "mxnet", "onnx"),
    "object-detection": ("pytorch", "mxnet", "onnx"),
}
# Neo's edge targets: nbsage compiles for onnxruntime on this machine's kind of CPU (or GPU), not these
EDGE_TARGETS = ("jetson", "rasp", "deeplens", "sitara", "imx", "rk3", "qcs", "amba", "coreml", "lambda",
                "sbe_c", "x86_win", "aisage", "ambarella")


class CompilationError(ValidationError):
    """A model or target cannot be compiled; the message names the part that is not supported."""


def converter(algorithm: str | None, model_hint: str = ""):
    """The converter module of a built-in algorithm, or a CompilationError naming what compiles."""
    if not algorithm or algorithm not in CONVERTERS:
        what = f"the {algorithm} algorithm's models" if algorithm else f"a model served by inference code{model_hint}"
        raise CompilationError(f"{what} cannot be compiled: nbsage compiles the built-in "
                               f"{', '.join(CONVERTERS)} models to ONNX")
    return importlib.import_module(CONVERTERS[algorithm])


def check_target(target_instance_family: str | None) -> str:
    """Neo's TargetDevice for a cloud instance family (ml_c5, ml_m5, ml_g4dn, ...) or 'local'."""
    target = (target_instance_family or "").strip()
    lowered = target.lower()
    if lowered.startswith(EDGE_TARGETS):
        raise CompilationError(f"target {target!r} is an edge device; nbsage compiles to ONNX for onnxruntime on "
                               "this machine: give a cloud instance family (ml_c5, ml_m5, ml_c6i, ml_g4dn, ...) "
                               "or 'local'")
    if lowered != "local" and not (lowered.startswith("ml_") and len(lowered) > 3 and lowered[3:].isidentifier()):
        raise CompilationError(f"target_instance_family {target!r} is not a target nbsage compiles for: give a "
                               "cloud instance family such as ml_c5, ml_m5, ml_c6i or ml_g4dn (underscore, as "
                               "Neo spells them), or 'local'")
    return lowered


def check_framework(algorithm: str, framework: str | None) -> str | None:
    """The framework given for the model, if it is one this algorithm's model can be compiled from."""
    if framework is None:
        return None
    allowed = FRAMEWORKS.get(algorithm, ())
    if framework.lower() not in allowed:
        raise CompilationError(f"framework {framework!r} does not describe a {algorithm} model; give "
                               f"{' or '.join(repr(f) for f in allowed)} (or leave it out)")
    return framework.lower()


def require(module: str, package: str | None = None):
    """Import an optional dependency of compilation, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CompilationError(f"compilation needs {package or module}: pip install {package or module}") from None
