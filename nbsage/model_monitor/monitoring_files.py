"""`sagemaker.model_monitor.monitoring_files`: statistics.json, constraints.json and constraint_violations.json
as objects with a body and a URI (any path or fsspec URL; s3:// in the default bucket included)."""
from __future__ import annotations

import json

from nbsage.errors import ValidationError


def session_or_default(session):
    """The session given, else the process's default one."""
    if session is None:
        from nbsage.session import Session
        return Session.default()
    return session


class ModelMonitoringFile:
    """A Model Monitor JSON file: its body and where it is."""

    def __init__(self, body_dict: dict, file_s3_uri: str, kms_key=None, sagemaker_session=None):
        self.body_dict, self.file_s3_uri, self.kms_key = body_dict, file_s3_uri, kms_key
        self.session = sagemaker_session

    def save(self, new_save_location_s3_uri: str | None = None) -> str:
        """Write the body to its URI (or a new one, which becomes its URI)."""
        from nbsage.serving.monitor.storage import write_json
        if new_save_location_s3_uri is not None:
            self.file_s3_uri = new_save_location_s3_uri
        write_json(str(session_or_default(self.session).resolve_uri(self.file_s3_uri)), self.body_dict)
        return self.file_s3_uri

    @classmethod
    def from_s3_uri(cls, file_s3_uri: str, kms_key=None, sagemaker_session=None):
        """The file at a path or URL (s3:// in the default bucket included)."""
        from nbsage.serving.monitor.storage import read_json
        session = session_or_default(sagemaker_session)
        return cls(read_json(str(session.resolve_uri(file_s3_uri))), file_s3_uri, kms_key, session)

    @classmethod
    def from_file_path(cls, file_path: str, kms_key=None, sagemaker_session=None):
        return cls.from_s3_uri(str(file_path), kms_key, sagemaker_session)

    @classmethod
    def from_string(cls, string: str, kms_key=None, file_name=None, sagemaker_session=None):
        """A file made from a JSON string, kept under the default bucket's monitoring/ prefix."""
        import uuid
        session = session_or_default(sagemaker_session)
        uri = f"s3://{session.default_bucket()}/monitoring/{uuid.uuid4()}/{file_name or cls.DEFAULT_NAME}"
        file = cls(json.loads(string), uri, kms_key, session)
        file.save()
        return file

    DEFAULT_NAME = "file.json"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(file_s3_uri={self.file_s3_uri!r})"


class Statistics(ModelMonitoringFile):
    """statistics.json."""

    DEFAULT_NAME = "statistics.json"


class Constraints(ModelMonitoringFile):
    """constraints.json."""

    DEFAULT_NAME = "constraints.json"

    def set_monitoring(self, enable_monitoring: bool, feature_name: str | None = None) -> None:
        """Turn constraint evaluation on or off for every feature or one (monitoringConfigOverrides)."""
        flag = "Enabled" if enable_monitoring else "Disabled"
        if feature_name is None:
            self.body_dict.setdefault("monitoring_config", {})["evaluate_constraints"] = flag
            return
        for feature in self.body_dict.get("features", []):
            if feature["name"] == feature_name:
                feature.setdefault("monitoringConfigOverrides", {})["evaluate_constraints"] = flag
                return
        raise ValidationError(f"constraints have no feature {feature_name!r}")


class ConstraintViolations(ModelMonitoringFile):
    """constraint_violations.json."""

    DEFAULT_NAME = "constraint_violations.json"


class ProcessingOutput:
    """Where a job's files went (`output.destination`)."""

    def __init__(self, destination: str, source: str = "/opt/ml/processing/output",
                 output_name: str = "monitoring_output"):
        self.destination, self.source, self.output_name = destination, source, output_name
