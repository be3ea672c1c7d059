"""`sagemaker.model_monitor.data_quality_monitoring_config`: the monitoring_config a baseline may override."""
from __future__ import annotations

from nbsage.errors import ValidationError


class DataQualityDistributionConstraints:
    """constraints.json's distribution_constraints a baseline may override: the categorical drift method
    (nbsage measures LInfinity)."""

    def __init__(self, categorical_drift_method: str | None = None):
        if categorical_drift_method not in (None, "LInfinity"):
            raise ValidationError(f"categorical_drift_method {categorical_drift_method!r} is not supported by nbsage's "
                                  "model monitor; it measures categorical drift as 'LInfinity'")
        self.categorical_drift_method = categorical_drift_method


class DataQualityMonitoringConfig:
    """The monitoring_config override of suggest_baseline(monitoring_config_override=...)."""

    def __init__(self, distribution_constraints: DataQualityDistributionConstraints | None = None):
        self.distribution_constraints = distribution_constraints
