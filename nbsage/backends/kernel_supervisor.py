"""The process that looks after one job on the kernel place (see nbsage.backends.kernel).

It talks to the kernel with short calls into nbsage.backends.kernel_agent, which runs there:

1. start (or reach) the kernel; `open_job` makes the job root on the kernel's side;
2. channels that the kernel reads itself (URLs both sides reach, transfer="auto") are staged
   there (`stage`); the rest, the config files and the script's code are staged here, packed into
   a tar stream and sent in base64 chunks (`receive`, `unpack`) — in the execute requests'
   metadata, which the code reads back, so that megabytes are never parsed as code;
3. `run` runs `python -m nbsage.runtime train --root` in the kernel; its output comes back as
   stream messages, line by line into the store (metrics scraped from them);
4. model.tar.gz/output.tar.gz come back in chunks (`read`) and go into the artifact store — or
   the kernel writes them there itself (`upload`) when the store is a URL it reaches;
5. `close` removes the job root there; a kernel started for the job is shut down.

SIGTERM (StopTrainingJob) interrupts the kernel: the runtime there gets SIGTERM, then SIGKILL.
Steps 3 and its checkpoint sync run through nbsage.backends.spot: under managed spot a runtime
killed by a signal runs again in the same kernel, and a kernel that dies is replaced by a new one
that gets steps 1-2 again.
"""
from __future__ import annotations

import ast
import base64
import copy
import json
import os
import shutil
import signal
import sys
import tarfile
import threading
import time
from pathlib import Path

from nbsage.backends.kernel import PLACE_FILE
from nbsage.backends.kernel_transport import (
    ConnectionFileKernel,
    GatewayKernel,
    KernelCodeError,
    KernelConnection,
    KernelGone,
    LocalKernel,
)
from nbsage.backends.base import fail_unexpectedly
from nbsage.backends.log_stream import LogSink
from nbsage.backends.spot import Attempt, ManagedSpot, RestartFailed, killed_by
from nbsage.backends.staging import artifact_uris, channel_options, collect, prepare_root, stage_channel
from nbsage.errors import NBSageError, PlaceError
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot
from nbsage.store.artifacts import is_local

CHUNK = 2 << 20  # raw bytes per execute request (base64 makes it a third larger)
STOP_GRACE_SECONDS = float(os.environ.get("NBSAGE_STOP_GRACE_SECONDS", "10"))
PIPE_SOURCES = ".nbsage-pipe"  # input/<this>/<channel>: Pipe channels' objects, fed into FIFOs there
AGENT = '__import__("nbsage.backends.kernel_agent", fromlist=["_"])'


def open_kernel(place: dict, cwd: str | None = None, quiet: bool = False) -> KernelConnection:
    """Start or reach the kernel a place names (quiet: a local kernel's output goes nowhere)."""
    if place.get("connection_file"):
        return ConnectionFileKernel(place["connection_file"])
    if place.get("gateway"):
        return GatewayKernel(place["gateway"], place.get("kernel"), token=place.get("gateway_token"),
                             env=place.get("env"))
    env = dict(os.environ, **(place.get("env") or {}))
    return LocalKernel(place.get("kernel") or "python3", cwd=cwd, env=env, quiet=quiet)


def call(conn: KernelConnection, function: str, *args, on_stream=None, metadata: dict | None = None) -> dict:
    """Call kernel_agent.<function>(*args) in the kernel; its JSON answer, decoded."""
    code = f"{AGENT}.{function}({', '.join(repr(a) for a in args)})"
    try:
        text = conn.execute(code, on_stream, metadata)
    except KernelCodeError as e:
        if e.ename in ("ModuleNotFoundError", "ImportError") and "nbsage" in e.evalue:
            raise PlaceError(f"the Jupyter kernel {conn.describe()} cannot import nbsage ({e.evalue}); "
                             "install nbsage in the kernel's environment") from None
        raise
    if text is None:
        raise PlaceError(f"the Jupyter kernel {conn.describe()} gave no answer to {function}(): "
                         "is it an IPython kernel?")
    return json.loads(ast.literal_eval(text))


class _Lines:
    """Stream text from the kernel -> whole lines into the log sink."""

    def __init__(self, sink: LogSink):
        self.sink, self.partial = sink, ""

    def __call__(self, name: str, text: str) -> None:
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            self.sink.write(line.rstrip("\r"))

    def flush(self) -> None:
        if self.partial:
            self.sink.write(self.partial)
            self.partial = ""


