"""`sagemaker.model_monitor`: data capture and data-quality monitoring, in the SDK v2's shapes.

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
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from nbsage.errors import NBSageError, ValidationError


class ModelMonitoringNotAvailable(NBSageError, NotImplementedError):
    """A model-monitoring class nbsage does not provide."""


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

# ---- the files --------------------------------------------------------------------------------------------
def _session(session):
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
        write_json(str(_session(self.session).resolve_uri(self.file_s3_uri)), self.body_dict)
        return self.file_s3_uri

    @classmethod
    def from_s3_uri(cls, file_s3_uri: str, kms_key=None, sagemaker_session=None):
        """The file at a path or URL (s3:// in the default bucket included)."""
        from nbsage.serving.monitor.storage import read_json
        session = _session(sagemaker_session)
        return cls(read_json(str(session.resolve_uri(file_s3_uri))), file_s3_uri, kms_key, session)

    @classmethod
    def from_file_path(cls, file_path: str, kms_key=None, sagemaker_session=None):
        return cls.from_s3_uri(str(file_path), kms_key, sagemaker_session)

    @classmethod
    def from_string(cls, string: str, kms_key=None, file_name=None, sagemaker_session=None):
        """A file made from a JSON string, kept under the default bucket's monitoring/ prefix."""
        import uuid
        session = _session(sagemaker_session)
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


# ---- jobs ---------------------------------------------------------------------------------------------------
class BaseliningJob:
    """A baselining job (suggest_baseline): its statistics.json and constraints.json."""

    def __init__(self, sagemaker_session, job_name: str, inputs=None, outputs=None, output_kms_key=None):
        self.sagemaker_session = _session(sagemaker_session)
        self.job_name = job_name
        self.inputs = inputs or []
        self.outputs = outputs or []

    @classmethod
    def _from_record(cls, session, record: dict) -> "BaseliningJob":
        destination = record["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
        return cls(session, record["ProcessingJobName"], outputs=[ProcessingOutput(destination)])

    def describe(self) -> dict:
        from nbsage.serving.monitor.baselining import describe
        return describe(self.sagemaker_session, self.job_name)

    def wait(self, logs: bool = True) -> None:
        """Nothing to wait for: suggest_baseline returns once the job has ended."""

    def _file(self, cls, file_name: str):
        from nbsage.serving.monitor.storage import join
        return cls.from_s3_uri(join(self.outputs[0].destination, file_name), sagemaker_session=self.sagemaker_session)

    def baseline_statistics(self, file_name: str = "statistics.json", kms_key=None) -> Statistics:
        return self._file(Statistics, file_name)

    def suggested_constraints(self, file_name: str = "constraints.json", kms_key=None) -> Constraints:
        return self._file(Constraints, file_name)

    def __repr__(self) -> str:
        return f"BaseliningJob(job_name={self.job_name!r}, output={self.outputs[0].destination if self.outputs else None!r})"


class MonitoringExecution:
    """One execution of a monitoring schedule: its statistics.json and constraint_violations.json."""

    def __init__(self, sagemaker_session, summary: dict):
        self.sagemaker_session = _session(sagemaker_session)
        self.summary = summary
        self.job_name = summary["ProcessingJobName"]
        self.output = ProcessingOutput(summary["Output"])

    def describe(self) -> dict:
        """DescribeProcessingJob's view of the execution (with the schedule's summary fields)."""
        s = self.summary
        status = {"InProgress": "InProgress", "Failed": "Failed"}.get(s["MonitoringExecutionStatus"], "Completed")
        message = {"Completed": "Completed: Job completed successfully with no violations.",
                   "CompletedWithViolations": f"CompletedWithViolations: Job completed successfully with "
                                              f"{s.get('ViolationCount', 0)} violations.",
                   "Failed": f"Failed: {s.get('FailureReason', '')}"}.get(s["MonitoringExecutionStatus"], "")
        out = {"ProcessingJobName": s["ProcessingJobName"], "ProcessingJobArn": s["ProcessingJobArn"],
               "ProcessingJobStatus": status, "ExitMessage": message,
               "CreationTime": s["CreationTime"], "LastModifiedTime": s["LastModifiedTime"],
               "MonitoringScheduleArn": f"monitoring-schedule/{s['MonitoringScheduleName']}",
               "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output",
                                                       "S3Output": {"S3Uri": s["Output"]}}]},
               **{k: v for k, v in s.items() if k not in ("Output", "ResolvedOutput")}}
        return out

    def wait(self, logs: bool = True) -> None:
        """Nothing to wait for: an execution has ended by the time nbsage hands it out."""

    def _file(self, cls, file_name: str):
        from nbsage.serving.monitor.storage import join
        return cls.from_s3_uri(join(self.output.destination, file_name), sagemaker_session=self.sagemaker_session)

    def statistics(self, file_name: str = "statistics.json", kms_key=None) -> Statistics:
        return self._file(Statistics, file_name)

    def constraint_violations(self, file_name: str = "constraint_violations.json", kms_key=None) -> ConstraintViolations:
        return self._file(ConstraintViolations, file_name)

    def drift_report(self):
        """The inline drift report: baseline vs this execution's data, per feature, and the violations."""
        from nbsage.serving.monitor import schedules
        from nbsage.serving.monitor.report import DriftReport
        if self.summary["MonitoringExecutionStatus"] not in ("Completed", "CompletedWithViolations"):
            raise ValidationError(f"execution {self.job_name} is {self.summary['MonitoringExecutionStatus']}"
                                  + (f": {self.summary['FailureReason']}" if self.summary.get("FailureReason") else "")
                                  + "; only a completed execution has a drift report")
        schedule = schedules.load(self.sagemaker_session, self.summary["MonitoringScheduleName"])
        baseline = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]["BaselineConfig"]
        stats = Statistics.from_s3_uri(baseline["StatisticsResource"]["S3Uri"],
                                       sagemaker_session=self.sagemaker_session)
        constraints = Constraints.from_s3_uri(baseline["ConstraintsResource"]["S3Uri"],
                                              sagemaker_session=self.sagemaker_session)
        return DriftReport(stats.body_dict, self.statistics().body_dict, self.constraint_violations().body_dict,
                           constraints.body_dict, title=f"Drift report: {schedule['EndpointName']} "
                                                        f"({self.summary['ScheduledTime']})")

    def __repr__(self) -> str:
        return (f"MonitoringExecution(job_name={self.job_name!r}, "
                f"status={self.summary['MonitoringExecutionStatus']!r}, output={self.output.destination!r})")


