"""Model monitoring: baselines, schedules run by nbsage's scheduler, violations and the drift report."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from nbsage.errors import DataError, JobError, ValidationError
from nbsage.model_monitor import (CronExpressionGenerator, DataCaptureConfig, DataQualityDistributionConstraints,
                                  DatasetFormat, DefaultModelMonitor, ModelMonitoringNotAvailable, ModelQualityMonitor)
from nbsage.serving import endpoints
from nbsage.serving.monitor import cron, datasets, schedules, statistics
from nbsage.store.metadata import pid_alive
from support import make_tarball, wait_for

FEATURES = ["label", "x0", "x1", "x2"]


def write_baseline(path: Path, rows: np.ndarray) -> Path:
    lines = [",".join(FEATURES)] + [",".join(f"{v:.6f}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_suggest_baseline_writes_statistics_and_constraints_in_model_monitors_schema(session, tmp_path):
    csv = tmp_path / "baseline.csv"
    csv.write_text("age,score,color\n1,0.5,red\n2,1.5,blue\n3,,red\n4,2.5,red\n")
    monitor = DefaultModelMonitor(role="SageMakerRole", instance_count=1, instance_type="ml.m5.xlarge")
    job = monitor.suggest_baseline(baseline_dataset=str(csv), dataset_format=DatasetFormat.csv(header=True),
                                   output_s3_uri=str(tmp_path / "baseline"), wait=True)
    assert job.describe()["ProcessingJobStatus"] == "Completed"
    stats = monitor.baseline_statistics().body_dict
    assert json.loads((tmp_path / "baseline" / "statistics.json").read_text()) == stats
    assert stats["version"] == 0 and stats["dataset"] == {"item_count": 4}
    age, score, color = stats["features"]
    assert (age["name"], age["inferred_type"], score["inferred_type"], color["inferred_type"]) == \
        ("age", "Integral", "Fractional", "String")
    numbers = age["numerical_statistics"]
    assert numbers["common"] == {"num_present": 4, "num_missing": 0}
    assert (numbers["mean"], numbers["sum"], numbers["min"], numbers["max"]) == (2.5, 10.0, 1.0, 4.0)
    kll = numbers["distribution"]["kll"]
    assert sum(b["count"] for b in kll["buckets"]) == 4 and kll["buckets"][0]["lower_bound"] == 1.0
    assert kll["sketch"]["parameters"]["k"] > 0 and kll["sketch"]["data"] == [[1.0, 2.0, 3.0, 4.0]]
    assert score["numerical_statistics"]["common"] == {"num_present": 3, "num_missing": 1}
    assert color["string_statistics"]["distinct_count"] == 2
    assert {"value": "red", "count": 3.0} in color["string_statistics"]["distribution"]["categorical"]["buckets"]

    constraints = monitor.suggested_constraints().body_dict
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["age"]["num_constraints"] == {"is_non_negative": True} and by_name["age"]["completeness"] == 1.0
    assert by_name["score"]["completeness"] == 0.75
    assert by_name["color"]["string_constraints"] == {"domains": ["blue", "red"]}
    config = constraints["monitoring_config"]
    assert config["evaluate_constraints"] == "Enabled" and config["distribution_constraints"]["comparison_threshold"] == 0.1


def test_a_json_lines_baseline_is_read_by_its_keys(session, tmp_path):
    lines = tmp_path / "baseline.jsonl"
    lines.write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n')
    monitor = DefaultModelMonitor()
    monitor.suggest_baseline(str(lines), DatasetFormat.json(lines=True), output_s3_uri=str(tmp_path / "out"))
    assert [f["name"] for f in monitor.baseline_statistics().body_dict["features"]] == ["a", "b"]


def test_a_baseline_dataset_of_the_wrong_format_names_the_file_and_what_is_accepted(session, tmp_path):
    monitor = DefaultModelMonitor()
    as_json = tmp_path / "records.csv"
    as_json.write_text('{"a": 1}\n{"a": 2}\n')
    with pytest.raises(DataError, match=r"records\.csv line 1 looks like JSON.*DatasetFormat\.json\(lines=True\)"):
        monitor.suggest_baseline(str(as_json), DatasetFormat.csv(header=False), output_s3_uri=str(tmp_path / "o"))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"ragged\.csv record 3: expected 2 columns"):
        monitor.suggest_baseline(str(ragged), DatasetFormat.csv(header=True), output_s3_uri=str(tmp_path / "o"))
    not_json = tmp_path / "lines.jsonl"
    not_json.write_text("1,2\n")
    with pytest.raises(DataError, match=r"lines\.jsonl line 1 is not a JSON object"):
        monitor.suggest_baseline(str(not_json), DatasetFormat.json(lines=True), output_s3_uri=str(tmp_path / "o"))
    binary = tmp_path / "data.parquet"
    binary.write_bytes(b"PAR1\x00\x01")
    with pytest.raises(DataError, match=r"data\.parquet is a Parquet file.*DatasetFormat\.csv"):
        monitor.suggest_baseline(str(binary), DatasetFormat.csv(), output_s3_uri=str(tmp_path / "o"))
    with pytest.raises(ValidationError, match=r"dataset_format .* DatasetFormat\.csv\(header"):
        monitor.suggest_baseline(str(ragged), {"parquet": {}}, output_s3_uri=str(tmp_path / "o"))
    with pytest.raises(DataError, match="does not exist"):
        monitor.suggest_baseline(str(tmp_path / "missing.csv"), DatasetFormat.csv(), output_s3_uri=str(tmp_path / "o"))


def test_missing_columns_type_changes_completeness_and_unknown_values_are_violations():
    baseline = datasets.read_baseline("b.csv", b"n,f,c\n1,0.5,red\n2,1.5,blue\n3,2.5,red\n", DatasetFormat.csv())
    stats = statistics.dataset_statistics(baseline)
    constraints = statistics.suggest_constraints(stats)
    current = datasets.Dataset(["n", "f"], [["1", "0.5"], ["two", None], ["3", "2.5"]])
    _, found = statistics.evaluate(constraints, stats, current)
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in found["violations"]}
    assert {("c", "missing_column_check"), ("n", "data_type_check"), ("f", "completeness_check")} <= checks
    wider = datasets.Dataset(["n", "f", "c", "_c3"], [["1", "0.5", "green", "9"]])
    _, found = statistics.evaluate(constraints, stats, wider)
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in found["violations"]}
    assert {("_c3", "extra_column_check"), ("c", "categorical_values_check")} <= checks
    _, same = statistics.evaluate(constraints, stats, baseline)
    assert same == {"violations": []}
    for feature in constraints["features"]:  # Constraints.set_monitoring(False, name) for every feature
        feature["monitoringConfigOverrides"] = {"evaluate_constraints": "Disabled"}
    _, off = statistics.evaluate(constraints, stats, wider)
    assert [v["constraint_check_type"] for v in off["violations"]] == ["extra_column_check"]


def test_cron_expressions_fire_as_model_monitor_schedules_them():
    at = datetime(2026, 12, 3, 13, 20, tzinfo=timezone.utc)
    hourly = CronExpressionGenerator.hourly()
    assert cron.next_time(hourly, at) == datetime(2026, 12, 3, 14, 0, tzinfo=timezone.utc)
    assert cron.last_time(hourly, at) == datetime(2026, 12, 3, 13, 0, tzinfo=timezone.utc)
    assert cron.next_time(CronExpressionGenerator.daily(6), at) == datetime(2026, 12, 4, 6, tzinfo=timezone.utc)
    every_4 = CronExpressionGenerator.daily_every_x_hours(4, starting_hour=2)
    assert cron.next_time(every_4, at) == datetime(2026, 12, 3, 14, tzinfo=timezone.utc)
    with pytest.raises(ValidationError, match=r"'cron\(0/5 \* \? \* \* \*\)' is not one Model Monitor accepts"):
        cron.check("cron(0/5 * ? * * *)")


def test_monitors_nbsage_does_not_provide_say_what_it_does():
    with pytest.raises(ModelMonitoringNotAvailable, match="DefaultModelMonitor"):
        ModelQualityMonitor(role="r")
    with pytest.raises(ValidationError, match="'ChiSquared' is not supported.*LInfinity"):
        DataQualityDistributionConstraints(categorical_drift_method="ChiSquared")


def test_a_schedule_needs_an_endpoint_that_captures_data(session, tmp_path):
    session.store.create_endpoint("plain", {"EndpointConfigName": "plain"})
    monitor = DefaultModelMonitor()
    (tmp_path / "b.csv").write_text("a\n1\n")
    monitor.suggest_baseline(str(tmp_path / "b.csv"), DatasetFormat.csv(), output_s3_uri=str(tmp_path / "base"))
    with pytest.raises(ValidationError, match="'plain' does not capture data.*data_capture_config"):
        monitor.create_monitoring_schedule(endpoint_input="plain", schedule_cron_expression=CronExpressionGenerator.hourly())


@pytest.fixture
def monitored(session, tmp_path):
    """An endpoint (prediction = x0) capturing every request, a baseline of its data, an hourly schedule."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 3))
    write_baseline(tmp_path / "baseline.csv", np.column_stack([x[:, 0], x]))
    config = DataCaptureConfig(enable_capture=True, sampling_percentage=100, destination_s3_uri=str(tmp_path / "dc"))
    endpoints.deploy(session, "watched", str(make_tarball(tmp_path, weights=(1.0, 0.0, 0.0))),
                     environment={"NBSAGE_DATA_CAPTURE_ROLL_SECONDS": "0.2"}, data_capture_config=config)
    monitor = DefaultModelMonitor(sagemaker_session=session)
    monitor.suggest_baseline(str(tmp_path / "baseline.csv"), DatasetFormat.csv(header=True),
                             output_s3_uri=str(tmp_path / "baseline-results"))
    monitor.create_monitoring_schedule(monitor_schedule_name="watched-hourly", endpoint_input="watched",
                                       output_s3_uri=str(tmp_path / "reports"),
                                       schedule_cron_expression=CronExpressionGenerator.hourly())
    yield monitor
    if monitor.monitoring_schedule_name:
        monitor.delete_monitoring_schedule()


