"""`sagemaker.model_monitor.dataset_format`: baseline and monitoring dataset formats, as the SDK's dicts."""
from __future__ import annotations


class DatasetFormat:
    """Baseline dataset formats, as the SDK's (dicts)."""

    @staticmethod
    def csv(header: bool = True, output_columns_position: str = "START") -> dict:
        return {"csv": {"header": header, "output_columns_position": output_columns_position}}

    @staticmethod
    def json(lines: bool = True) -> dict:
        return {"json": {"lines": lines}}

    @staticmethod
    def sagemaker_capture_json() -> dict:
        return {"sagemakerCaptureJson": {}}



class MonitoringDatasetFormat:
    """Dataset formats of batch-transform monitoring inputs, as the SDK's (dicts)."""

    @staticmethod
    def csv(header: bool = True) -> dict:
        return {"Csv": {"Header": header}}

    @staticmethod
    def json(lines: bool = True) -> dict:
        return {"Json": {"Line": lines}}

    @staticmethod
    def parquet() -> dict:
        return {"Parquet": {}}
