"""The transform itself: input objects through model servers into `.out` files, streaming.

Input objects are spread over the instances by object (SageMaker's rule: one large object keeps
one instance busy); each instance takes the next object when it is done with one. Within an
object, up to MaxConcurrentTransforms requests are in flight to the instance's server while the
next batch is read, and answers are written in input order. So a job holds about
payload × MaxConcurrentTransforms × instances in memory, never a whole file.

A model that rejects a request fails its object, naming the file and the record: for a
MultiRecord batch the records are sent again one by one to find the line the model refuses. The
other objects go on (SageMaker keeps the `.out` of the good ones), and the job ends Failed naming
the first failure. Answers 5xx and broken connections are retried (ModelClientConfig's
InvocationsMaxRetries, default 3) before they fail the object.
"""
from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nbsage.errors import DataError, NBSageError
from nbsage.transform import data_processing as dp
from nbsage.transform.inputs import InputObject, open_object
from nbsage.transform.records import Batch, batches

HOST = "127.0.0.1"
_RETRY_STATUSES = (500, 502, 503, 504)
_WHOLE_REQUEST_STATUSES = (406, 413, 415)  # the request as a whole (size, content types): no record to find


class TransformFailed(NBSageError):
    """One input object could not be transformed (its file and record are in the message)."""


class Stopped(NBSageError):
    """StopTransformJob arrived."""


@dataclass
class Settings:
    """How records go to the model and come back (the parsed CreateTransformJob)."""

    split_type: str = "None"
    strategy: str = "MultiRecord"
    max_bytes: int = 6 << 20
    content_type: str | None = None
    accept: str | None = None
    assemble_with: str = "None"
    max_concurrent: int = 1
    retries: int = 3
    timeout: float = 600.0
    compression: str = "None"
    processing: dp.DataProcessing = field(default_factory=lambda: dp.DataProcessing.from_request(None))


@dataclass
class Progress:
    """Counters the job reports while it runs (records and objects done)."""

    total_objects: int = 0
    records: int = 0
    objects_done: int = 0
    failures: list = field(default_factory=list)  # (relative, message) of failed objects
    written: list = field(default_factory=list)  # URLs of the .out files written
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_records(self, n: int) -> None:
        with self.lock:
            self.records += n

    def object_done(self, url: str | None, failure: tuple | None = None) -> None:
        with self.lock:
            self.objects_done += 1
            if url:
                self.written.append(url)
            if failure:
                self.failures.append(failure)