class _Stopper:
    """StopTrainingJob while the runtime runs in the kernel: interrupt it until `run` returns.

    An interrupt that reaches the kernel just before `run` starts is lost (a kernel ignores SIGINT
    between requests), so it is repeated; the agent ignores repeats while it stops the runtime.
    """

    def __init__(self):
        self.requested = threading.Event()
        self.conn: KernelConnection | None = None
        self.running = threading.Event()
        self.finished = threading.Event()

    def on_sigterm(self, signum, frame) -> None:
        if not self.requested.is_set():
            self.requested.set()
            threading.Thread(target=self._interrupt, daemon=True).start()

    def _interrupt(self) -> None:
        deadline = time.monotonic() + STOP_GRACE_SECONDS + 30
        while time.monotonic() < deadline and not self.finished.is_set():
            conn = self.conn
            if conn is not None and self.running.is_set():
                conn.abandon_at = deadline
                try:
                    conn.interrupt()
                except Exception:
                    pass
            self.running.wait(2)
            time.sleep(2)


def _write_place(path: Path, **values) -> None:
    place = json.loads(path.read_text())
    place.update(values)
    path.write_text(json.dumps(place, indent=2))


def _kernel_reads(uri: str, transfer: str) -> bool:
    """Whether the kernel reads this channel itself: a URL both sides reach (not a path, not memory://)."""
    return transfer == "auto" and not is_local(uri) and not uri.startswith("memory://")


def _pack(root: JobRoot, archive: Path) -> Path:
    """input/ and code/ of the root as one tar.gz (FastFile links become the files they point to)."""
    with tarfile.open(archive, "w:gz", compresslevel=1, dereference=True) as tar:
        for part in (root.input_dir, root.code_dir):
            if part.exists():
                tar.add(part, arcname=part.name)
    return archive


def supervise(job_name: str) -> int:
    from nbsage.session import Session
    session = Session()
    store = session.store
    job = store.get_job(job_name)
    if job["kind"] != "training":
        store.set_status(job_name, "Failed", "Failed", "Not a training job",
                         failure_reason="ClientError: the kernel place runs training jobs only")
        return 1
    request = json.loads(job["request"])
    job_dir = session.jobs_dir / job_name
    place_file = job_dir / PLACE_FILE
    place = json.loads(place_file.read_text())
    transfer = place.get("transfer") or "auto"
    root = JobRoot(job["root"])
    # LogSink flushes on a timer too, so lines before a quiet spell reach the store at once
    sink = LogSink(store, job_name, request.get("AlgorithmSpecification", {}).get("MetricDefinitions"))
    lines = _Lines(sink)
    stopper = _Stopper()
    signal.signal(signal.SIGTERM, stopper.on_sigterm)

    def stop_requested() -> bool:
        return stopper.requested.is_set() or bool(store.get_job(job_name)["stop_requested"])

    def stopped(message: str = "Training job stopped") -> int:
        lines.flush()
        sink.flush()
        store.set_status(job_name, "Stopped", "Stopped", message)
        return 0

    def failed(reason: str, message: str = "Training job failed") -> int:
        lines.flush()
        sink.flush()
        store.set_status(job_name, "Failed", "Failed", message, failure_reason=reason)
        return 0

    started = time.time()
    store.update_job(job_name, start_time=started)
    try:
        conn = open_kernel(place, cwd=str(job_dir))
    except PlaceError as e:
        return failed(f"ClientError: {e}", "The kernel could not be started")
    stopper.conn = conn
    where = conn.describe()
    _write_place(place_file, **{k: v for k, v in conn.info().items() if v is not None})
    sink.write(f"Running on the Jupyter kernel {where}")
    held = {"conn": conn}  # the kernel now: managed spot replaces a kernel that died
    try:
        return _run(session, job_name, request, root, job_dir, held, place, transfer, sink, lines, stopper,
                    stop_requested, stopped, failed, started)
    except KernelGone as e:
        if stop_requested():
            return stopped()
        return failed(f"InternalServerError: {e}; the job was lost with it", "The kernel died")
    except KernelCodeError as e:
        if stop_requested():
            return stopped()
        return failed(f"InternalServerError: the kernel place's code failed in the Jupyter kernel {where}: {e}")
    except PlaceError as e:
        return failed(f"ClientError: {e}")
    finally:
        stopper.finished.set()
        conn = held["conn"]
        try:
            call(conn, "close", job_name)  # the kernel's host keeps nothing of the job
        except (NBSageError, OSError):
            pass
        conn.close()  # shuts down a kernel that was started for the job
        sink.close()


