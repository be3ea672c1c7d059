"""`sagemaker.xgboost`: XGBoost script mode (XGBoost, XGBoostModel, XGBoostPredictor) and
XGBoostProcessor, laid out as the SDK's modules. The built-in XGBoost algorithm is
nbsage.algorithms.xgboost (`Estimator(image_uris.retrieve("xgboost", ...))`); this is the framework,
where your own script calls xgboost."""
from nbsage.xgboost import estimator, model, processing  # noqa: F401 - the SDK's submodules
from nbsage.xgboost.estimator import XGBoost
from nbsage.xgboost.model import XGBoostModel, XGBoostPredictor
from nbsage.xgboost.processing import XGBoostProcessor

__all__ = ["XGBoost", "XGBoostModel", "XGBoostPredictor", "XGBoostProcessor"]
