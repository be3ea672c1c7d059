"""`sagemaker.model_monitor`: the names notebooks import, ahead of nbsage's model monitoring.

`DataCaptureConfig` is accepted and recorded (`Model.deploy(data_capture_config=...)` keeps it on
the model and the predictor), so a notebook that deploys with capture turned on runs; nothing is
captured yet. The monitors and the baselining/scheduling classes exist so that importing them
works, and raise `ModelMonitoringNotAvailable` — naming the later feature — when they are used.
"""
from __future__ import annotations

from nbsage.errors import NBSageError

LATER_FEATURE = ("model monitoring (data capture to the destination, baselines, monitoring schedules) "
                 "is a later nbsage feature and is not available yet")


class ModelMonitoringNotAvailable(NBSageError, NotImplementedError):
    """A model-monitoring call that nbsage cannot serve yet."""


class DataCaptureConfig:
    """Which requests and responses an endpoint would capture, and where (recorded, not acted on yet)."""

    def __init__(self, enable_capture: bool, sampling_percentage: int = 20, destination_s3_uri: str | None = None,
                 kms_key_id: str | None = None, capture_options: list[str] | None = None,
                 csv_content_types: list[str] | None = None, json_content_types: list[str] | None = None,
                 sagemaker_session=None):
        from nbsage.errors import ValidationError
        if not 0 <= int(sampling_percentage) <= 100:
            raise ValidationError(f"sampling_percentage must be between 0 and 100, got {sampling_percentage}")
        options = capture_options or ["REQUEST", "RESPONSE"]
        bad = [o for o in options if o not in ("REQUEST", "RESPONSE")]
        if bad:
            raise ValidationError(f"capture_options {bad} are not valid; use 'REQUEST' and/or 'RESPONSE'")
        self.enable_capture = bool(enable_capture)
        self.sampling_percentage = int(sampling_percentage)
        self.destination_s3_uri = destination_s3_uri
        self.kms_key_id = kms_key_id
        self.capture_options = list(options)
        self.csv_content_types = csv_content_types or ["text/csv"]
        self.json_content_types = json_content_types or ["application/json"]
        self.sagemaker_session = sagemaker_session

    def _to_request_dict(self) -> dict:
        """The DataCaptureConfig of CreateEndpointConfig."""
        config = {"EnableCapture": self.enable_capture, "InitialSamplingPercentage": self.sampling_percentage,
                  "DestinationS3Uri": self.destination_s3_uri,
                  "CaptureOptions": [{"CaptureMode": {"REQUEST": "Input", "RESPONSE": "Output"}[o]}
                                     for o in self.capture_options],
                  "CaptureContentTypeHeader": {"CsvContentTypes": self.csv_content_types,
                                               "JsonContentTypes": self.json_content_types}}
        if self.kms_key_id:
            config["KmsKeyId"] = self.kms_key_id
        return config

    def __repr__(self) -> str:
        return (f"DataCaptureConfig(enable_capture={self.enable_capture}, sampling_percentage="
                f"{self.sampling_percentage}, destination_s3_uri={self.destination_s3_uri!r})")


class _NotYet:
    """A model-monitoring class whose use raises ModelMonitoringNotAvailable, naming itself."""

    def __init__(self, *args, **kwargs):
        raise ModelMonitoringNotAvailable(f"sagemaker.model_monitor.{type(self).__name__}: {LATER_FEATURE}; "
                                          "DataCaptureConfig is accepted (and recorded) meanwhile")


class ModelMonitor(_NotYet):
    """Monitors an endpoint's captured data on a schedule (not available yet)."""


class DefaultModelMonitor(_NotYet):
    """Data-quality monitoring against a baseline (not available yet)."""


class ModelQualityMonitor(_NotYet):
    """Model-quality monitoring against ground truth (not available yet)."""


class ModelBiasMonitor(_NotYet):
    """Bias monitoring (not available yet)."""


class ModelExplainabilityMonitor(_NotYet):
    """Explainability monitoring (not available yet)."""


class BaseliningJob(_NotYet):
    """A baselining job (not available yet)."""


class MonitoringExecution(_NotYet):
    """One run of a monitoring schedule (not available yet)."""


class EndpointInput(_NotYet):
    """A monitoring job's endpoint input (not available yet)."""


class CronExpressionGenerator:
    """Schedule expressions, as the SDK's (plain strings; they are only used by monitors)."""

    @staticmethod
    def hourly() -> str:
        return "cron(0 * ? * * *)"

    @staticmethod
    def daily(hour: int = 0) -> str:
        return f"cron(0 {hour} ? * * *)"

    @staticmethod
    def daily_every_x_hours(hour_interval: int, starting_hour: int = 0) -> str:
        return f"cron(0 {starting_hour}/{hour_interval} ? * * *)"


class DatasetFormat:
    """Dataset formats for baselines, as the SDK's (dicts)."""

    @staticmethod
    def csv(header: bool = True, output_columns_position: str = "START") -> dict:
        return {"csv": {"header": header, "output_columns_position": output_columns_position}}

    @staticmethod
    def json(lines: bool = True) -> dict:
        return {"json": {"lines": lines}}

    @staticmethod
    def sagemaker_capture_json() -> dict:
        return {"sagemakerCaptureJson": {}}
