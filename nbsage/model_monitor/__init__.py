"""`sagemaker.model_monitor`: data capture and data-quality monitoring, in the SDK v2's shapes and module layout.

- `DataCaptureConfig` on `deploy(data_capture_config=...)` (or CreateEndpointConfig) makes the
  endpoint's model servers capture sampled requests and responses (nbsage.serving.capture).
- `DefaultModelMonitor.suggest_baseline(baseline_dataset, dataset_format, output_s3_uri)` writes
  statistics.json and constraints.json; `create_monitoring_schedule(...)` checks the captured data
  against them on a cron schedule, run by nbsage's own scheduler process
  (nbsage.serving.monitor.schedules); `run_now()` runs one execution at once, for notebooks and
  tests; `drift_report()` shows the latest one inline.

Model Monitor's file formats are kept (nbsage.serving.monitor.statistics), so baselines and reports
move to and from SageMaker unchanged. Model-quality, bias and explainability monitors are not
available: they raise ModelMonitoringNotAvailable, naming DefaultModelMonitor as what is.
docs/monitoring.md has the details.
"""
from __future__ import annotations

from nbsage.model_monitor.cron_expression_generator import CronExpressionGenerator  # noqa: F401
from nbsage.model_monitor.data_capture_config import DataCaptureConfig  # noqa: F401
from nbsage.model_monitor.data_quality_monitoring_config import (  # noqa: F401
    DataQualityDistributionConstraints, DataQualityMonitoringConfig)
from nbsage.model_monitor.dataset_format import DatasetFormat, MonitoringDatasetFormat  # noqa: F401
from nbsage.model_monitor.model_monitoring import (  # noqa: F401
    BaseliningJob, BatchTransformInput, DefaultModelMonitor, EndpointInput, ModelBiasMonitor,
    ModelExplainabilityMonitor, ModelMonitor, ModelMonitoringNotAvailable, ModelQualityMonitor, MonitoringExecution,
    MonitoringOutput, describe_monitoring_schedule, list_monitoring_schedules)
from nbsage.model_monitor.monitoring_files import (  # noqa: F401
    Constraints, ConstraintViolations, ModelMonitoringFile, Statistics)
