"""Object Detection: SageMaker's single-shot multibox detector (SSD), in PyTorch."""
from nbsage.algorithms.object_detection.declaration import ALGORITHM

__all__ = ["ALGORITHM"]
