"""`sagemaker.sklearn.processing`: SKLearnProcessor (defined with the other processors)."""
from nbsage.processing import SKLearnProcessor

__all__ = ["SKLearnProcessor"]
