"""`sagemaker.model_monitor.data_quality_monitoring_config` (defined in nbsage.model_monitor)."""
from nbsage.model_monitor import DataQualityDistributionConstraints, DataQualityMonitoringConfig

__all__ = ["DataQualityMonitoringConfig", "DataQualityDistributionConstraints"]
