"""Data capture inside the model server: sampled requests and responses as SageMaker writes them.

Each captured invocation is one JSON line, as SageMaker's data capture writes it:
`{"captureData": {"endpointInput": {...}, "endpointOutput": {...}}, "eventMetadata": {"eventId",
"inferenceId" (when the caller sent one), "inferenceTime"}, "eventVersion": "0"}`, where each side is
`{"observedContentType", "mode": "INPUT"|"OUTPUT", "data", "encoding"}` — the body as text for the
CSV and JSON content types the config lists ("CSV"/"JSON"), base64 for anything else ("BASE64").
Files go to `<destination>/<endpoint>/<variant>/YYYY/MM/DD/HH/MM-SS-mmm-<uuid>.jsonl`, named after
their first record's time (UTC), on any fsspec destination; the uuid keeps several instances of one
variant from ever writing the same file.

Why a queue and a thread: a capture must never slow or fail a request. The request path only draws
the sample and puts the bodies on a bounded queue (a full queue drops the capture, it never waits);
one writer thread builds the records and writes a file every NBSAGE_DATA_CAPTURE_ROLL_SECONDS (5)
and when the server stops (SIGTERM included), so what was captured reaches the destination.
A destination that cannot be written turns capture off for this server: the reason goes to the
server's log and to the status file the endpoint's describe reads (NBSAGE_DATA_CAPTURE_STATUS_FILE),
and requests go on being served.

The server learns what to capture from its environment, set by the endpoint that starts it
(nbsage.serving.capture.server_environment): NBSAGE_DATA_CAPTURE_CONFIG (CreateEndpointConfig's
DataCaptureConfig as JSON, its destination already resolved), NBSAGE_ENDPOINT_NAME,
NBSAGE_VARIANT_NAME (default "AllTraffic").
"""
from __future__ import annotations

import base64
import json
import os
import queue
import random
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

CONFIG_ENV = "NBSAGE_DATA_CAPTURE_CONFIG"
ENDPOINT_ENV = "NBSAGE_ENDPOINT_NAME"
VARIANT_ENV = "NBSAGE_VARIANT_NAME"
STATUS_ENV = "NBSAGE_DATA_CAPTURE_STATUS_FILE"
ROLL_ENV = "NBSAGE_DATA_CAPTURE_ROLL_SECONDS"
QUEUE_ENV = "NBSAGE_DATA_CAPTURE_MAX_QUEUED"
DEFAULT_VARIANT = "AllTraffic"
DEFAULT_ROLL_SECONDS = 5.0
DEFAULT_MAX_QUEUED = 10_000  # captures waiting for the writer; past it a capture is dropped
MAX_FILE_BYTES = 16 * 1024 * 1024  # a busy endpoint's file is written early at this size
_STOP = object()