class EndpointInput:
    """The endpoint a monitoring schedule reads the captured data of."""

    def __init__(self, endpoint_name: str, destination: str = "/opt/ml/processing/input/endpoint",
                 s3_input_mode: str = "File", s3_data_distribution_type: str = "FullyReplicated", **kwargs):
        self.endpoint_name, self.destination = endpoint_name, destination
        self.s3_input_mode, self.s3_data_distribution_type = s3_input_mode, s3_data_distribution_type

    def _to_request_dict(self) -> dict:
        return {"EndpointInput": {"EndpointName": self.endpoint_name, "LocalPath": self.destination,
                                  "S3InputMode": self.s3_input_mode,
                                  "S3DataDistributionType": self.s3_data_distribution_type}}



class BatchTransformInput:
    """A batch transform's captured data as a monitoring input: accepted, and refused by
    create_monitoring_schedule (nbsage monitors endpoints)."""

    def __init__(self, data_captured_destination_s3_uri: str, destination: str, dataset_format: dict, **kwargs):
        self.data_captured_destination_s3_uri = data_captured_destination_s3_uri
        self.destination, self.dataset_format = destination, dataset_format


class MonitoringOutput:
    """Where a monitoring job writes its files."""

    def __init__(self, source: str, destination: str | None = None, s3_upload_mode: str = "Continuous"):
        self.source, self.destination, self.s3_upload_mode = source, destination, s3_upload_mode

def _when(value, now: datetime, default: timedelta) -> datetime:
    """A datetime, an ISO offset ('-PT1H') from now, or now + default."""
    if value is None:
        return now + default
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    from nbsage.serving.monitor.cron import offset
    return now + offset(str(value), default)



