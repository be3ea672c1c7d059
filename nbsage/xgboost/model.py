"""XGBoostModel and XGBoostPredictor, as `sagemaker.xgboost.model` has them."""
from __future__ import annotations

from nbsage.deserializers import CSVDeserializer
from nbsage.framework import FrameworkModel
from nbsage.predictor import Predictor
from nbsage.serializers import LibSVMSerializer


class XGBoostPredictor(Predictor):
    """A Predictor for an XGBoost framework endpoint: libsvm in, CSV out, as the SDK's."""

    def __init__(self, endpoint_name: str, sagemaker_session=None, serializer=LibSVMSerializer(),
                 deserializer=CSVDeserializer(), component_name: str | None = None):
        super().__init__(endpoint_name, sagemaker_session, serializer=serializer, deserializer=deserializer,
                         component_name=component_name)


class XGBoostModel(FrameworkModel):
    """An XGBoost model.tar.gz served by an entry point that defines model_fn; without predict_fn a
    Booster predicts on the request as a DMatrix (CSV, libsvm, JSON or NumPy), the container's default."""

    framework = "XGBoost"
    _framework = "xgboost"
    predictor_class = XGBoostPredictor

    def __init__(self, model_data, role: str | None = None, entry_point: str | None = None,
                 framework_version: str | None = None, image_uri: str | None = None, py_version: str = "py3",
                 predictor_cls=XGBoostPredictor, model_server_workers=None, **kwargs):
        super().__init__(model_data, role=role, entry_point=entry_point, framework_version=framework_version,
                         py_version=py_version, image_uri=image_uri, predictor_cls=predictor_cls,
                         model_server_workers=model_server_workers, **kwargs)
