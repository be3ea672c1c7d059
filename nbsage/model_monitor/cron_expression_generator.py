"""`sagemaker.model_monitor.cron_expression_generator`: the schedule expressions Model Monitor accepts."""
from __future__ import annotations


class CronExpressionGenerator:
    """Schedule expressions Model Monitor accepts (UTC)."""

    @staticmethod
    def hourly() -> str:
        return "cron(0 * ? * * *)"

    @staticmethod
    def daily(hour: int = 0) -> str:
        return f"cron(0 {hour} ? * * *)"

    @staticmethod
    def daily_every_x_hours(hour_interval: int, starting_hour: int = 0) -> str:
        return f"cron(0 {starting_hour}/{hour_interval} ? * * *)"

    @staticmethod
    def now() -> str:
        """A one-time schedule: one execution at once (with data_analysis_start_time/end_time)."""
        return "NOW"
