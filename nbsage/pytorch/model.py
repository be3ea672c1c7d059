"""PyTorchModel and PyTorchPredictor, as `sagemaker.pytorch.model` has them."""
from __future__ import annotations

from nbsage.deserializers import NumpyDeserializer
from nbsage.framework import FrameworkModel
from nbsage.predictor import Predictor
from nbsage.serializers import NumpySerializer


class PyTorchPredictor(Predictor):
    """A Predictor for a PyTorch endpoint: NumPy arrays in and out (application/x-npy), as the SDK's."""

    def __init__(self, endpoint_name: str, sagemaker_session=None, serializer=NumpySerializer(),
                 deserializer=NumpyDeserializer(), component_name: str | None = None):
        super().__init__(endpoint_name, sagemaker_session, serializer=serializer, deserializer=deserializer,
                         component_name=component_name)


class PyTorchModel(FrameworkModel):
    """A PyTorch model.tar.gz served by an entry point that defines model_fn; without predict_fn the
    module is called on the request as a float tensor, under torch.no_grad (the container's default)."""

    framework = "PyTorch"
    _framework = "pytorch"
    predictor_class = PyTorchPredictor

    def __init__(self, model_data, role: str | None = None, entry_point: str | None = None,
                 framework_version: str | None = None, py_version: str | None = None,
                 image_uri: str | None = None, predictor_cls=PyTorchPredictor, model_server_workers=None,
                 **kwargs):
        super().__init__(model_data, role=role, entry_point=entry_point, framework_version=framework_version,
                         py_version=py_version, image_uri=image_uri, predictor_cls=predictor_cls,
                         model_server_workers=model_server_workers, **kwargs)
