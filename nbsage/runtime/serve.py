"""The model server: SageMaker's inference container contract as one local process.

`GET /ping` answers 200 once the model is loaded (503 while it loads), `POST /invocations`
passes the body, Content-Type and Accept to an `InferenceHandler` and returns its answer, and
`GET /execution-parameters` tells batch transform how to call it. Errors map to the status codes
SageMaker's containers use (400, 406, 408, 413, 415, 500, 503, 504) with a one-line JSON body
`{"code": ..., "type": ..., "message": ...}` (the multi-model-server shape); the traceback of an
unexpected error goes to stderr, never into the body. The HTTP/1.1 framing and the limits on
connections, header and body time and body size live in `nbsage.runtime.http1`.

Environment knobs (as the inference toolkit): SAGEMAKER_MAX_PAYLOAD_IN_MB (default 6),
SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, SAGEMAKER_MODEL_SERVER_WORKERS (concurrent invocations,
default: CPU count), SAGEMAKER_MODEL_SERVER_TIMEOUT (seconds per request, default 60),
SAGEMAKER_PROGRAM (the entry point when none is given). nbsage's own: NBSAGE_INVOCATION_TIMEOUT_SECONDS
(overrides the toolkit's), NBSAGE_MAX_QUEUED_INVOCATIONS (requests that may wait for a worker,
default 100; past it 503 with Retry-After), NBSAGE_MAX_CONNECTIONS (default 128),
NBSAGE_HEADER_TIMEOUT_SECONDS (default 10), NBSAGE_KEEP_ALIVE_TIMEOUT_SECONDS (default 60);
NBSAGE_ACCESS_LOG=1 prints one line per request to stderr. Data capture (sampled requests and
responses written as SageMaker's capture files, off the request path) is `nbsage.runtime.data_capture`,
configured by NBSAGE_DATA_CAPTURE_CONFIG.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from nbsage.errors import NBSageError
from nbsage.runtime.http1 import Connection, LimitedServer, busy_answer, error_answer

DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_INVOCATION_TIMEOUT = 60.0  # SageMaker gives a container 60 s to answer /invocations
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
INFERENCE_ID = "x-amzn-sagemaker-inference-id"
SHUTDOWN_POLL_SECONDS = 0.05  # how soon the accept loop sees a stop (a transform job ends when its servers have)
_BOM = b"\xef\xbb\xbf"


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


def _env_int(name: str, default: int) -> int:
    return max(1, int(_env_float(name, default)))


def invocation_timeout_seconds() -> float:
    """Seconds a request has from its headers to its answer: NBSAGE_INVOCATION_TIMEOUT_SECONDS, else the
    inference toolkit's SAGEMAKER_MODEL_SERVER_TIMEOUT, else SageMaker's 60."""
    return _env_float("NBSAGE_INVOCATION_TIMEOUT_SECONDS",
                      _env_float("SAGEMAKER_MODEL_SERVER_TIMEOUT", DEFAULT_INVOCATION_TIMEOUT))


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


def load_handler(model_dir: str | os.PathLike, algorithm: str | None = None, entry_point: str | None = None,
                 pipeline: bool = False):
    """The InferenceHandler for a model directory: user code if there is an entry point (given,
    SAGEMAKER_PROGRAM, or code/inference.py), else the built-in algorithm's loader; with `pipeline`,
    the serial inference pipeline laid out in it (nbsage.runtime.serial_pipeline)."""
    model_dir = Path(model_dir)
    if pipeline:
        from nbsage.runtime.serial_pipeline import load as load_pipeline
        return load_pipeline(model_dir)
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
    from nbsage.runtime.model_archive import check_model_dir
    check_model_dir(model_dir, algorithm, str(model_dir))
    if (model_dir / "nbsage-compilation.json").is_file():  # compiled to ONNX (nbsage.compilation)
        from nbsage.compilation.runtime import load as load_compiled
        return load_compiled(model_dir, algorithms.get(algorithm).name)
    return algorithms.get(algorithm).load(str(model_dir))


class Limits:
    """What one model server lets its clients use, read once from the environment (the endpoint's
    Environment reaches it there), each bounded so no client can hold the server."""

    def __init__(self):
        self.max_payload = max_payload_bytes()
        self.workers = _workers()
        self.queue = _env_int("NBSAGE_MAX_QUEUED_INVOCATIONS", 100)  # TorchServe's job_queue_size
        self.invocation_timeout = invocation_timeout_seconds()
        self.max_connections = _env_int("NBSAGE_MAX_CONNECTIONS", 128)
        self.keep_alive_timeout = _env_float("NBSAGE_KEEP_ALIVE_TIMEOUT_SECONDS", 60.0)
        self.header_timeout = _env_float("NBSAGE_HEADER_TIMEOUT_SECONDS", 10.0)


class ModelServer(LimitedServer):
    """The inference contract over `http1`: routes, a bounded pool of invocation workers, time limits.

    /invocations runs on one of `workers` threads; up to `queue` more wait for one, and past that
    the answer is 503 with Retry-After at once. A model that has not answered by the request's
    deadline gets 504 (its worker finishes in the background and is only then free again).
    """

    def __init__(self, address, handler=None, *, empty_body_status: int = 400, limits: Limits | None = None):
        limits = limits or Limits()
        super().__init__(address, Connection, max_connections=limits.max_connections,
                         header_timeout=limits.header_timeout, keep_alive_timeout=limits.keep_alive_timeout,
                         invocation_timeout=limits.invocation_timeout, max_payload=limits.max_payload)
        self.limits = limits
        self.handler = handler
        self.load_error: str | None = None
        self.empty_body_status = empty_body_status
        self.workers = limits.workers
        self.pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="nbsage-invocation")
        self._admitted = 0  # invocations running or waiting for a worker
        self._admit_lock = threading.Lock()
        self.default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or None
        self.access_log = os.environ.get("NBSAGE_ACCESS_LOG", "").lower() in ("1", "true", "yes")
        self.capture = None  # a nbsage.runtime.data_capture.DataCapture when the endpoint captures data

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

    def server_close(self) -> None:
        super().server_close()
        with self._admit_lock:
            idle = self._admitted == 0
        # idle workers end at once (so the process can end without the interpreter's teardown); a model
        # still answering is not waited for
        self.pool.shutdown(wait=idle, cancel_futures=True)

    # ---- routes -------------------------------------------------------------------------------
    def answer(self, method: str, path: str, body: bytes, headers: dict, deadline: float):
        if path == "/invocations":
            if method != "POST":
                return _error(405, "MethodNotAllowed", "use POST /invocations")
            return self.invoke(body, headers, deadline)
        if path == "/ping":
            if method not in ("GET", "HEAD", "POST"):
                return _error(405, "MethodNotAllowed", "use GET /ping")
            if self.handler is not None:
                return 200, b'{"status": "Healthy"}\n', "application/json", None
            return _error(503, "ModelNotReady", self.load_error or "the model is still loading")
        if path == "/execution-parameters":
            return 200, json.dumps(self.execution_parameters()).encode(), "application/json", None
        return _error(404, "NotFound", f"no route {method} {path}; this server answers GET /ping, "
                                       "POST /invocations and GET /execution-parameters")

    def invoke(self, body: bytes, headers: dict, deadline: float | None = None) -> tuple[int, bytes, str, dict | None]:
        """Answer one /invocations request: (status, body, content type, extra headers)."""
        handler = self.handler
        if handler is None:
            return _error(503, "ModelNotReady", self.load_error or "the model is still loading")
        content_type = headers.get("content-type")
        body = request_body(body, content_type)
        if not body:
            if self.empty_body_status == 204:
                return 204, b"", "", None
            return _error(400, "InvalidRequest", "the request body is empty; send at least one record")
        accept = headers.get("accept")
        if not accept or accept.strip() == "*/*":
            accept = self.default_accept
        with self._admit_lock:
            admitted = self._admitted < self.limits.workers + self.limits.queue
            if admitted:
                self._admitted += 1
        if not admitted:
            return busy_answer(f"all {self.limits.workers} workers are busy and {self.limits.queue} requests wait "
                               "(SAGEMAKER_MODEL_SERVER_WORKERS, NBSAGE_MAX_QUEUED_INVOCATIONS); retry")
        try:
            future = self.pool.submit(self._invoke_handler, handler, body, content_type, accept, headers)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._release()
            return busy_answer("the model server is shutting down")
        future.add_done_callback(self._release)
        if deadline is None:
            deadline = time.monotonic() + self.limits.invocation_timeout
        try:
            answer = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            limit = self.limits.invocation_timeout
            print(f"nbsage model server: /invocations did not answer within {limit:g} s (504)",
                  file=sys.stderr, flush=True)
            return _error(504, "ModelTimeout",
                          f"the model did not answer within {limit:g} s (NBSAGE_INVOCATION_TIMEOUT_SECONDS)")
        capture = self.capture
        if capture is not None and answer[0] == 200:  # a draw and a queue put: never a wait
            capture.offer(body, content_type, answer[1], answer[2], headers.get(INFERENCE_ID))
        return answer

    def _release(self, _future=None) -> None:
        with self._admit_lock:
            self._admitted -= 1

    @staticmethod
    def _invoke_handler(handler, body: bytes, content_type, accept, headers: dict):
        extra = None
        try:
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
    return error_answer(status, kind, message)


def request_body(body: bytes, content_type: str | None) -> bytes:
    """The body as the handler gets it, with training's rules for text: a UTF-8 byte-order mark is
    dropped, and a body of only whitespace is an empty body (204 or 400, never a parse)."""
    if not body or not _is_text(content_type):
        return body
    if body.startswith(_BOM):
        body = body[len(_BOM):]
    if body[:1].isspace() and not body.strip():
        return b""
    return body


def _is_text(content_type: str | None) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or kind.endswith("json") or kind.endswith("jsonlines")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def serve(model_dir: str, algorithm: str | None = None, entry_point: str | None = None,
          host: str = "127.0.0.1", port: int = 8080, ready_file: str | None = None, pipeline: bool = False) -> int:
    """Run the model server until SIGTERM or SIGINT; returns the process exit code.

    The socket is bound first (port 0 picks a free one) and its port written to `ready_file`
    atomically; the model is then loaded eagerly, and /ping answers 200 from that moment.
    If loading fails, the one-line reason is written to `<ready_file>.failure` (and stderr) and
    the exit code is 1.
    """
    if os.environ.get("SAGEMAKER_BIND_TO_PORT") and port == 8080:
        port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
    server = ModelServer((host, port))  # the loaded handler declares its empty_body_status
    from nbsage.runtime.data_capture import DataCapture
    server.capture = DataCapture.from_environment()
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
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
        handler = load_handler(model_dir, algorithm, entry_point, pipeline)
        server.set_handler(handler)
        print(f"nbsage model server: model loaded in {time.perf_counter() - started:.2f}s; "
              f"serving on http://{host}:{server.port}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
        print("nbsage model server: shutting down", file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - the reason becomes the endpoint's FailureReason
        reason = one_line(exc)
        server.load_error = f"the model failed to load: {reason}"
        if not isinstance(exc, NBSageError):  # an error nbsage names needs no traceback
            traceback.print_exc(file=sys.stderr)
        print(f"nbsage model server: the model failed to load: {reason}", file=sys.stderr, flush=True)
        if ready_file:
            _write_atomically(Path(f"{ready_file}.failure"), reason + "\n")
        code = 1
    finally:
        server.shutdown()
        server.server_close()
        if server.capture is not None:
            server.capture.close()  # what was captured reaches the destination before the process ends
    return code
