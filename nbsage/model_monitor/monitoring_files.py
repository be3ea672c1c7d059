"""`sagemaker.model_monitor.monitoring_files`: the Model Monitor file classes (defined in nbsage.model_monitor)."""
from nbsage.model_monitor import Constraints, ConstraintViolations, ModelMonitoringFile, Statistics

__all__ = ["ModelMonitoringFile", "Statistics", "Constraints", "ConstraintViolations"]
