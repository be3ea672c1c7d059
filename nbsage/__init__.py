"""nbsage: the SageMaker workflow in Jupyter, on your own machines.

Shaped like the SageMaker Python SDK v2: `Estimator`, `Model`, `Predictor`, `Session`,
`TrainingInput`, serializers. `%load_ext nbsage` adds the `%%sm_train` family of magics.
Attributes are imported on first use so that `import nbsage` stays fast (no torch, xgboost,
dask, pandas or matplotlib at import).
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
}

__all__ = sorted(_EXPORTS) + ["load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbsage' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.rsplit(".", 1)[-1] == name else getattr(mod, name)
    globals()[name] = value
    return value


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


def load_ipython_extension(ipython) -> None:
    """`%load_ext nbsage`: register the magics."""
    from nbsage.notebook.magics import load_ipython_extension as load
    load(ipython)


def unload_ipython_extension(ipython) -> None:
    pass