class _StagingFailed(Exception):
    """The job root could not be staged on this side (a channel, the script's source)."""

    def __init__(self, error: BaseException):
        self.error = error
        super().__init__(str(error))


def _send_job(conn, store, job_name, request, root, job_dir, transfer, sink, stop_requested,
              first: bool = True) -> tuple[str, dict | None] | None:
    """Make the job root in the kernel and send it there: (remote root, Pipe request), or None when
    a stop came first. Raises _StagingFailed when staging here fails."""
    remote_root = call(conn, "open_job", job_name)["root"]
    sink.write(f"Job root on the kernel's side: {remote_root}")
    if stop_requested():
        return None

    # ---- Downloading: channels to the kernel ----
    if first:  # a restart stays Restarting until it trains
        store.set_status(job_name, "InProgress", "Downloading", "Downloading input data")
    channels = request.get("InputDataConfig", [])
    direct = [ch["ChannelName"] for ch in channels if _kernel_reads(ch["DataSource"]["S3DataSource"]["S3Uri"], transfer)]
    direct_file = [ch["ChannelName"] for ch in channels if ch["ChannelName"] in direct
                   and channel_options(ch, request)["input_mode"] != "Pipe"]
    if direct_file:
        try:
            counts = call(conn, "stage", job_name, json.dumps(request), json.dumps(direct_file))["objects"]
            sink.write(f"The kernel read channels {', '.join(direct_file)} itself "
                       f"({', '.join(f'{k}: {v} objects' for k, v in counts.items())})")
        except KernelCodeError as e:
            sink.write(f"The kernel could not read channels {', '.join(direct_file)} itself ({e}); "
                       "sending them through the kernel connection")
            direct = []
    here = [ch for ch in channels if ch["ChannelName"] not in direct]
    pipe_request = None
    try:
        # the channels travel to the kernel in a tar: a lazy FastFile mount here would be read whole anyway
        prepare_root(root, dict(request, InputDataConfig=here), request.get("nbsage:SourceDir"), fastfile_mount=False)
        write_job_configs(root, request)  # the config files name every channel, staged here or there
        pipe_request = _stage_pipe_sources(root, request, here, remote_root)
        archive = _pack(root, job_dir / "to-kernel.tar.gz")
    except (NBSageError, OSError) as e:
        raise _StagingFailed(e) from e
    try:
        size = archive.stat().st_size
        with open(archive, "rb") as f:
            while chunk := f.read(CHUNK):
                if stop_requested():
                    return None
                call(conn, "receive", job_name, metadata={"nbsage_chunk": base64.b64encode(chunk).decode("ascii")})
        call(conn, "unpack", job_name)
    finally:
        archive.unlink(missing_ok=True)
        for staged in (root.data_dir, root.input_dir / PIPE_SOURCES):  # the data lives on the kernel's side now
            shutil.rmtree(staged, ignore_errors=True)
    sink.write(f"Sent the job root to the kernel ({size / 2**20:.1f} MiB)")
    return remote_root, pipe_request


