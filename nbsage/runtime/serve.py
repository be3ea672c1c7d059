"""The model server: SageMaker's inference container contract as one local process.

`GET /ping` answers 200 once the model is loaded (503 while it loads), `POST /invocations`
passes the body, Content-Type and Accept to an `InferenceHandler` and returns its answer, and
`GET /execution-parameters` tells batch transform how to call it. Errors map to the status codes
SageMaker's containers use (400, 406, 413, 415, 500) with a one-line JSON body
`{"code": ..., "type": ..., "message": ...}` (the multi-model-server shape); the traceback of an
unexpected error goes to stderr, never into the body.

The HTTP/1.1 layer is a small keep-alive parser over `socketserver` threads rather than
`http.server`: headers are read once into a dict, the response is written with one `sendall`, and
Nagle is off, so the server adds tens of microseconds to a request, not milliseconds.

Environment knobs (as the inference toolkit): SAGEMAKER_MAX_PAYLOAD_IN_MB (default 6),
SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, SAGEMAKER_MODEL_SERVER_WORKERS (concurrent invocations,
default: CPU count), SAGEMAKER_PROGRAM (the entry point when none is given). NBSAGE_ACCESS_LOG=1
prints one line per request to stderr.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from pathlib import Path

DEFAULT_MAX_PAYLOAD_MB = 6
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
_MAX_LINE = 65536
_MAX_HEADERS = 200
# a rejected (413) body up to this size is read and dropped so the connection stays usable;
# anything bigger closes the connection
_DRAIN_LIMIT = 64 * 1024 * 1024
_IDLE_TIMEOUT = 300.0

_REASONS = {200: "OK", 100: "Continue", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout",
            411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
            424: "Failed Dependency", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class _BadRequest(Exception):
    """The HTTP framing itself is broken; answered and the connection closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def max_payload_bytes() -> int:
    """The /invocations body limit: SAGEMAKER_MAX_PAYLOAD_IN_MB (default 6) MiB, as SageMaker counts."""
    raw = os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_PAYLOAD_MB
    except ValueError:
        mb = DEFAULT_MAX_PAYLOAD_MB
    return int(mb * 1024 * 1024)


def _workers() -> int:
    raw = os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "").strip()
    try:
        return max(1, int(raw)) if raw else max(1, os.cpu_count() or 1)
    except ValueError:
        return max(1, os.cpu_count() or 1)


def error_status(exc: BaseException) -> int:
    """The HTTP status for an exception raised while answering /invocations.

    nbsage errors carry `status` (415, 406, 413, 400); DataError is malformed input (400);
    the inference toolkit's BaseInferenceToolkitError carries `status_code`; anything else is 500.
    """
    from nbsage.errors import DataError
    for attr in ("status", "status_code"):
        status = getattr(exc, attr, None)
        if isinstance(status, int) and 400 <= status <= 599:
            return status
    if isinstance(exc, DataError):
        return 400
    return 500


def one_line(exc: BaseException, limit: int = 1000) -> str:
    """`Type: message` on one line, for an error body or a failure reason."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    from nbsage.errors import NBSageError
    if not isinstance(exc, NBSageError) and getattr(exc, "status_code", None) is None:
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_handler(model_dir: str | os.PathLike, algorithm: str | None = None, entry_point: str | None = None):
    """The InferenceHandler for a model directory: user code if there is an entry point (given,
    SAGEMAKER_PROGRAM, or code/inference.py), else the built-in algorithm's loader."""
    model_dir = Path(model_dir)
    entry_point = entry_point or os.environ.get("SAGEMAKER_PROGRAM") or None
    if not entry_point and not algorithm and (model_dir / "code" / "inference.py").exists():
        entry_point = "inference.py"
    if entry_point:
        from nbsage.runtime.user_code import load
        return load(model_dir, entry_point)
    if not algorithm:
        from nbsage.errors import ValidationError
        raise ValidationError(
            f"nothing to serve in {model_dir}: give a built-in algorithm (e.g. --algorithm xgboost) or "
            "inference code (model.tar.gz with code/inference.py, or --entry-point)")
    from nbsage import algorithms
    return algorithms.get(algorithm).load(str(model_dir))


class ModelServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A keep-alive HTTP/1.1 server, one thread per connection, answering the inference contract."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, handler=None, *, empty_body_status: int = 400):
        super().__init__(address, _Connection)
        self.handler = handler
        self.load_error: str | None = None
        self.empty_body_status = empty_body_status
        self.max_payload = max_payload_bytes()
        self.workers = _workers()
        self.slots = threading.BoundedSemaphore(self.workers)
        self.default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or None
        self.access_log = os.environ.get("NBSAGE_ACCESS_LOG", "").lower() in ("1", "true", "yes")

    @property
    def port(self) -> int:
        return self.server_address[1]

    def set_handler(self, handler) -> None:
        self.handler = handler
        self.empty_body_status = 204 if getattr(handler, "empty_body_status", None) == 204 \
            else self.empty_body_status

    def execution_parameters(self) -> dict:
        return {"MaxConcurrentTransforms": self.workers, "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": max(1, round(self.max_payload / (1024 * 1024)))}

    def invoke(self, body: bytes, headers: dict) -> tuple[int, bytes, str, dict | None]:
        """Answer one /invocations request: (status, body, content type, extra headers)."""
        handler = self.handler
        if handler is None:
            return _error(503, "ModelNotReady", self.load_error or "the model is still loading")
        if not body:
            if self.empty_body_status == 204:
                return 204, b"", "", None
            return _error(400, "InvalidRequest", "the request body is empty; send at least one record")
        content_type = headers.get("content-type")
        accept = headers.get("accept")
        if not accept or accept.strip() == "*/*":
            accept = self.default_accept
        extra = None
        try:
            with self.slots:
                invoke_request = getattr(handler, "invoke_request", None)
                if invoke_request is not None:
                    out, out_type, extra = invoke_request(body, content_type, accept, headers)
                else:
                    out, out_type = handler.invoke(body, content_type, accept)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an HTTP answer
            status = error_status(exc)
            if status >= 500:
                print(f"nbsage model server: /invocations failed ({status}):", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
                sys.stderr.flush()
            return _error(status, type(exc).__name__, one_line(exc))
        if isinstance(out, str):
            out = out.encode("utf-8")
        elif not isinstance(out, (bytes, bytearray, memoryview)):
            return _error(500, "InvalidResponse",
                          f"the model answered a {type(out).__name__}, not bytes or str")
        attrs = headers.get(CUSTOM_ATTRIBUTES)
        if attrs is not None and not (extra and any(k.lower() == CUSTOM_ATTRIBUTES for k in extra)):
            extra = dict(extra or {})
            extra["X-Amzn-SageMaker-Custom-Attributes"] = attrs
        return 200, bytes(out), out_type or "application/octet-stream", extra


def _error(status: int, kind: str, message: str) -> tuple[int, bytes, str, None]:
    body = json.dumps({"code": status, "type": kind, "message": message}).encode("utf-8")
    return status, body, "application/json", None


class _Connection(socketserver.StreamRequestHandler):
    """One client connection: requests are answered in order until either side closes it."""

    disable_nagle_algorithm = True
    timeout = _IDLE_TIMEOUT
    rbufsize = 65536
    wbufsize = 0
    server: ModelServer

    def handle(self) -> None:
        try:
            while self._one_request():
                pass
        except (ConnectionError, socket.timeout, TimeoutError, OSError):
            pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "", extra: dict | None = None,
              close: bool = False) -> None:
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
        if content_type:
            head.append(f"Content-Type: {content_type}\r\n")
        head.append(f"Content-Length: {len(body)}\r\n")
        if extra:
            for key, value in extra.items():
                value = str(value)
                if "\r" in value or "\n" in value:
                    continue  # never let a handler split the response
                head.append(f"{key}: {value}\r\n")
        if close:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1")
        self.connection.sendall(data + body if len(body) < 65536 else data)
        if len(body) >= 65536:
            self.connection.sendall(body)

    def _read_headers(self) -> dict:
        headers: dict[str, str] = {}
        last = None
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_LINE + 1)
            if not line:
                raise ConnectionResetError("client closed the connection mid-request")
            if len(line) > _MAX_LINE:
                raise _BadRequest(431, "a header line is longer than 64 KiB")
            if line in (b"\r\n", b"\n"):
                return headers
            text = line.decode("latin-1")
            if text[0] in " \t" and last is not None:  # obsolete line folding
                headers[last] += " " + text.strip()
                continue
            name, sep, value = text.partition(":")
            if not sep:
                raise _BadRequest(400, f"malformed header line {text.strip()!r}")
            last = name.strip().lower()
            value = value.strip()
            headers[last] = f"{headers[last]}, {value}" if last in headers else value
        raise _BadRequest(431, f"more than {_MAX_HEADERS} header lines")

    def _read_chunked(self, limit: int) -> bytes | None:
        """A chunked body, or None when it grows past `limit`."""
        parts, total = [], 0
        while True:
            line = self.rfile.readline(_MAX_LINE)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400, "malformed chunked transfer encoding") from None
            if size == 0:
                while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are ignored
                return b"".join(parts)
            total += size
            if total > limit:
                return None
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ConnectionResetError("client closed the connection mid-body")
            parts.append(chunk)
            self.rfile.readline(_MAX_LINE)

    def _drain(self, length: int) -> bool:
        """Read and drop an unwanted body; False when it is too big to be worth reading."""
        if length > _DRAIN_LIMIT:
            return False
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return False
            length -= len(chunk)
        return True

    def _one_request(self) -> bool:
        """Answer one request; True when the connection stays open for the next one."""
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return False
        if line in (b"\r\n", b"\n"):
            return True  # tolerated blank line between requests (RFC 9112 2.2)
        started = time.perf_counter() if self.server.access_log else 0.0
        try:
            parts = line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                raise _BadRequest(400, f"malformed request line {line[:200].decode('latin-1').strip()!r}")
            method, target, version = parts
            headers = self._read_headers()
        except _BadRequest as exc:
            status, body, ctype, _ = _error(exc.status, "BadRequest", str(exc))
            self._send(status, body, ctype, close=True)
            return False
        connection = headers.get("connection", "").lower()
        keep_alive = ("close" not in connection) if version == "HTTP/1.1" else ("keep-alive" in connection)
        path = target.split("?", 1)[0]
        if path.startswith("http://") or path.startswith("https://"):  # absolute-form target
            path = "/" + path.split("://", 1)[1].partition("/")[2]

        # the body: refuse oversized ones on their declared length, before reading them
        body = b""
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length_text = headers.get("content-length")
        if chunked:
            if "100-continue" in headers.get("expect", "").lower():
                self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            read = self._read_chunked(self.server.max_payload)
            if read is None:
                self._answer_too_large(None, close=True)
                return False
            body = read
        elif length_text is not None:
            try:
                length = int(length_text)
                if length < 0:
                    raise ValueError
            except ValueError:
                status, out, ctype, _ = _error(400, "BadRequest", f"Content-Length {length_text!r} is not a number")
                self._send(status, out, ctype, close=True)
                return False
            if length > self.server.max_payload:
                if "100-continue" in headers.get("expect", "").lower():
                    self._answer_too_large(length, close=True)  # the client has not sent the body
                    return False
                keep = self._drain(length)
                self._answer_too_large(length, close=not (keep and keep_alive))
                return keep and keep_alive
            if length:
                if "100-continue" in headers.get("expect", "").lower():
                    self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = self.rfile.read(length)
                if len(body) < length:
                    return False

        if path == "/invocations":
            if method != "POST":
                status, out, ctype, extra = _error(405, "MethodNotAllowed", "use POST /invocations")
            else:
                status, out, ctype, extra = self.server.invoke(body, headers)
        elif path == "/ping":
            if method not in ("GET", "HEAD", "POST"):
                status, out, ctype, extra = _error(405, "MethodNotAllowed", "use GET /ping")
            elif self.server.handler is not None:
                status, out, ctype, extra = 200, b'{"status": "Healthy"}\n', "application/json", None
            else:
                status, out, ctype, extra = _error(503, "ModelNotReady",
                                                    self.server.load_error or "the model is still loading")
        elif path == "/execution-parameters":
            status, out, ctype, extra = (200, json.dumps(self.server.execution_parameters()).encode(),
                                         "application/json", None)
        else:
            status, out, ctype, extra = _error(
                404, "NotFound", f"no route {method} {path}; this server answers GET /ping, "
                                 "POST /invocations and GET /execution-parameters")
        if method == "HEAD":
            out = b""
        self._send(status, out, ctype, extra, close=not keep_alive)
        if self.server.access_log:
            ms = (time.perf_counter() - started) * 1000
            print(f'{self.client_address[0]} "{method} {path}" {status} {len(out)} {ms:.2f}ms',
                  file=sys.stderr, flush=True)
        return keep_alive

    def _answer_too_large(self, length: int | None, close: bool) -> None:
        limit = self.server.max_payload
        what = f"the request body ({length:,} bytes)" if length is not None else "the chunked request body"
        status, out, ctype, _ = _error(
            413, "PayloadTooLarge",
            f"{what} is over the {limit:,}-byte ({limit / 1048576:g} MB) payload limit; "
            "send fewer records per request (or use batch transform)")
        self._send(status, out, ctype, close=close)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def serve(model_dir: str, algorithm: str | None = None, entry_point: str | None = None,
          host: str = "127.0.0.1", port: int = 8080, ready_file: str | None = None) -> int:
    """Run the model server until SIGTERM or SIGINT; returns the process exit code.

    The socket is bound first (port 0 picks a free one) and its port written to `ready_file`
    atomically; the model is then loaded eagerly, and /ping answers 200 from that moment.
    If loading fails, the one-line reason is written to `<ready_file>.failure` (and stderr) and
    the exit code is 1.
    """
    if os.environ.get("SAGEMAKER_BIND_TO_PORT") and port == 8080:
        port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
    server = ModelServer((host, port))  # the loaded handler declares its empty_body_status
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                            name="nbsage-model-server", daemon=True)
    loop.start()
    print(f"nbsage model server: listening on http://{host}:{server.port}; loading the model from {model_dir}",
          file=sys.stderr, flush=True)
    if ready_file:
        failure = Path(f"{ready_file}.failure")
        failure.unlink(missing_ok=True)
        _write_atomically(Path(ready_file), f"{server.port}\n")
    code = 0
    try:
        started = time.perf_counter()
        handler = load_handler(model_dir, algorithm, entry_point)
        server.set_handler(handler)
        print(f"nbsage model server: model loaded in {time.perf_counter() - started:.2f}s; "
              f"serving on http://{host}:{server.port}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
        print("nbsage model server: shutting down", file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - the reason becomes the endpoint's FailureReason
        reason = one_line(exc)
        server.load_error = f"the model failed to load: {reason}"
        traceback.print_exc(file=sys.stderr)
        print(f"nbsage model server: the model failed to load: {reason}", file=sys.stderr, flush=True)
        if ready_file:
            _write_atomically(Path(f"{ready_file}.failure"), reason + "\n")
        code = 1
    finally:
        server.shutdown()
        server.server_close()
    return code