class Instance:
    """One instance: its model server's port and a pool of MaxConcurrentTransforms request threads."""

    def __init__(self, port: int, settings: Settings, host: str = HOST):
        self.host, self.port, self.settings = host, port, settings
        self.pool = ThreadPoolExecutor(settings.max_concurrent, thread_name_prefix=f"nbsage-transform-{port}")
        self._local = threading.local()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.settings.timeout)
        return conn

    def invoke(self, body: bytes) -> tuple[int, bytes, str]:
        """POST /invocations; retries broken connections and 5xx answers. Returns (status, body, message)."""
        headers = {"Content-Length": str(len(body))}
        if self.settings.content_type:
            headers["Content-Type"] = self.settings.content_type
        if self.settings.accept:
            headers["Accept"] = self.settings.accept
        attempt, last = 0, (0, b"", "")
        while True:
            try:
                conn = self._connection()
                conn.request("POST", "/invocations", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self._drop()
                if response.status < 300:
                    return response.status, data, ""
                last = (response.status, data, _error_message(data))
                if response.status not in _RETRY_STATUSES:
                    return last
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                last = (0, b"", f"the model server on port {self.port} did not answer: {type(e).__name__}: {e}")
            attempt += 1
            if attempt > self.settings.retries:
                return last
            time.sleep(min(0.1 * 2 ** attempt, 2.0))  # a back-off before the retry, not a synchronisation

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _error_message(data: bytes) -> str:
    try:
        body = json.loads(data)
        if isinstance(body, dict) and body.get("message"):
            return f"{body.get('type') or body.get('code')}: {body['message']}" if body.get("type") else body["message"]
    except ValueError:
        pass
    return data[:500].decode("utf-8", errors="replace").strip()


# ---- one batch -------------------------------------------------------------------------------------
def _request_body(batch: Batch, settings: Settings) -> bytes:
    processing = settings.processing
    if not processing.active or processing.input_filter.is_root:
        return batch.body
    content_type = _base(settings.content_type)
    filtered = [dp.write_record(processing.input_filter.select(dp.parse_record(r, content_type)), content_type)
                for r in batch.records()]
    return b"\n".join(filtered) + (b"\n" if batch.unit != "object" else b"")


def _base(content_type: str | None) -> str:
    """'text/csv' from 'text/csv; charset=utf-8' (DataProcessing reads records by the media type)."""
    return (content_type or "text/csv").split(";")[0].strip().lower()


def _output(batch: Batch, answer: bytes, settings: Settings) -> bytes:
    processing = settings.processing
    line = settings.assemble_with == "Line"
    if processing.active:
        content_type, accept = _base(settings.content_type), _base(settings.accept or settings.content_type)
        records = batch.records()
        answers = dp.split_answer(answer, accept, len(records))
        out = []
        for raw, item in zip(records, answers):
            value = dp.join(dp.parse_record(raw, content_type), item, content_type) \
                if processing.join_source == "Input" else item
            out.append(dp.write_record(processing.output_filter.select(value), accept))
        return b"\n".join(out) + (b"\n" if line else b"")
    if line and not answer.endswith(b"\n"):
        return answer + b"\n"
    return answer


def _rejected(obj: InputObject, where: str, status: int, message: str) -> TransformFailed:
    what = f"the model answered {status}" if status else "the model server failed"
    return TransformFailed(f"{obj.relative} {where}: {what}: {message}")


def _transform_batch(instance: Instance, obj: InputObject, batch: Batch) -> bytes:
    """The `.out` bytes of one batch; a rejection names the record the model refuses."""
    settings = instance.settings
    try:
        body = _request_body(batch, settings)
    except (DataError, ValueError) as e:
        raise TransformFailed(f"{obj.relative} {batch.where()}: InputFilter "
                              f"{settings.processing.input_filter.text!r}: {e}") from None
    status, answer, message = instance.invoke(body)
    if status >= 300 or status == 0:
        if batch.count > 1 and 400 <= status < 500 and status not in _WHOLE_REQUEST_STATUSES:
            raise _locate(instance, obj, batch, status, message)
        raise _rejected(obj, batch.where(), status, message)
    try:
        return _output(batch, answer, settings)
    except (DataError, ValueError) as e:
        raise TransformFailed(f"{obj.relative} {batch.where()}: {e}") from None


def _locate(instance: Instance, obj: InputObject, batch: Batch, status: int, message: str) -> TransformFailed:
    """Halve a rejected batch until one record is left: the record the model refuses names the line.
    (A bisection: about log2(records) requests, not one per record.)"""
    records = batch.records()
    lo, hi = 0, len(records)  # records lo..hi-1 hold one the model refuses
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _refused(instance, _part(batch, records, lo, mid)):
            hi = mid
        else:
            lo = mid
    if records:
        one = _part(batch, records, lo, lo + 1)
        refused = _refused(instance, one)
        if refused:  # its own answer, as the model gives it for that record alone
            return _rejected(obj, one.where(), *refused)
    return _rejected(obj, batch.where(), status, message)  # refused only together


def _refused(instance: Instance, batch: Batch) -> tuple[int, str] | None:
    """(status, message) when the model refuses the batch, else None."""
    try:
        body = _request_body(batch, instance.settings)
    except (DataError, ValueError) as e:
        return 400, f"InputFilter {instance.settings.processing.input_filter.text!r}: {e}"
    status, _, message = instance.invoke(body)
    return (status, message) if status >= 300 or status == 0 else None


def _part(batch: Batch, records: list[bytes], lo: int, hi: int) -> Batch:
    """Records lo..hi-1 of a batch as a batch of their own."""
    if batch.frames is not None:
        return Batch(b"".join(records[lo:hi]), batch.first + lo, hi - lo, batch.unit, records[lo:hi])
    return Batch(b"\n".join(records[lo:hi]) + b"\n", batch.first + lo, hi - lo, batch.unit)


# ---- one object ------------------------------------------------------------------------------------
def transform_object(instance: Instance, obj: InputObject, output, progress: Progress, stop: threading.Event) -> str:
    """Transform one input object into its `.out`; returns the `.out`'s URL. On any failure the
    partial output is discarded."""
    settings = instance.settings
    out = output.open(obj.relative)
    window: deque = deque()
    try:
        with open_object(obj, settings.compression) as stream:
            for batch in batches(stream, obj.relative, settings.split_type, settings.strategy, settings.max_bytes):
                if stop.is_set():
                    raise Stopped("the transform job was stopped")
                window.append((batch.count, instance.pool.submit(_transform_batch, instance, obj, batch)))
                if len(window) >= settings.max_concurrent:
                    _write_next(window, out, progress)
            while window:
                _write_next(window, out, progress)
    except BaseException as e:
        for _, future in window:
            future.cancel()
        out.discard()
        if isinstance(e, DataError) and not isinstance(e, TransformFailed):
            raise TransformFailed(str(e)) from None
        if isinstance(e, (OSError, EOFError)) and not isinstance(e, TransformFailed):
            raise TransformFailed(f"{obj.relative}: cannot be read: {type(e).__name__}: {e}") from None
        raise
    return out.commit()


def _write_next(window: deque, out, progress: Progress) -> None:
    count, future = window.popleft()
    data = future.result()
    try:
        out.write(data)
    except OSError as e:
        raise DataError(f"the output {out.destination} cannot be written: {e.strerror or e}") from None
    progress.add_records(count)


# ---- the job ---------------------------------------------------------------------------------------
def run(objects: list[InputObject], instances: list[Instance], output, progress: Progress,
        stop: threading.Event, log=print) -> None:
    """Every object through the instances (one thread per instance takes objects in turn)."""
    todo: queue.Queue = queue.Queue()
    for obj in objects:
        todo.put(obj)
    progress.total_objects = len(objects)
    crashed: list[BaseException] = []

    def work(instance: Instance) -> None:
        while not stop.is_set():
            try:
                obj = todo.get_nowait()
            except queue.Empty:
                return
            try:
                url = transform_object(instance, obj, output, progress, stop)
            except Stopped:
                return
            except TransformFailed as e:
                log(f"{obj.relative}: failed: {e}")
                progress.object_done(None, (obj.relative, str(e)))
                continue
            except BaseException as e:  # noqa: BLE001 - reported as the job's failure
                crashed.append(e)
                stop.set()
                return
            log(f"{obj.relative}: transformed into {url}")
            progress.object_done(url)

    threads = [threading.Thread(target=work, args=(inst,), name=f"nbsage-instance-{i + 1}", daemon=True)
               for i, inst in enumerate(instances)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if crashed:
        raise crashed[0]