def _run(session, job_name, request, root, job_dir, held, place, transfer, sink, lines, stopper, stop_requested,
         stopped, failed, started) -> int:
    store = session.store
    try:
        sent = _send_job(held["conn"], store, job_name, request, root, job_dir, transfer, sink, stop_requested)
    except _StagingFailed as e:
        return failed(f"ClientError: {e}", str(e))
    if sent is None or stop_requested():
        return stopped("Stopped before training started")
    job = {"remote_root": sent[0], "pipe_request": sent[1], "result": None, "gone": None, "no_checkpoints": False}
    max_runtime = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
    spot = ManagedSpot(store, job_name, request, log=sink.write, started=started)

    def attempt(limits) -> Attempt:
        conn = held["conn"]
        # ---- Checkpoints: restored and mirrored by the kernel itself, next to the runtime ----
        ckpt = _start_checkpoints(conn, request, job["remote_root"], transfer, sink)
        if ckpt is False:
            job["no_checkpoints"] = True
            return Attempt()
        # ---- Training: the runtime in the kernel ----
        store.set_status(job_name, "InProgress", "Training", spot.training_message)
        stopper.finished.clear()
        stopper.running.set()
        if stop_requested():
            stopper.on_sigterm(signal.SIGTERM, None)
        pipe_request = job["pipe_request"]
        try:
            result = call(conn, "run", job_name, json.dumps(request.get("Environment") or {}), max_runtime,
                          STOP_GRACE_SECONDS, json.dumps(pipe_request) if pipe_request else None, json.dumps(limits),
                          on_stream=lines)
        except KernelGone as e:
            if not spot.enabled or stop_requested():
                raise
            # managed spot: a kernel that dies is an instance taken away
            job["gone"] = e
            return Attempt(interrupted=str(e))
        finally:
            stopper.finished.set()
            stopper.running.clear()
            lines.flush()
            if ckpt and job["gone"] is None:
                try:
                    done = _checkpoint_call(conn, "kernel_stop", job["remote_root"])
                    sink.write(f"Checkpoints synced to {ckpt}: {done['uploaded']} upload(s), {done['deleted']} deletion(s)")
                except Exception as e:  # the checkpoints are not the model: the job goes on
                    sink.write(f"The last checkpoint sync in the kernel failed: {e}")
        job["result"] = result
        exceeded = result["exceeded"]
        if exceeded is True:  # an agent that knows only MaxRuntimeInSeconds
            exceeded = "MaxRuntimeExceeded"
        rc = result["rc"]
        interrupted = None
        if rc < 0 and not result["stopped"] and not exceeded:  # managed spot: a runtime killed by a signal
            interrupted = f"the training process in the kernel was killed by {killed_by(rc)}"
        return Attempt(exceeded=exceeded or None, interrupted=interrupted, stopped=bool(result["stopped"]))

    def restart() -> None:
        if job["gone"] is None:
            return  # the same kernel trains again; the checkpoints are restored as the attempt starts
        old, job["gone"] = held["conn"], None
        try:
            old.close()  # a gateway's kernel that was restarted in place is shut down
        except Exception:
            pass
        conn = open_kernel(place, cwd=str(job_dir))
        held["conn"] = stopper.conn = conn
        _write_place(job_dir / PLACE_FILE, **{k: v for k, v in conn.info().items() if v is not None})
        sink.write(f"Restarting on a new Jupyter kernel {conn.describe()}")
        sent = _send_job(conn, store, job_name, request, root, job_dir, transfer, sink, stop_requested, first=False)
        if sent is not None:
            job["remote_root"], job["pipe_request"] = sent

    try:
        last = spot.run(attempt, restart, stop_requested)
    except RestartFailed as e:
        spot.bill()
        return failed(f"InternalServerError: restarting the interrupted job on a new kernel failed: {e}",
                      "Restarting failed")
    conn = held["conn"]
    spot.bill()
    sink.flush()
    if job["no_checkpoints"]:
        return failed("ClientError: the kernel could not restore the checkpoints; see the log",
                      "Restoring checkpoints failed")
    if last.exceeded:
        lines.flush()
        spot.end_exceeded(last.exceeded)
        return 0
    if last.stopped or stop_requested():
        return stopped()
    result = job["result"]
    if result["rc"] != 0:
        reason = result.get("failure")
        if result["rc"] < 0:
            reason = f"AlgorithmError: the training process in the kernel was killed by {killed_by(result['rc'])}"
        return failed(reason or f"AlgorithmError: the training process exited with code {result['rc']}")

    # ---- Uploading: artifacts back ----
    store.set_status(job_name, "InProgress", "Uploading", "Uploading generated training model")
    model_uri, output_uri = artifact_uris(request)
    if _kernel_reads(model_uri, transfer):
        try:
            sent = call(conn, "upload", job_name, model_uri if result["model_size"] is not None else None,
                        output_uri if result["output_size"] is not None else None)
            sink.write(f"The kernel wrote the artifacts to {model_uri.rsplit('/', 1)[0]}")
            sink.flush()  # every line is in the store before the job is seen Completed
            spot.bill()
            store.set_status(job_name, "Completed", "Completed", "Training job completed",
                             model_artifacts=sent["model"], output_artifacts=sent["output"])
            return 0
        except KernelCodeError as e:
            sink.write(f"The kernel could not write to {model_uri} ({e}); bringing the artifacts "
                       "through the kernel connection")
    for which, path, size in (("model", root.model_archive, result["model_size"]),
                              ("output", root.output_archive, result["output_size"])):
        path.unlink(missing_ok=True)
        if size is None:
            continue
        tmp = path.with_name(f".{path.name}.part")
        with open(tmp, "wb") as out:
            for offset in range(0, size, CHUNK):
                out.write(base64.b64decode(call(conn, "read", job_name, which, offset, CHUNK)["data"]))
        os.replace(tmp, path)
    try:
        model, output = collect(root, request, session.artifacts)
    except Exception as e:
        return failed(f"InternalServerError: uploading artifacts failed: {e}", "Uploading failed")
    sink.flush()
    spot.bill()
    store.set_status(job_name, "Completed", "Completed", "Training job completed",
                     model_artifacts=model, output_artifacts=output)
    return 0


