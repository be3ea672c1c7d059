"""`sagemaker.pytorch.processing`: PyTorchProcessor, a FrameworkProcessor for PyTorch scripts."""
from __future__ import annotations

from nbsage.processing import FrameworkProcessor


class PyTorchProcessor(FrameworkProcessor):
    """Runs a PyTorch script from a source_dir as a processing job (FrameworkProcessor with PyTorch)."""

    def __init__(self, framework_version: str, role: str | None = None, instance_count: int = 1,
                 instance_type: str = "local", py_version: str = "py3", image_uri: str | None = None,
                 command: list[str] | None = None, **kwargs):
        from nbsage.pytorch.estimator import PyTorch
        super().__init__(PyTorch, framework_version, role=role, instance_count=instance_count,
                         instance_type=instance_type, py_version=py_version, image_uri=image_uri,
                         command=command, **kwargs)
