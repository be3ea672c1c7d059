"""`sagemaker.model_monitor.data_capture_config`: DataCaptureConfig, what deploy(data_capture_config=...) takes."""
from __future__ import annotations

from nbsage.errors import ValidationError


class DataCaptureConfig:
    """Which requests and responses an endpoint captures, and where (the SDK's DataCaptureConfig).

    `destination_s3_uri` is any path or fsspec URL; None means s3://<default bucket>/model-monitor/data-capture.
    `kms_key_id` is recorded and not used (the destination's own encryption applies)."""

    def __init__(self, enable_capture: bool, sampling_percentage: int = 20, destination_s3_uri: str | None = None,
                 kms_key_id: str | None = None, capture_options: list[str] | None = None,
                 csv_content_types: list[str] | None = None, json_content_types: list[str] | None = None,
                 sagemaker_session=None):
        try:
            percentage = float(sampling_percentage)
        except (TypeError, ValueError):
            percentage = -1
        if not 0 <= percentage <= 100:
            raise ValidationError(f"sampling_percentage must be between 0 and 100, got {sampling_percentage!r}")
        options = capture_options or ["REQUEST", "RESPONSE"]
        bad = [o for o in options if o not in ("REQUEST", "RESPONSE")]
        if bad:
            raise ValidationError(f"capture_options {bad} are not valid; use 'REQUEST' and/or 'RESPONSE'")
        self.enable_capture = bool(enable_capture)
        self.sampling_percentage = sampling_percentage
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