CHECKPOINTS = '__import__("nbsage.backends.checkpoints", fromlist=["_"])'


def _checkpoint_call(conn: KernelConnection, function: str, *args) -> dict:
    text = conn.execute(f"{CHECKPOINTS}.{function}({', '.join(repr(a) for a in args)})", None, None)
    return json.loads(ast.literal_eval(text))


def _start_checkpoints(conn: KernelConnection, request: dict, remote_root: str, transfer: str, sink):
    """CheckpointConfig on the kernel place: the kernel restores the checkpoints into its job root and
    mirrors them while the runtime runs, where it reaches the URI (a URL both sides reach, or any
    URI when the kernel runs on this machine). Returns the URI, None (no sync) or False (failed)."""
    cfg = request.get("CheckpointConfig") or {}
    uri = cfg.get("S3Uri")
    if not uri:
        return None
    if not (_kernel_reads(uri, transfer) or (isinstance(conn, LocalKernel) and not uri.startswith("memory://"))):
        sink.write(f"Checkpoints are not synced with {uri}: the kernel cannot reach it (a path or memory:// "
                   "URI and a kernel on another machine)")
        return None
    interval = float(os.environ.get("NBSAGE_CHECKPOINT_SYNC_SECONDS", "1"))
    try:
        result = _checkpoint_call(conn, "kernel_start", remote_root, uri, cfg.get("LocalPath"), interval)
    except KernelCodeError as e:
        sink.write(f"The kernel could not restore the checkpoints from {uri}: {e}")
        return False
    for line in result.get("log", []):
        sink.write(line)
    return uri


def _stage_pipe_sources(root: JobRoot, request: dict, here: list[dict], remote_root: str) -> dict | None:
    """Pipe channels: their objects travel as files; the kernel's side feeds them into the FIFOs.

    Returns the request the remote PipeFeeder reads (None without Pipe channels): Pipe channels
    staged here point at their copies in the remote job root; those the kernel reads keep their URL.
    """
    pipe = [ch for ch in request.get("InputDataConfig", []) if channel_options(ch, request)["input_mode"] == "Pipe"]
    if not pipe:
        return None
    pipe_request = copy.deepcopy(request)
    here_names = {ch["ChannelName"] for ch in here}
    for ch in pipe_request["InputDataConfig"]:
        name = ch["ChannelName"]
        if name not in here_names or channel_options(ch, request)["input_mode"] != "Pipe":
            continue
        s3 = ch["DataSource"]["S3DataSource"]
        # the objects as stored, every one: the feeder there shuffles, shards and gunzips per epoch
        stage_channel(s3["S3Uri"], root.input_dir / PIPE_SOURCES / name, name, input_mode="File",
                      s3_data_type=s3.get("S3DataType", "S3Prefix"))
        s3["S3Uri"] = str(Path(remote_root) / "input" / PIPE_SOURCES / name)
        s3["S3DataType"] = "S3Prefix"
    return pipe_request


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_name = argv[0]
    try:
        return supervise(job_name)
    except Exception as e:  # never leave the job InProgress
        return fail_unexpectedly(job_name, e)


if __name__ == "__main__":
    sys.exit(main())
