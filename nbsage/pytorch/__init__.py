"""`sagemaker.pytorch`: PyTorch script mode (PyTorch, PyTorchModel, PyTorchPredictor) and
PyTorchProcessor, laid out as the SDK's modules."""
from nbsage.pytorch import estimator, model, processing  # noqa: F401 - the SDK's submodules
from nbsage.pytorch.estimator import PyTorch
from nbsage.pytorch.model import PyTorchModel, PyTorchPredictor
from nbsage.pytorch.processing import PyTorchProcessor

__all__ = ["PyTorch", "PyTorchModel", "PyTorchPredictor", "PyTorchProcessor"]
