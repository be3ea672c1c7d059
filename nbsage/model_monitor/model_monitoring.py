"""`sagemaker.model_monitor.model_monitoring`: the monitors and their jobs (defined in nbsage.model_monitor)."""
from nbsage.model_monitor import (BaseliningJob, BatchTransformInput, DefaultModelMonitor, EndpointInput,
                                  ModelBiasMonitor, ModelExplainabilityMonitor, ModelMonitor, ModelQualityMonitor,
                                  MonitoringExecution, MonitoringOutput)

__all__ = ["ModelMonitor", "DefaultModelMonitor", "ModelQualityMonitor", "ModelBiasMonitor",
           "ModelExplainabilityMonitor", "BaseliningJob", "MonitoringExecution", "EndpointInput",
           "BatchTransformInput", "MonitoringOutput"]
