"""`sagemaker.model_monitor.data_capture_config`: where the SDK keeps DataCaptureConfig (defined in nbsage.model_monitor)."""
from nbsage.model_monitor import DataCaptureConfig

__all__ = ["DataCaptureConfig"]
