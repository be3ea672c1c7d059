"""`sagemaker.model_monitor.cron_expression_generator`: CronExpressionGenerator (defined in nbsage.model_monitor)."""
from nbsage.model_monitor import CronExpressionGenerator

__all__ = ["CronExpressionGenerator"]
