"""An endpoint's DataCaptureConfig: validated once, handed to its model servers, shown in describe.

`capture_config` turns what a user gives — the SDK's `DataCaptureConfig` (nbsage's or the real
`sagemaker.model_monitor` one) or CreateEndpointConfig's `DataCaptureConfig` dict — into the one
dict an endpoint records; `server_environment` is what each model server of a variant needs to
capture (nbsage.runtime.data_capture reads it); `describe_capture` is DescribeEndpoint's
`DataCaptureConfig` (EnableCapture, CaptureStatus, CurrentSamplingPercentage, DestinationS3Uri), with
`CaptureStatus` "Stopped" and a `CaptureStatusReason` once a server found the destination unwritable.

KmsKeyId is recorded and not used: captured files are written as the destination's own settings
encrypt them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from nbsage.errors import ValidationError
from nbsage.runtime.data_capture import (CONFIG_ENV, DEFAULT_VARIANT, ENDPOINT_ENV, STATUS_ENV, VARIANT_ENV)

DEFAULT_DESTINATION_KEY = "model-monitor/data-capture"  # under the default bucket, as the SDK's
STATUS_NAME = "data-capture-status.json"  # in the endpoint's folder, written by a server that stopped capturing
MODES = {"REQUEST": "Input", "RESPONSE": "Output", "Input": "Input", "Output": "Output",
         "InputAndOutput": "InputAndOutput"}


def _sdk_request_dict(config) -> dict:
    to_dict = getattr(config, "_to_request_dict", None)
    if to_dict is None:
        raise ValidationError(f"data_capture_config must be a DataCaptureConfig or CreateEndpointConfig's "
                              f"DataCaptureConfig dict, not {type(config).__name__}")
    return dict(to_dict())


def capture_config(config, session=None) -> dict | None:
    """CreateEndpointConfig's DataCaptureConfig for `config` (None when there is none), validated:
    InitialSamplingPercentage 0-100, CaptureOptions of Input/Output/InputAndOutput, a DestinationS3Uri
    (default s3://<default bucket>/model-monitor/data-capture)."""
    if config is None:
        return None
    raw = dict(config) if isinstance(config, dict) else _sdk_request_dict(config)
    out = {"EnableCapture": bool(raw.get("EnableCapture", True))}
    try:
        percentage = float(raw.get("InitialSamplingPercentage", 20))
    except (TypeError, ValueError):
        percentage = -1
    if not 0 <= percentage <= 100:
        raise ValidationError(f"DataCaptureConfig.InitialSamplingPercentage (sampling_percentage) must be a number "
                              f"from 0 to 100, got {raw.get('InitialSamplingPercentage')!r}")
    out["InitialSamplingPercentage"] = int(percentage) if percentage == int(percentage) else percentage
    destination = raw.get("DestinationS3Uri") or ""
    if not destination:
        if session is None:
            raise ValidationError("DataCaptureConfig.DestinationS3Uri (destination_s3_uri) is required")
        prefix = "/".join(p for p in (session.default_bucket_prefix, DEFAULT_DESTINATION_KEY) if p)
        destination = f"s3://{session.default_bucket()}/{prefix}"
    if not isinstance(destination, (str, os.PathLike)):
        raise ValidationError(f"DataCaptureConfig.DestinationS3Uri must be a path or URL, got {destination!r}")
    destination = str(destination)
    if "://" not in destination:  # a local path means the same folder from any process and directory
        destination = str(Path(destination).expanduser().resolve())
    out["DestinationS3Uri"] = destination
    options = raw.get("CaptureOptions") or [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    modes = []
    for option in options:
        mode = option.get("CaptureMode") if isinstance(option, dict) else option
        if mode not in MODES:
            raise ValidationError(f"DataCaptureConfig.CaptureOptions: {mode!r} is not a capture mode; use "
                                  "'REQUEST'/'RESPONSE' (capture_options) or CaptureMode 'Input', 'Output', "
                                  "'InputAndOutput'")
        modes.append({"CaptureMode": MODES[mode]})
    out["CaptureOptions"] = modes
    header = raw.get("CaptureContentTypeHeader") or {}
    out["CaptureContentTypeHeader"] = {
        "CsvContentTypes": list(header.get("CsvContentTypes") or ["text/csv"]),
        "JsonContentTypes": list(header.get("JsonContentTypes") or ["application/json"])}
    if raw.get("KmsKeyId"):
        out["KmsKeyId"] = raw["KmsKeyId"]  # recorded; the destination's own encryption applies
    return out


def resolved_destination(capture: dict, session=None) -> str:
    """Where the captured files really go: `s3://<default bucket>/...` in the artifact store when the
    default bucket is nbsage's name for it, a local path made absolute (servers run elsewhere)."""
    destination = capture["DestinationS3Uri"]
    if session is not None:
        destination = str(session.resolve_uri(destination))
    if "://" not in destination:
        destination = str(Path(destination).expanduser().resolve())
    elif destination.startswith("file://"):
        destination = str(Path(destination[len("file://"):]).expanduser().resolve())
    return destination


def capture_prefix(capture: dict, endpoint_name: str, variant_name: str = DEFAULT_VARIANT, session=None) -> str:
    """`<destination>/<endpoint>/<variant>`: where one variant's capture files are."""
    return f"{resolved_destination(capture, session).rstrip('/')}/{endpoint_name}/{variant_name}"


def server_environment(capture: dict | None, endpoint_name: str, variant_name: str = DEFAULT_VARIANT,
                       status_file: str | os.PathLike | None = None, session=None) -> dict[str, str]:
    """The environment a variant's model server captures with (empty when capture is off)."""
    if not capture or not capture.get("EnableCapture", True):
        return {}
    env = {CONFIG_ENV: json.dumps({**capture, "DestinationS3Uri": resolved_destination(capture, session)}),
           ENDPOINT_ENV: endpoint_name, VARIANT_ENV: variant_name}
    if status_file:
        env[STATUS_ENV] = str(status_file)
    return env


def describe_capture(capture: dict | None, status_file: str | os.PathLike | None = None) -> dict | None:
    """DescribeEndpoint's DataCaptureConfig: EnableCapture, CaptureStatus (Started|Stopped),
    CurrentSamplingPercentage, DestinationS3Uri, plus CaptureStatusReason when a server stopped capturing."""
    if not capture:
        return None
    out = {"EnableCapture": bool(capture.get("EnableCapture", True)),
           "CaptureStatus": "Started" if capture.get("EnableCapture", True) else "Stopped",
           "CurrentSamplingPercentage": capture.get("InitialSamplingPercentage", 20),
           "DestinationS3Uri": capture["DestinationS3Uri"]}
    if capture.get("KmsKeyId"):
        out["KmsKeyId"] = capture["KmsKeyId"]
    stopped = read_status(status_file)
    if stopped and out["EnableCapture"]:
        out["CaptureStatus"] = "Stopped"
        out["CaptureStatusReason"] = stopped.get("Reason") or "a model server stopped capturing"
    return out


def read_status(status_file) -> dict | None:
    """What a model server wrote when it turned capture off, or None."""
    if not status_file:
        return None
    try:
        return json.loads(Path(status_file).read_text())
    except (OSError, ValueError):
        return None
