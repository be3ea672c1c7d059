"""`sagemaker.sklearn`: scikit-learn script mode (SKLearn, SKLearnModel, SKLearnPredictor) and
processing (SKLearnProcessor), laid out as the SDK's modules."""
from nbsage.sklearn import estimator, model, processing  # noqa: F401 - the SDK's submodules
from nbsage.sklearn.estimator import SKLearn
from nbsage.sklearn.model import SKLearnModel, SKLearnPredictor
from nbsage.sklearn.processing import SKLearnProcessor

__all__ = ["SKLearn", "SKLearnModel", "SKLearnPredictor", "SKLearnProcessor"]
