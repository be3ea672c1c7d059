"""XGBoost, as `sagemaker.xgboost.estimator` has it: your own XGBoost script in script mode.

The script finds `sagemaker_containers` and `sagemaker_xgboost_container` (the helpers the
framework container puts on its path) as the functions the SDK's examples use; see
nbsage/runtime/framework_modules/.
"""
from __future__ import annotations

from nbsage.framework import Framework
from nbsage.xgboost.model import XGBoostModel


class XGBoost(Framework):
    """Runs an XGBoost script with the SM_* environment; deploy() serves it with XGBoostPredictor."""

    framework = "XGBoost"
    _framework = "xgboost"
    image_repository = "sagemaker-xgboost"
    model_class = XGBoostModel

    def __init__(self, entry_point: str, framework_version: str | None = None, source_dir: str | None = None,
                 hyperparameters: dict | None = None, py_version: str = "py3", image_uri: str | None = None,
                 image_uri_region: str | None = None, **kwargs):
        super().__init__(entry_point, framework_version=framework_version, py_version=py_version,
                         source_dir=source_dir, hyperparameters=hyperparameters, image_uri=image_uri,
                         image_uri_region=image_uri_region, **kwargs)
