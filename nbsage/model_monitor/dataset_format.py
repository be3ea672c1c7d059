"""`sagemaker.model_monitor.dataset_format`: where the SDK keeps DatasetFormat (defined in nbsage.model_monitor)."""
from nbsage.model_monitor import DatasetFormat, MonitoringDatasetFormat

__all__ = ["DatasetFormat", "MonitoringDatasetFormat"]
