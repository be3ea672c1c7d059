"""PyTorch, as `sagemaker.pytorch.estimator` has it: a PyTorch training script in script mode."""
from __future__ import annotations

from nbsage.errors import ValidationError
from nbsage.framework import Framework
from nbsage.pytorch.model import PyTorchModel


class PyTorch(Framework):
    """Runs a PyTorch script with the SM_* environment; deploy() serves it with PyTorchPredictor.

    `distribution` is accepted for single-process jobs only (None or {}): torch.distributed launchers
    (torch_distributed, smdistributed, mpi) are not started here."""

    framework = "PyTorch"
    _framework = "pytorch"
    image_repository = "pytorch-training"
    model_class = PyTorchModel

    def __init__(self, entry_point: str, framework_version: str | None = None, py_version: str | None = None,
                 source_dir: str | None = None, hyperparameters: dict | None = None, image_uri: str | None = None,
                 distribution: dict | None = None, compiler_config=None, **kwargs):
        if distribution:
            raise ValidationError(f"distribution={distribution!r}: nbsage's PyTorch runs the script as one "
                                  "process per instance without a launcher; leave distribution out and start "
                                  "torch.distributed from SM_HOSTS / SM_CURRENT_HOST in the script")
        if compiler_config is not None:
            raise ValidationError("compiler_config (Training Compiler) is not available here; leave it out")
        super().__init__(entry_point, framework_version=framework_version, py_version=py_version,
                         source_dir=source_dir, hyperparameters=hyperparameters, image_uri=image_uri, **kwargs)