def media_type(content_type: str | None) -> str:
    """'text/csv' of 'text/CSV; charset=utf-8': what the content-type lists are matched on."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def capture_path(destination: str, endpoint: str, variant: str, when: float) -> str:
    """`<destination>/<endpoint>/<variant>/YYYY/MM/DD/HH/MM-SS-mmm-<uuid>.jsonl` for a file whose first
    record was captured at `when` (epoch seconds, UTC)."""
    t = datetime.fromtimestamp(when, tz=timezone.utc)
    name = f"{t:%M-%S}-{t.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    return "/".join([destination.rstrip("/"), endpoint, variant, f"{t:%Y/%m/%d/%H}", name])


class DataCapture:
    """Samples one server's invocations and writes them, off the request path, as capture files."""

    def __init__(self, destination: str, endpoint: str, variant: str = DEFAULT_VARIANT, *,
                 sampling_percentage: float = 20, capture_input: bool = True, capture_output: bool = True,
                 csv_content_types=("text/csv",), json_content_types=("application/json",),
                 status_file: str | None = None, roll_seconds: float = DEFAULT_ROLL_SECONDS,
                 max_queued: int = DEFAULT_MAX_QUEUED):
        self.destination, self.endpoint, self.variant = destination, endpoint, variant
        self.sampling_percentage = float(sampling_percentage)
        self.capture_input, self.capture_output = capture_input, capture_output
        self.csv_types = {media_type(t) for t in csv_content_types}
        self.json_types = {media_type(t) for t in json_content_types}
        self.status_file = status_file
        self.roll_seconds = roll_seconds
        self.queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self.random = random.Random()
        self.enabled = True
        self.dropped = 0  # captures the full queue turned away
        self.files_written = 0
        self._thread = threading.Thread(target=self._write_loop, name="nbsage-data-capture", daemon=True)
        self._thread.start()

    @classmethod
    def from_environment(cls, environ=None) -> "DataCapture | None":
        """The capture this server's environment asks for, or None (no config, or EnableCapture false)."""
        environ = os.environ if environ is None else environ
        raw = environ.get(CONFIG_ENV, "").strip()
        if not raw:
            return None
        try:
            config = json.loads(raw)
            if not config.get("EnableCapture", True):
                return None
            modes = {o.get("CaptureMode") for o in config.get("CaptureOptions") or [{"CaptureMode": "InputAndOutput"}]}
            headers = config.get("CaptureContentTypeHeader") or {}

            def number(name, default):
                try:
                    return float(environ.get(name) or default)
                except ValueError:
                    return default
            return cls(str(config["DestinationS3Uri"]), environ.get(ENDPOINT_ENV) or "endpoint",
                       environ.get(VARIANT_ENV) or DEFAULT_VARIANT,
                       sampling_percentage=float(config.get("InitialSamplingPercentage", 20)),
                       capture_input=bool(modes & {"Input", "InputAndOutput"}),
                       capture_output=bool(modes & {"Output", "InputAndOutput"}),
                       csv_content_types=headers.get("CsvContentTypes") or ["text/csv"],
                       json_content_types=headers.get("JsonContentTypes") or ["application/json"],
                       status_file=environ.get(STATUS_ENV) or None,
                       roll_seconds=max(0.05, number(ROLL_ENV, DEFAULT_ROLL_SECONDS)),
                       max_queued=max(1, int(number(QUEUE_ENV, DEFAULT_MAX_QUEUED))))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"nbsage model server: {CONFIG_ENV} is not a DataCaptureConfig ({exc}); nothing is captured",
                  file=sys.stderr, flush=True)
            return None

    # ---- the request path: a draw and a put, never a wait -------------------------------------------
    def offer(self, body: bytes, content_type: str | None, out: bytes, out_type: str | None,
              inference_id: str | None = None) -> bool:
        """Capture this invocation if it is sampled; True when it was queued for writing."""
        if not self.enabled or self.random.random() * 100.0 >= self.sampling_percentage:
            return False
        try:
            self.queue.put_nowait((time.time(), body, content_type, out, out_type, inference_id))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    # ---- the writer thread --------------------------------------------------------------------------
    def _side(self, data: bytes, content_type: str | None, mode: str) -> dict:
        kind = media_type(content_type)
        encoding = "CSV" if kind in self.csv_types else "JSON" if kind in self.json_types else "BASE64"
        text = None
        if encoding != "BASE64":
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                encoding = "BASE64"  # bytes that are not text are kept exactly
        if text is None:
            text = base64.b64encode(bytes(data)).decode("ascii")
        return {"observedContentType": content_type or "", "mode": mode, "data": text, "encoding": encoding}

    def record(self, when: float, body: bytes, content_type, out: bytes, out_type, inference_id=None) -> dict:
        """One capture record, as SageMaker writes it."""
        capture = {}
        if self.capture_input:
            capture["endpointInput"] = self._side(body, content_type, "INPUT")
        if self.capture_output:
            capture["endpointOutput"] = self._side(out, out_type, "OUTPUT")
        metadata = {"eventId": str(uuid.uuid4())}
        if inference_id:
            metadata["inferenceId"] = inference_id
        metadata["inferenceTime"] = datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}

    def _write_loop(self) -> None:
        lines: list[str] = []
        size, first, deadline = 0, 0.0, None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self.queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is not None and item is not _STOP and self.enabled:
                line = json.dumps(self.record(*item), separators=(",", ":"))
                if not lines:
                    first, deadline = item[0], time.monotonic() + self.roll_seconds
                lines.append(line)
                size += len(line) + 1
            due = item is _STOP or size >= MAX_FILE_BYTES or (deadline is not None and time.monotonic() >= deadline)
            if lines and due:
                self._write(first, "\n".join(lines) + "\n")
                lines, size, deadline = [], 0, None
            if item is _STOP:
                return

    def _write(self, first: float, text: str) -> None:
        if not self.enabled:
            return
        path = capture_path(self.destination, self.endpoint, self.variant, first)
        try:
            write_file(path, text.encode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - any failure of the destination turns capture off
            self.turn_off(f"{type(exc).__name__}: {exc}")
            return
        if not self.files_written and self.status_file:
            try:  # a server before this one (replaced since) could not write here; this one can
                os.unlink(self.status_file)
            except OSError:
                pass
        self.files_written += 1

    def turn_off(self, reason: str) -> None:
        """Stop capturing (the destination cannot be written) and say so where the endpoint looks."""
        self.enabled = False
        message = (f"data capture to {self.destination} failed and is turned off ({reason}); "
                   "the endpoint keeps serving requests")
        print(f"nbsage model server: {message}", file=sys.stderr, flush=True)
        if self.status_file:
            try:
                write_file(self.status_file, json.dumps(
                    {"CaptureStatus": "Stopped", "Reason": message, "Time": time.time(),
                     "VariantName": self.variant, "Pid": os.getpid()}).encode("utf-8"))
            except OSError as exc:
                print(f"nbsage model server: could not record the capture status in {self.status_file}: {exc}",
                      file=sys.stderr, flush=True)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is still queued and stop the writer (the server is stopping)."""
        while True:
            try:
                self.queue.put(_STOP, timeout=1.0)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    return
        self._thread.join(timeout)


def write_file(url: str, data: bytes) -> None:
    """Write a whole file at a local path or fsspec URL; a local one appears complete or not at all."""
    if "://" not in url or url.startswith("file://"):
        path = url[len("file://"):] if url.startswith("file://") else url
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    import fsspec
    fs, path = fsspec.core.url_to_fs(url)
    fs.pipe_file(path, data)  # an object store publishes a PUT whole