def send_shifted_traffic(session, tmp_path, requests: int = 10, rows: int = 100) -> None:
    rng = np.random.default_rng(11)
    for _ in range(requests):
        x = rng.normal(size=(rows, 3))
        x[:, 1] += 1.5  # the feature that drifts
        body = "\n".join(",".join(f"{v:.6f}" for v in row) for row in x).encode()
        endpoints.invoke_endpoint(session, "watched", body, "text/csv", "text/csv")

    def captured() -> bool:
        return sum(len(p.read_text().splitlines()) for p in (tmp_path / "dc").rglob("*.jsonl")) >= requests
    wait_for(captured, timeout=60, what="the captured requests in their files")


def test_a_run_on_shifted_captured_data_flags_drift_on_the_shifted_feature_only(session, tmp_path, monitored):
    send_shifted_traffic(session, tmp_path)
    execution = monitored.run_now()
    assert execution.summary["MonitoringExecutionStatus"] == "CompletedWithViolations", execution.summary
    assert execution.summary["ItemCount"] == 1000
    violations = monitored.latest_monitoring_constraint_violations().body_dict["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [("x1", "baseline_drift_check")]
    output = Path(execution.output.destination)
    assert output.relative_to(tmp_path / "reports").parts[:2] == ("watched", "watched-hourly")
    assert json.loads((output / "constraint_violations.json").read_text())["violations"] == violations
    current = monitored.latest_monitoring_statistics().body_dict
    assert current["dataset"]["item_count"] == 1000 and [f["name"] for f in current["features"]] == FEATURES

    report = monitored.drift_report()
    html = report._repr_html_()
    assert html.count("<img src=\"data:image/png;base64,") == 4 and "baseline_drift_check" in html
    rows = {r["name"]: r for r in report.features()}
    assert rows["x1"]["drifted"] and rows["x1"]["distance"] > 0.3
    assert all(rows[n]["distance"] < 0.1 and not rows[n]["drifted"] for n in ("label", "x0", "x2"))
    assert "x1" in repr(report) and "DRIFT" in repr(report)


def test_the_scheduler_runs_each_execution_when_due_and_ends_with_its_schedule(session, tmp_path, monitored):
    send_shifted_traffic(session, tmp_path, requests=2)
    now = datetime.now(timezone.utc)
    hour = (now.hour + 12) % 24  # a daily time half a day away: the real scheduler stays asleep throughout
    daily = DefaultModelMonitor(sagemaker_session=session)
    daily.create_monitoring_schedule(endpoint_input="watched", monitor_schedule_name="watched-daily",
                                     output_s3_uri=str(tmp_path / "daily"),
                                     statistics=monitored.baseline_statistics(),
                                     constraints=monitored.suggested_constraints(),
                                     schedule_cron_expression=CronExpressionGenerator.daily(hour))
    try:
        name = daily.monitoring_schedule_name
        pid = schedules.load(session, name)["nbsage"]["SchedulerPid"]
        assert pid_alive(pid)
        described = daily.describe_schedule()
        assert described["MonitoringScheduleStatus"] == "Scheduled"
        assert described["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == f"cron(0 {hour} ? * * *)"
        assert schedules.run_due(session, name, now) is None  # nothing owed before its time
        due = cron.next_time(f"cron(0 {hour} ? * * *)", now)
        summary = schedules.run_due(session, name, due + timedelta(minutes=1))  # the scheduler's call then
        assert summary["ScheduledTime"] == due.isoformat()
        assert summary["DataAnalysisStartTime"] == (due - timedelta(days=1)).isoformat()  # since the last time
        assert summary["MonitoringExecutionStatus"] == "CompletedWithViolations" and summary["ItemCount"] == 200
        assert summary["Output"] == str(tmp_path / "daily" / "watched" / name / f"{due:%Y/%m/%d/%H}")
        assert schedules.run_due(session, name, due + timedelta(minutes=2)) is None  # each time runs once
        assert [e.summary["ProcessingJobName"] for e in daily.list_executions()] == [summary["ProcessingJobName"]]
        assert daily.describe_schedule()["LastMonitoringExecutionSummary"]["ProcessingJobName"] == \
            summary["ProcessingJobName"]
        execution = daily.list_executions()[-1]
        assert execution.describe()["ProcessingJobStatus"] == "Completed"
        assert execution.describe()["ExitMessage"].startswith("CompletedWithViolations")

        later = schedules.run_due(session, name, due + timedelta(days=1, minutes=1))
        assert later["MonitoringExecutionStatus"] == "Failed" and "Job inputs had no data" in later["FailureReason"]

        daily.stop_monitoring_schedule()
        wait_for(lambda: not pid_alive(pid), timeout=30, what="the scheduler to end with its schedule")
        assert daily.describe_schedule()["MonitoringScheduleStatus"] == "Stopped"
        assert schedules.run_due(session, name, due + timedelta(days=2, minutes=1)) is None  # stopped: nothing runs
        attached = DefaultModelMonitor.attach(name, sagemaker_session=session)
        assert len(attached.list_executions()) == 2
    finally:
        daily.delete_monitoring_schedule()
    with pytest.raises(JobError, match="no monitoring schedule named 'watched-daily'"):
        schedules.load(session, name)

    once = DefaultModelMonitor(sagemaker_session=session)  # a one-time schedule: its scheduler runs it at once
    once.create_monitoring_schedule(endpoint_input="watched", monitor_schedule_name="watched-once",
                                    output_s3_uri=str(tmp_path / "once"), statistics=monitored.baseline_statistics(),
                                    constraints=monitored.suggested_constraints(),
                                    schedule_cron_expression=CronExpressionGenerator.now(),
                                    data_analysis_start_time="-PT1H", data_analysis_end_time="-PT0H")
    try:
        wait_for(once.list_executions, timeout=60, what="the one-time schedule's execution")
        wait_for(lambda: once.list_executions()[0].summary["MonitoringExecutionStatus"] != "InProgress", timeout=60,
                 what="the one-time execution to end")
        assert once.list_executions()[0].summary["MonitoringExecutionStatus"] == "CompletedWithViolations"
    finally:
        once.delete_monitoring_schedule()


def test_the_sdks_model_monitor_submodules_name_the_same_classes():
    from nbsage.model_monitor.dataset_format import DatasetFormat as FromSubmodule
    from nbsage.model_monitor.model_monitoring import DefaultModelMonitor as Monitor
    assert FromSubmodule is DatasetFormat and Monitor is DefaultModelMonitor


def test_a_baseline_reads_from_and_writes_to_s3(session, tmp_path, s3_bucket):
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="data/train.csv", Body=b"a,b\n1,x\n2,y\n")
    monitor = DefaultModelMonitor(sagemaker_session=session)
    monitor.suggest_baseline(f"s3://{bucket}/data/train.csv", DatasetFormat.csv(header=True),
                             output_s3_uri=f"s3://{bucket}/baseline")
    body = json.loads(client.get_object(Bucket=bucket, Key="baseline/constraints.json")["Body"].read())
    assert [f["name"] for f in body["features"]] == ["a", "b"]
    assert monitor.baseline_statistics().file_s3_uri == f"s3://{bucket}/baseline/statistics.json"


def test_captured_json_requests_and_answers_become_rows_with_the_prediction_first():
    def record(data_in, data_out, kind="JSON"):
        return {"captureData": {"endpointInput": {"data": json.dumps(data_in), "encoding": kind},
                                "endpointOutput": {"data": json.dumps(data_out), "encoding": kind}}}
    rows = datasets.captured_rows(record({"instances": [{"features": [1, 2]}, {"features": [3, 4]}]},
                                         {"predictions": [{"score": 0.5}, {"score": 0.25}]}), width=3)
    assert rows == [["0.5", "1", "2"], ["0.25", "3", "4"]]
    assert datasets.captured_rows(record([[1, 2]], [7]), width=3, output_first=False) == [["1", "2", "7"]]
    assert datasets.captured_rows(record([[1, 2]], [7]), width=2) == [["1", "2"]]  # a baseline without the label
    csv_record = {"captureData": {"endpointInput": {"data": "1,2\n3,4\n", "encoding": "CSV"},
                                  "endpointOutput": {"data": "9\n8\n", "encoding": "CSV"}}}
    assert datasets.captured_rows(csv_record, width=3) == [["9", "1", "2"], ["8", "3", "4"]]
    opaque = {"captureData": {"endpointInput": {"data": "AAEC", "encoding": "BASE64"}}}
    assert datasets.captured_rows(opaque, width=3) == []
