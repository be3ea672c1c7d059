"""SKLearnModel and SKLearnPredictor, as `sagemaker.sklearn.model` has them."""
from __future__ import annotations

from nbsage.deserializers import NumpyDeserializer
from nbsage.framework import FrameworkModel
from nbsage.predictor import Predictor
from nbsage.serializers import NumpySerializer


class SKLearnPredictor(Predictor):
    """A Predictor for a scikit-learn endpoint: NumPy arrays in and out (application/x-npy), as the SDK's."""

    def __init__(self, endpoint_name: str, sagemaker_session=None, serializer=NumpySerializer(),
                 deserializer=NumpyDeserializer(), component_name: str | None = None):
        super().__init__(endpoint_name, sagemaker_session, serializer=serializer, deserializer=deserializer,
                         component_name=component_name)


class SKLearnModel(FrameworkModel):
    """A scikit-learn model.tar.gz served by an entry point that defines model_fn (and optionally
    input_fn/predict_fn/output_fn); without predict_fn the model's .predict answers."""

    framework = "SKLearn"
    _framework = "sklearn"
    predictor_class = SKLearnPredictor

    def __init__(self, model_data, role: str | None = None, entry_point: str | None = None,
                 framework_version: str | None = None, py_version: str = "py3", image_uri: str | None = None,
                 predictor_cls=SKLearnPredictor, model_server_workers=None, **kwargs):
        super().__init__(model_data, role=role, entry_point=entry_point, framework_version=framework_version,
                         py_version=py_version, image_uri=image_uri, predictor_cls=predictor_cls,
                         model_server_workers=model_server_workers, **kwargs)