def list_monitoring_schedules(sagemaker_session=None) -> list[dict]:
    """Every monitoring schedule, DescribeMonitoringSchedule-shaped (reading them starts no scheduler)."""
    from nbsage.serving.monitor import schedules
    session = _session(sagemaker_session)
    return [schedules.describe(session, n, start_scheduler=False) for n in schedules.names(session)]


def describe_monitoring_schedule(name: str, sagemaker_session=None) -> dict:
    """DescribeMonitoringSchedule plus nbsage's `Executions` (summaries, oldest first) and
    `LatestConstraintViolations` (the latest completed execution's, or None); JobError when unknown."""
    from nbsage.serving.monitor import schedules
    session = _session(sagemaker_session)
    desc = schedules.describe(session, name, start_scheduler=False)
    desc["Executions"] = schedules.list_executions(session, name)
    desc["LatestConstraintViolations"] = schedules.latest_violations(session, name)
    return desc

# ---- monitors -----------------------------------------------------------------------------------------------
class ModelMonitor:
    """Baselines and monitoring schedules for an endpoint's captured data (data quality).

    The role, instance and volume arguments are accepted as the SDK's and not used: the analysis runs
    on this machine."""

    def __init__(self, role=None, image_uri=None, instance_count: int = 1, instance_type: str = "ml.m5.xlarge",
                 entrypoint=None, volume_size_in_gb: int = 30, volume_kms_key=None, output_kms_key=None,
                 max_runtime_in_seconds=None, base_job_name: str | None = None, sagemaker_session=None, env=None,
                 tags=None, network_config=None):
        self.role, self.image_uri = role, image_uri
        self.instance_count, self.instance_type = instance_count, instance_type
        self.base_job_name = base_job_name
        self.sagemaker_session = _session(sagemaker_session)
        self.env = env
        self.latest_baselining_job: BaseliningJob | None = None
        self.latest_baselining_job_name: str | None = None
        self.baselining_jobs: list[BaseliningJob] = []
        self.monitoring_schedule_name: str | None = None
        self.job_definition_name: str | None = None
        self._dataset_format = None

    @classmethod
    def monitoring_type(cls) -> str:
        return "DataQuality"

    # ---- baselines ---------------------------------------------------------------------------------------
    def suggest_baseline(self, baseline_dataset, dataset_format, record_preprocessor_script=None,
                         post_analytics_processor_script=None, output_s3_uri: str | None = None, wait: bool = True,
                         logs: bool = True, job_name: str | None = None, monitoring_config_override=None):
        """Suggest statistics.json and constraints.json for a baseline dataset (a CSV or JSON Lines file, or a
        folder of them, at a path or URL); returns the BaseliningJob. It runs here and now (`wait` is
        accepted and the call always waits); the preprocessor scripts are not supported."""
        from nbsage.serving.monitor.baselining import suggest_baseline
        from nbsage.session import unique_name
        if record_preprocessor_script or post_analytics_processor_script:
            raise ValidationError("record_preprocessor_script and post_analytics_processor_script are not supported "
                                  "by nbsage's model monitor; give the baseline dataset as the model sees it")
        session = self.sagemaker_session
        job_name = job_name or unique_name(self.base_job_name or "baseline-suggestion-job")
        output_s3_uri = output_s3_uri or self._default_uri("baselining", job_name)
        record = suggest_baseline(session, job_name, str(baseline_dataset), dataset_format, output_s3_uri)
        if monitoring_config_override is not None:
            self._override_constraints(record, monitoring_config_override)
        self.latest_baselining_job_name = job_name
        self.latest_baselining_job = BaseliningJob._from_record(session, record)
        self.baselining_jobs.append(self.latest_baselining_job)
        self._dataset_format = dataset_format
        return self.latest_baselining_job

    def _override_constraints(self, record: dict, override) -> None:
        job = BaseliningJob._from_record(self.sagemaker_session, record)
        constraints = job.suggested_constraints()
        distribution = getattr(override, "distribution_constraints", None)
        method = getattr(distribution, "categorical_drift_method", None) if distribution else None
        if method:
            constraints.body_dict["monitoring_config"]["distribution_constraints"]["categorical_drift_method"] = method
        constraints.save()

    def _default_uri(self, kind: str, name: str) -> str:
        session = self.sagemaker_session
        parts = [p for p in (session.default_bucket_prefix, "model-monitor", kind, name, "results") if p]
        return f"s3://{session.default_bucket()}/" + "/".join(parts)

    def run_baseline(self):
        raise ModelMonitoringNotAvailable("run_baseline is not a ModelMonitor method nbsage provides; "
                                          "use DefaultModelMonitor.suggest_baseline")

    def baseline_statistics(self, file_name: str = "statistics.json") -> Statistics:
        return self._baselining_job().baseline_statistics(file_name)

    def suggested_constraints(self, file_name: str = "constraints.json") -> Constraints:
        return self._baselining_job().suggested_constraints(file_name)

    def describe_latest_baselining_job(self) -> dict:
        return self._baselining_job().describe()

    def _baselining_job(self) -> BaseliningJob:
        if self.latest_baselining_job is None:
            raise ValidationError("no baselining job was run by this monitor; call suggest_baseline(...) first")
        return self.latest_baselining_job

    # ---- schedules ---------------------------------------------------------------------------------------
    def create_monitoring_schedule(self, endpoint_input=None, record_preprocessor_script=None,
                                   post_analytics_processor_script=None, output_s3_uri: str | None = None,
                                   constraints=None, statistics=None, monitor_schedule_name: str | None = None,
                                   schedule_cron_expression: str | None = None, enable_cloudwatch_metrics: bool = True,
                                   batch_transform_input=None, data_analysis_start_time=None,
                                   data_analysis_end_time=None):
        """Monitor an endpoint's captured data against the baseline on a schedule (default daily), run by
        nbsage's scheduler; `statistics`/`constraints` default to this monitor's latest baseline."""
        from nbsage.serving.monitor import schedules
        from nbsage.session import unique_name
        if self.monitoring_schedule_name is not None:
            raise ValidationError("this monitor already has a monitoring schedule "
                                  f"({self.monitoring_schedule_name!r}); delete it first with "
                                  "delete_monitoring_schedule(), or use another monitor")
        if batch_transform_input is not None or endpoint_input is None:
            raise ValidationError("create_monitoring_schedule needs endpoint_input (an endpoint name or "
                                  "EndpointInput); batch_transform_input is not supported by nbsage")
        if record_preprocessor_script or post_analytics_processor_script:
            raise ValidationError("record_preprocessor_script and post_analytics_processor_script are not supported "
                                  "by nbsage's model monitor")
        endpoint_name = getattr(endpoint_input, "endpoint_name", endpoint_input)
        statistics_uri = self._baseline_uri(statistics, "statistics")
        constraints_uri = self._baseline_uri(constraints, "constraints")
        name = monitor_schedule_name or unique_name("monitoring-schedule")
        expression = schedule_cron_expression or CronExpressionGenerator.daily()
        output_s3_uri = output_s3_uri or self._default_uri("monitoring", name)
        fmt = (self._dataset_format or {}).get("csv") or {}
        schedules.create(self.sagemaker_session, name, str(endpoint_name), output_s3_uri, statistics_uri,
                         constraints_uri, expression,
                         output_first=str(fmt.get("output_columns_position", "START")).upper() != "END",
                         start_offset=data_analysis_start_time, end_offset=data_analysis_end_time)
        self.monitoring_schedule_name = name
        self.job_definition_name = f"data-quality-job-definition-{name}"[:63]

    def _baseline_uri(self, given, what: str) -> str:
        if given is not None:
            return getattr(given, "file_s3_uri", None) or str(given)
        if self.latest_baselining_job is None:
            raise ValidationError(f"create_monitoring_schedule needs {what} (a {what}.json URI or object), or a "
                                  "baseline suggested by this monitor first (suggest_baseline)")
        from nbsage.serving.monitor.storage import join
        return join(self.latest_baselining_job.outputs[0].destination, f"{what}.json")

    def _schedule_name(self) -> str:
        if self.monitoring_schedule_name is None:
            raise ValidationError("this monitor has no monitoring schedule; call create_monitoring_schedule(...) first")
        return self.monitoring_schedule_name

    def describe_schedule(self) -> dict:
        """DescribeMonitoringSchedule."""
        from nbsage.serving.monitor import schedules
        return schedules.describe(self.sagemaker_session, self._schedule_name())

    def list_executions(self) -> list[MonitoringExecution]:
        """The schedule's executions, oldest first (the SDK's order: the latest is [-1])."""
        from nbsage.serving.monitor import schedules
        return [MonitoringExecution(self.sagemaker_session, s)
                for s in schedules.list_executions(self.sagemaker_session, self._schedule_name())]

    def run_now(self, data_analysis_start_time=None, data_analysis_end_time=None) -> MonitoringExecution:
        """Run one execution of the schedule here and now (nbsage's own call, for notebooks and tests) over
        the data captured between the start (default an hour ago) and the end (default now): datetimes,
        or ISO offsets from now such as '-PT1H'."""
        from nbsage.serving.monitor import schedules
        now = datetime.now(timezone.utc)
        start = _when(data_analysis_start_time, now, timedelta(hours=-1))
        end = _when(data_analysis_end_time, now, timedelta(0))
        if start >= end:
            raise ValidationError(f"data_analysis_start_time ({start.isoformat()}) must be before "
                                  f"data_analysis_end_time ({end.isoformat()})")
        summary = schedules.run_execution(self.sagemaker_session, self._schedule_name(), now, start, end, manual=True)
        return MonitoringExecution(self.sagemaker_session, summary)

    def latest_monitoring_statistics(self, file_name: str = "statistics.json") -> Statistics | None:
        execution = self._latest_completed()
        return execution.statistics(file_name) if execution else None

    def latest_monitoring_constraint_violations(self, file_name: str = "constraint_violations.json"):
        execution = self._latest_completed()
        return execution.constraint_violations(file_name) if execution else None

    def _latest_completed(self) -> MonitoringExecution | None:
        done = [e for e in self.list_executions()
                if e.summary["MonitoringExecutionStatus"] in ("Completed", "CompletedWithViolations")]
        return done[-1] if done else None

    def drift_report(self):
        """The inline drift report of the latest completed execution."""
        execution = self._latest_completed()
        if execution is None:
            raise ValidationError(f"monitoring schedule {self._schedule_name()!r} has no completed execution yet; "
                                  "run one with run_now()")
        return execution.drift_report()

    def stop_monitoring_schedule(self) -> None:
        from nbsage.serving.monitor import schedules
        schedules.set_status(self.sagemaker_session, self._schedule_name(), "Stopped")

    def start_monitoring_schedule(self) -> None:
        from nbsage.serving.monitor import schedules
        schedules.set_status(self.sagemaker_session, self._schedule_name(), "Scheduled")

    def delete_monitoring_schedule(self) -> None:
        """Delete the schedule (its scheduler ends; the files its executions wrote stay)."""
        from nbsage.serving.monitor import schedules
        schedules.delete(self.sagemaker_session, self._schedule_name())
        self.monitoring_schedule_name = None
        self.job_definition_name = None

    @classmethod
    def attach(cls, monitor_schedule_name: str, sagemaker_session=None):
        """A monitor for an existing schedule."""
        from nbsage.serving.monitor import schedules
        session = _session(sagemaker_session)
        schedules.load(session, monitor_schedule_name)
        monitor = cls(sagemaker_session=session)
        monitor.monitoring_schedule_name = monitor_schedule_name
        return monitor

    def __repr__(self) -> str:
        return f"{type(self).__name__}(monitoring_schedule_name={self.monitoring_schedule_name!r})"


class DefaultModelMonitor(ModelMonitor):
    """Data-quality monitoring of an endpoint against a baseline (SageMaker's prebuilt monitor)."""


class _NotAvailable:
    """A monitor nbsage does not provide; using it raises ModelMonitoringNotAvailable, naming itself."""

    def __init__(self, *args, **kwargs):
        raise ModelMonitoringNotAvailable(
            f"sagemaker.model_monitor.{type(self).__name__} is not available in nbsage; data-quality monitoring "
            "(DefaultModelMonitor: baselines, schedules, drift reports) and DataCaptureConfig are")


class ModelQualityMonitor(_NotAvailable):
    """Model-quality monitoring against ground truth (not available)."""


class ModelBiasMonitor(_NotAvailable):
    """Bias monitoring (not available)."""


class ModelExplainabilityMonitor(_NotAvailable):
    """Explainability monitoring (not available)."""

