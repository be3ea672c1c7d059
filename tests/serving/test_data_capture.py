"""Data capture: an endpoint's model servers write sampled requests and responses as SageMaker does."""
from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

import numpy as np
import pytest

from nbsage.errors import ValidationError
from nbsage.model import Model
from nbsage.model_monitor import DataCaptureConfig
from nbsage.runtime.data_capture import DataCapture
from nbsage.serving import endpoints
from nbsage.serializers import CSVSerializer
from nbsage.serving.capture import capture_config
from support import make_tarball, wait_for

FILE_NAME = re.compile(r"\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-"
                       r"[0-9a-f]{12}\.jsonl")
FAST_ROLL = {"NBSAGE_DATA_CAPTURE_ROLL_SECONDS": "0.2"}


def records_under(folder: Path) -> list[tuple[Path, dict]]:
    return [(path, json.loads(line)) for path in sorted(folder.rglob("*.jsonl"))
            for line in path.read_text().splitlines()]


def test_captured_records_are_sagemakers_json_lines_under_endpoint_variant_and_hour(session, tmp_path):
    destination = tmp_path / "capture"
    config = DataCaptureConfig(enable_capture=True, sampling_percentage=100, destination_s3_uri=str(destination))
    endpoints.deploy(session, "captured", str(make_tarball(tmp_path)), data_capture_config=config)
    body, _, _ = endpoints.invoke_endpoint(session, "captured", b"1,2,3", "text/csv", "text/csv",
                                           inference_id="order-17")
    endpoints.invoke_endpoint(session, "captured", b"[[1, 1, 1]]", "application/json", "application/json")
    npy = _npy([[0.0, 0.0, 1.0]])
    endpoints.invoke_endpoint(session, "captured", npy, "application/x-npy", "application/json")
    desc = endpoints.describe_endpoint(session, "captured")
    assert desc["DataCaptureConfig"] == {"EnableCapture": True, "CaptureStatus": "Started",
                                         "CurrentSamplingPercentage": 100, "DestinationS3Uri": str(destination)}
    endpoints.delete_endpoint(session, "captured")  # SIGTERM: the server writes what it captured before ending

    found = records_under(destination)
    assert len(found) == 3
    for path, record in found:
        relative = path.relative_to(destination).as_posix()
        assert relative.startswith("captured/AllTraffic/") and FILE_NAME.fullmatch(relative.split("/", 2)[2])
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"} and record["eventVersion"] == "0"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["eventMetadata"]["inferenceTime"])
        assert uuid.UUID(record["eventMetadata"]["eventId"])
        assert record["eventMetadata"]["inferenceTime"][:13].replace("-", "/").replace("T", "/") in path.as_posix()
    by_type = {r["captureData"]["endpointInput"]["observedContentType"]: r for _, r in found}
    csv = by_type["text/csv"]
    assert csv["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                   "data": "1,2,3", "encoding": "CSV"}
    assert csv["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert csv["captureData"]["endpointOutput"]["data"] == body.decode()
    assert csv["captureData"]["endpointOutput"]["encoding"] == "CSV"
    assert csv["eventMetadata"]["inferenceId"] == "order-17"
    js = by_type["application/json"]
    assert js["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert json.loads(js["captureData"]["endpointInput"]["data"]) == [[1, 1, 1]]
    assert "inferenceId" not in js["eventMetadata"]
    binary = by_type["application/x-npy"]["captureData"]["endpointInput"]
    assert binary["encoding"] == "BASE64" and base64.b64decode(binary["data"]) == npy


def _npy(rows) -> bytes:
    import io
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(rows))
    return buffer.getvalue()


def test_the_sampled_share_of_invocations_is_the_sampling_percentage(tmp_path):
    capture = DataCapture(str(tmp_path / "capture"), "sampled", sampling_percentage=25, roll_seconds=0.05,
                          max_queued=100_000)
    n = 20_000
    queued = sum(capture.offer(b"1,2", "text/csv", b"3", "text/csv") for _ in range(n))
    capture.close()
    sd = (n * 0.25 * 0.75) ** 0.5
    assert abs(queued - n * 0.25) < 6 * sd  # binomial bounds, one in ~10^9 to fail by chance
    assert len(records_under(tmp_path / "capture")) == queued and capture.dropped == 0


def test_a_full_queue_drops_captures_and_never_holds_the_request_path(tmp_path):
    capture = DataCapture(str(tmp_path / "capture"), "busy", sampling_percentage=100, max_queued=1)
    n = 20_000
    queued = sum(capture.offer(b"1,2", "text/csv", b"3", "text/csv") for _ in range(n))  # never waits
    capture.close()
    assert queued + capture.dropped == n and capture.dropped > 0
    assert len(records_under(tmp_path / "capture")) == queued


def test_request_only_capture_and_content_type_lists_come_from_the_config(tmp_path):
    capture = DataCapture(str(tmp_path), "e", capture_output=False, csv_content_types=["text/plain"])
    record = capture.record(0.0, b"a,b", "text/plain; charset=utf-8", b"x", "text/csv")
    capture.close()
    assert record["captureData"] == {"endpointInput": {"observedContentType": "text/plain; charset=utf-8",
                                                       "mode": "INPUT", "data": "a,b", "encoding": "CSV"}}
    assert record["eventMetadata"]["inferenceTime"] == "1970-01-01T00:00:00Z"


def test_an_unwritable_destination_turns_capture_off_and_the_endpoint_keeps_serving(session, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the capture folder would be\n")
    config = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": str(blocker / "capture"),
              "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}
    endpoints.deploy(session, "blocked", str(make_tarball(tmp_path)), environment=FAST_ROLL,
                     data_capture_config=config)
    for _ in range(5):
        assert float(endpoints.invoke_endpoint(session, "blocked", b"1,1,1", "text/csv", "text/csv")[0]) == 6.0
    stopped = wait_for(lambda: endpoints.describe_endpoint(session, "blocked")["DataCaptureConfig"]
                       if endpoints.describe_endpoint(session, "blocked")["DataCaptureConfig"]["CaptureStatus"]
                       == "Stopped" else None, timeout=60, what="capture to report itself stopped")
    assert stopped["EnableCapture"] is True and str(blocker / "capture") in stopped["CaptureStatusReason"]
    assert "keeps serving" in stopped["CaptureStatusReason"]
    assert float(endpoints.invoke_endpoint(session, "blocked", b"1,1,1", "text/csv", "text/csv")[0]) == 6.0
    assert endpoints.describe_endpoint(session, "blocked")["EndpointStatus"] == "InService"
    log = Path(endpoints.describe_endpoint(session, "blocked")["LogFile"]).read_text()
    assert "data capture to" in log and "turned off" in log


def test_capture_to_s3_rolls_files_into_the_bucket(session, tmp_path, s3_bucket):
    bucket, client = s3_bucket
    config = DataCaptureConfig(enable_capture=True, sampling_percentage=100,
                               destination_s3_uri=f"s3://{bucket}/datacapture")
    model = Model(str(make_tarball(tmp_path)), env=FAST_ROLL, sagemaker_session=session)
    predictor = model.deploy(initial_instance_count=1, instance_type="local", endpoint_name="to-s3",
                             serializer=CSVSerializer(), data_capture_config=config)  # the SDK's call
    assert predictor.describe()["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{bucket}/datacapture"
    for i in range(3):
        predictor.predict([i, 0, 0])

    def keys():
        listing = client.list_objects_v2(Bucket=bucket, Prefix="datacapture/").get("Contents", [])
        return [o["Key"] for o in listing] if listing else None
    found = wait_for(keys, timeout=60, what="capture files in the bucket")  # rolled while the endpoint runs
    assert all(k.startswith("datacapture/to-s3/AllTraffic/") and FILE_NAME.fullmatch(k.split("/", 3)[3])
               for k in found)
    lines = [json.loads(line) for k in found
             for line in client.get_object(Bucket=bucket, Key=k)["Body"].read().decode().splitlines()]
    inputs = sorted(r["captureData"]["endpointInput"]["data"] for r in lines)
    assert inputs == ["0,0,0", "1,0,0", "2,0,0"][:len(inputs)] and len(inputs) >= 1


@pytest.mark.parametrize("config, field", [
    ({"InitialSamplingPercentage": 150, "DestinationS3Uri": "/tmp/x"}, "InitialSamplingPercentage"),
    ({"CaptureOptions": [{"CaptureMode": "Everything"}], "DestinationS3Uri": "/tmp/x"}, "CaptureOptions"),
    ({"InitialSamplingPercentage": 10}, "DestinationS3Uri"),
])
def test_a_bad_data_capture_config_names_the_field(config, field):
    with pytest.raises(ValidationError, match=field):
        capture_config(config)


def test_the_sdk_config_becomes_create_endpoint_configs_dict_with_the_default_destination(session):
    capture = capture_config(DataCaptureConfig(enable_capture=True, capture_options=["REQUEST"]), session)
    assert capture["DestinationS3Uri"] == f"s3://{session.default_bucket()}/model-monitor/data-capture"
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}]
    assert capture["InitialSamplingPercentage"] == 20
    assert capture["CaptureContentTypeHeader"] == {"CsvContentTypes": ["text/csv"],
                                                   "JsonContentTypes": ["application/json"]}


def test_a_missing_bucket_turns_capture_off_and_records_why(tmp_path, s3_bucket):
    status = tmp_path / "status.json"
    capture = DataCapture("s3://no-such-bucket-for-capture/dc", "e", sampling_percentage=100, status_file=str(status),
                          roll_seconds=0.05)
    assert capture.offer(b"1,2", "text/csv", b"3", "text/csv")
    capture.close()
    assert not capture.enabled and not capture.offer(b"1,2", "text/csv", b"3", "text/csv")
    recorded = json.loads(status.read_text())
    assert recorded["CaptureStatus"] == "Stopped" and "s3://no-such-bucket-for-capture/dc" in recorded["Reason"]
