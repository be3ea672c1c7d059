"""The console's REST API for monitoring schedules: their description, executions and latest violations."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from tornado.httpclient import HTTPClientError

pytest.importorskip("pytest_jupyter")

pytestmark = pytest.mark.filterwarnings("error::jupyter_server.utils.JupyterServerAuthWarning")


@pytest.fixture
def schedule(session, tmp_path):
    """A schedule on an endpoint record that captures to tmp_path/dc, with one execution over captured data."""
    from nbsage.model_monitor import DatasetFormat, DefaultModelMonitor
    from nbsage.runtime.data_capture import DataCapture
    from nbsage.serving.capture import capture_config
    from nbsage.serving.monitor import schedules
    capture = capture_config({"DestinationS3Uri": str(tmp_path / "dc"), "InitialSamplingPercentage": 100})
    session.store.create_endpoint("ep", {"EndpointConfigName": "ep", "DataCaptureConfig": capture})
    (tmp_path / "b.csv").write_text("y,a\n" + "".join(f"{i % 3},{i % 5}\n" for i in range(60)))
    monitor = DefaultModelMonitor(sagemaker_session=session)
    monitor.suggest_baseline(str(tmp_path / "b.csv"), DatasetFormat.csv(), output_s3_uri=str(tmp_path / "base"))
    base = monitor.latest_baselining_job.outputs[0].destination
    schedules.create(session, "ep-watch", "ep", str(tmp_path / "out"), f"{base}/statistics.json",
                     f"{base}/constraints.json", "cron(0 * ? * * *)", start_scheduler=False)
    writer = DataCapture(str(tmp_path / "dc"), "ep", sampling_percentage=100)
    for i in range(20):
        writer.offer(f"{i % 5}".encode(), "text/csv", b"9", "text/csv")  # y is never 9 in the baseline
    writer.close()
    now = datetime.now(timezone.utc)
    schedules.run_execution(session, "ep-watch", now, now - timedelta(hours=1), now + timedelta(minutes=1),
                            manual=True)
    return "ep-watch"


async def test_monitoring_schedules_are_listed_and_described_with_their_violations(jp_fetch, schedule):
    listed = json.loads((await jp_fetch("nbsage", "api", "monitoring-schedules")).body)
    [summary] = listed["MonitoringScheduleSummaries"]
    assert summary["MonitoringScheduleName"] == "ep-watch" and summary["EndpointName"] == "ep"
    assert summary["LastMonitoringExecutionSummary"]["MonitoringExecutionStatus"] == "CompletedWithViolations"
    desc = json.loads((await jp_fetch("nbsage", "api", "monitoring-schedules", "ep-watch")).body)
    assert [e["MonitoringExecutionStatus"] for e in desc["Executions"]] == ["CompletedWithViolations"]
    assert ("y", "baseline_drift_check") in {(v["feature_name"], v["constraint_check_type"])
                                             for v in desc["LatestConstraintViolations"]}
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("nbsage", "api", "monitoring-schedules", "ep-wach")
    assert info.value.code == 404 and "did you mean 'ep-watch'" in json.loads(info.value.response.body)["message"]
