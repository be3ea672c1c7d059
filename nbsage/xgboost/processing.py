"""`sagemaker.xgboost.processing`: XGBoostProcessor, a FrameworkProcessor for XGBoost scripts."""
from __future__ import annotations

from nbsage.processing import FrameworkProcessor


class XGBoostProcessor(FrameworkProcessor):
    """Runs a XGBoost script from a source_dir as a processing job (FrameworkProcessor with XGBoost)."""

    def __init__(self, framework_version: str, role: str | None = None, instance_count: int = 1,
                 instance_type: str = "local", py_version: str = "py3", image_uri: str | None = None,
                 command: list[str] | None = None, **kwargs):
        from nbsage.xgboost.estimator import XGBoost
        super().__init__(XGBoost, framework_version, role=role, instance_count=instance_count,
                         instance_type=instance_type, py_version=py_version, image_uri=image_uri,
                         command=command, **kwargs)
