"""`sagemaker.model_monitor.model_monitoring`: the monitors, their baselining jobs and monitoring executions.

The analysis runs on this machine (nbsage.serving.monitor); the role, instance and volume arguments are
accepted as the SDK's and not used."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from nbsage.errors import NBSageError, ValidationError
from nbsage.model_monitor.cron_expression_generator import CronExpressionGenerator
from nbsage.model_monitor.monitoring_files import (Constraints, ConstraintViolations, ProcessingOutput, Statistics,
                                                  session_or_default)


class ModelMonitoringNotAvailable(NBSageError, NotImplementedError):
    """A model-monitoring class nbsage does not provide."""


class BaseliningJob:
    """A baselining job (suggest_baseline): its statistics.json and constraints.json."""

    def __init__(self, sagemaker_session, job_name: str, inputs=None, outputs=None, output_kms_key=None):
        self.sagemaker_session = session_or_default(sagemaker_session)
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
        self.sagemaker_session = session_or_default(sagemaker_session)
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
    session = session_or_default(sagemaker_session)
    return [schedules.describe(session, n, start_scheduler=False) for n in schedules.names(session)]


def describe_monitoring_schedule(name: str, sagemaker_session=None) -> dict:
    """DescribeMonitoringSchedule plus nbsage's `Executions` (summaries, oldest first) and
    `LatestConstraintViolations` (the latest completed execution's, or None); JobError when unknown."""
    from nbsage.serving.monitor import schedules
    session = session_or_default(sagemaker_session)
    desc = schedules.describe(session, name, start_scheduler=False)
    desc["Executions"] = schedules.list_executions(session, name)
    desc["LatestConstraintViolations"] = schedules.latest_violations(session, name)
    return desc


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
        self.sagemaker_session = session_or_default(sagemaker_session)
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
        or ISO offsets from now such as '-PT1H'. Captured records reach their files within
        NBSAGE_DATA_CAPTURE_ROLL_SECONDS (5) of their request: traffic newer than that is not seen yet."""
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
        session = session_or_default(sagemaker_session)
        schedules.load(session, monitor_schedule_name)
        monitor = cls(sagemaker_session=session)
        monitor.monitoring_schedule_name = monitor_schedule_name
        return monitor

    def __repr__(self) -> str:
        return f"{type(self).__name__}(monitoring_schedule_name={self.monitoring_schedule_name!r})"


class DefaultModelMonitor(ModelMonitor):
    """Data-quality monitoring of an endpoint against a baseline (SageMaker's prebuilt monitor)."""

    def __init__(self, role=None, instance_count: int = 1, instance_type: str = "ml.m5.xlarge",
                 volume_size_in_gb: int = 30, volume_kms_key=None, output_kms_key=None, max_runtime_in_seconds=None,
                 base_job_name: str | None = None, sagemaker_session=None, env=None, tags=None, network_config=None):
        super().__init__(role=role, instance_count=instance_count, instance_type=instance_type,
                         volume_size_in_gb=volume_size_in_gb, volume_kms_key=volume_kms_key,
                         output_kms_key=output_kms_key, max_runtime_in_seconds=max_runtime_in_seconds,
                         base_job_name=base_job_name, sagemaker_session=sagemaker_session, env=env, tags=tags,
                         network_config=network_config)


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
