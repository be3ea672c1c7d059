"""nbsage: the SageMaker workflow in Jupyter, on your own machines.

Shaped like the SageMaker Python SDK v2: `Estimator`, `Model`, `Predictor`, `Session`,
`TrainingInput`, serializers. `%load_ext nbsage` adds the `%%sm_train` family of magics.
Attributes are imported on first use so that `import nbsage` stays fast (no torch, xgboost,
dask, pandas or matplotlib at import).

`import nbsage as sagemaker` is meant to run SageMaker notebooks unchanged, so the SDK's module
layout resolves too: any `sagemaker.<module>` that nbsage has as `nbsage.<module>` (estimator,
inputs, predictor, session, amazon, image_uris, s3, utils, model_monitor, tuner, transformer, the
framework packages, ...) is imported on first attribute access, without an import of its own.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Session": "nbsage.session",
    "Estimator": "nbsage.estimator",
    "TrainingJob": "nbsage.training_job",
    "TrainingInput": "nbsage.inputs",
    "ShuffleConfig": "nbsage.inputs",
    "upload_data": "nbsage.data",
    "load": "nbsage.data",
    "sql": "nbsage.data",
    "Processor": "nbsage.processing",
    "ScriptProcessor": "nbsage.processing",
    "ProcessingInput": "nbsage.processing",
    "ProcessingOutput": "nbsage.processing",
    "ProcessingJob": "nbsage.processing",
    "Model": "nbsage.model",
    "Predictor": "nbsage.predictor",
    "PipelineModel": "nbsage.pipeline",
    "NBSageError": "nbsage.errors",
    "serializers": "nbsage.serializers",
    "deserializers": "nbsage.deserializers",
    "algorithms": "nbsage.algorithms",
    # the SDK's top-level names for notebooks (`import nbsage as sagemaker`)
    "get_execution_role": "nbsage.session",
    "s3_input": "nbsage.session",
    "RealTimePredictor": "nbsage.predictor",
    "HyperparameterTuner": "nbsage.tuner",
    "ContinuousParameter": "nbsage.tuner",
    "IntegerParameter": "nbsage.tuner",
    "CategoricalParameter": "nbsage.tuner",
    "TuningJob": "nbsage.tuning_job",
    "Transformer": "nbsage.transformer",
    "TransformJob": "nbsage.transformer",
}

__all__ = sorted(_EXPORTS) + ["load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        return _submodule(name)
    mod = importlib.import_module(module)
    value = mod if module.rsplit(".", 1)[-1] == name else getattr(mod, name)
    globals()[name] = value
    return value


def _submodule(name: str):
    """`nbsage.<name>` imported on first access (`sagemaker.estimator.Estimator` with no earlier
    import); an AttributeError when there is no such module."""
    if name.startswith("_") or not name.isidentifier():
        raise AttributeError(f"module 'nbsage' has no attribute {name!r}")
    try:
        return importlib.import_module(f"{__name__}.{name}")  # sets the attribute on this package
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise  # the module exists and failed to import something: say what
        raise AttributeError(f"module 'nbsage' has no attribute {name!r}") from None


def __dir__():
    return __all__


def _notebook_monitor(job, logs: bool = True):
    """The notebook face's live monitor for a job followed in a Jupyter kernel (nbsage.watch's hook):
    the face is imported only there, and registers itself as it is imported."""
    from nbsage.watch import in_notebook_kernel
    if not in_notebook_kernel():
        return None
    from nbsage.notebook.display import _monitor_in_kernels
    return _monitor_in_kernels(job, logs=logs)


def _register_faces() -> None:
    from nbsage import watch
    watch.register(_notebook_monitor)


_register_faces()


def _install_sdk_alias() -> None:
    """`import nbsage as sagemaker` then `from sagemaker.inputs import ...` (nbsage.sdk_alias)."""
    from nbsage import sdk_alias
    sdk_alias.install()


_install_sdk_alias()


def load_ipython_extension(ipython) -> None:
    """`%load_ext nbsage`: register the magics."""
    from nbsage.notebook.magics import load_ipython_extension as load
    load(ipython)


def unload_ipython_extension(ipython) -> None:
    pass
