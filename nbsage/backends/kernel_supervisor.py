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

`_KernelJob` holds one job's state between those steps (the kernel now, the job root there, how
the last attempt ended); nbsage.backends.kernel_staging packs what travels to the kernel.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sys
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
from nbsage.backends.base import supervisor_main
from nbsage.backends.kernel_staging import (
    PIPE_SOURCES,
    checkpoint_call,
    kernel_reads,
    pack_job_root,
    stage_pipe_sources,
    start_checkpoints,
)
from nbsage.backends.lifecycle import JobLifecycle, client_error, internal_error, runtime_failure
from nbsage.backends.log_stream import LogSink
from nbsage.backends.spot import Attempt, ManagedSpot, RestartFailed, killed_by
from nbsage.backends.staging import artifact_uris, channel_options, collect, prepare_root, stopped_model
from nbsage.errors import NBSageError, PlaceError
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot
from nbsage.store import Stores
from nbsage.store.requests import request_of

CHUNK = 2 << 20  # raw bytes per execute request (base64 makes it a third larger)
STOP_GRACE_SECONDS = float(os.environ.get("NBSAGE_STOP_GRACE_SECONDS", "10"))
AGENT = "nbsage.backends.kernel_agent"  # the module whose functions the supervisor calls in the kernel


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
    try:
        return conn.call(AGENT, function, *args, on_stream=on_stream, metadata=metadata)
    except KernelCodeError as e:
        if e.ename in ("ModuleNotFoundError", "ImportError") and "nbsage" in e.evalue:
            raise PlaceError(f"the Jupyter kernel {conn.describe()} cannot import nbsage ({e.evalue}); "
                             "install nbsage in the kernel's environment") from None
        raise


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


def supervise(job_name: str) -> int:
    stores = Stores.from_environment()
    job = stores.store.get_job(job_name)
    if job["kind"] != "training":
        JobLifecycle(stores.store, job_name, job["kind"]).failed(
            client_error("the kernel place runs training jobs only"), "Not a training job")
        return 1
    return _KernelJob(stores, job).supervise()


class _StagingFailed(Exception):
    """The job root could not be staged on this side (a channel, the script's source)."""

    def __init__(self, error: BaseException):
        self.error = error
        super().__init__(str(error))


class _KernelJob:
    """One training job on the kernel place, as its supervisor follows it: the kernel it runs in (a
    new one after a kernel died under managed spot), the job root there, and how the attempts ended."""

    def __init__(self, stores: Stores, job: dict):
        self.stores, self.store, self.name = stores, stores.store, job["name"]
        self.request = request_of(job)
        self.life = JobLifecycle(self.store, self.name, self.request.kind)
        self.job_dir = stores.jobs_dir / self.name
        self.place = json.loads((self.job_dir / PLACE_FILE).read_text())
        self.transfer = self.place.get("transfer") or "auto"
        self.root = JobRoot(job["root"])
        # LogSink flushes on a timer too, so lines before a quiet spell reach the store at once
        self.sink = LogSink(self.store, self.name, self.request.metric_definitions)
        self.lines = _Lines(self.sink)
        self.stopper = _Stopper()
        signal.signal(signal.SIGTERM, self.stopper.on_sigterm)
        self.conn: KernelConnection | None = None  # the kernel now: managed spot replaces one that died
        self.remote_root: str | None = None
        self.pipe_request: dict | None = None
        self.result: dict | None = None  # kernel_agent.run's answer of the last attempt
        self.gone: KernelGone | None = None  # the kernel died during the last attempt (managed spot)
        self.no_checkpoints = False  # the kernel could not restore the checkpoints
        self.spot: ManagedSpot | None = None

    # ---- how it ends -------------------------------------------------------------------------------
    def stop_requested(self) -> bool:
        return self.stopper.requested.is_set() or bool(self.store.get_job(self.name)["stop_requested"])

    def _flush(self) -> None:
        self.lines.flush()
        self.sink.flush()

    def _stopped_model(self) -> str | None:
        """The model the stopped runtime saved in the kernel, brought back and uploaded (staging.stopped_model)."""
        if not self.result or self.result.get("model_size") is None:
            return None
        try:
            self._bring_back(("model", self.root.model_archive, self.result["model_size"]))
        except Exception as e:  # the kernel went away with it: the job still ends Stopped
            self.sink.write(f"The model saved on stop could not be brought back from the kernel: {e}")
            return None
        return stopped_model(self.root, self.request.to_dict(), self.stores.artifacts, self.sink.write)

    def stopped(self, message: str | None = None, model: str | None = None) -> int:
        self._flush()
        return self.life.stopped(message, model=model)

    def failed(self, reason: str, message: str | None = None) -> int:
        self._flush()
        return self.life.failed(reason, message)

    # ---- the job --------------------------------------------------------------------------------------
    def supervise(self) -> int:
        """Start (or reach) the kernel, run the job in it, and leave nothing of it there."""
        started = time.time()
        self.store.update_job(self.name, start_time=started)
        self.spot = ManagedSpot(self.store, self.name, self.request, log=self.sink.write, started=started)
        try:
            self._connect()
        except PlaceError as e:
            return self.failed(client_error(e), "The kernel could not be started")
        where = self.conn.describe()
        try:
            return self.run()
        except KernelGone as e:
            return self.stopped() if self.stop_requested() else \
                self.failed(internal_error(f"{e}; the job was lost with it"), "The kernel died")
        except KernelCodeError as e:
            return self.stopped() if self.stop_requested() else \
                self.failed(internal_error(f"the kernel place's code failed in the Jupyter kernel {where}: {e}"))
        except PlaceError as e:
            return self.failed(client_error(e))
        finally:
            self.stopper.finished.set()
            try:
                call(self.conn, "close", self.name)  # the kernel's host keeps nothing of the job
            except (NBSageError, OSError):
                pass
            self.conn.close()  # shuts down a kernel that was started for the job
            self.sink.close()

    def _connect(self) -> None:
        """A kernel for the job: started, or reached; its whereabouts recorded for stop and refresh."""
        self.conn = self.stopper.conn = open_kernel(self.place, cwd=str(self.job_dir))
        _write_place(self.job_dir / PLACE_FILE, **{k: v for k, v in self.conn.info().items() if v is not None})

    def run(self) -> int:
        self.sink.write(f"Running on the Jupyter kernel {self.conn.describe()}")
        try:
            sent = self.send_job()
        except _StagingFailed as e:
            return self.failed(client_error(e), str(e))
        if not sent or self.stop_requested():
            return self.stopped(f"Stopped before {self.life.words.activity} started")
        try:
            last = self.spot.run(self.attempt, self.restart, self.stop_requested)
        except RestartFailed as e:
            self.spot.bill()
            self._flush()
            return self.life.failed_restarting(e, " on a new kernel")
        self.spot.bill()
        self.sink.flush()
        if self.no_checkpoints:
            return self.failed(client_error("the kernel could not restore the checkpoints; see the log"),
                               "Restoring checkpoints failed")
        if last.exceeded:
            self.lines.flush()
            return self.spot.end_exceeded(last.exceeded)
        if self.stop_requested():
            return self.stopped(model=self._stopped_model())
        if last.stopped:  # SIGTERM with no StopTrainingJob: the kernel was shut down under the job
            return self.failed(internal_error(
                f"the Jupyter kernel {self.conn.describe()} was shut down while the job ran (its training "
                "process was sent SIGTERM, and no stop was asked for); the job was lost with it"), "The kernel died")
        if self.result["rc"] != 0:
            return self.failed(runtime_failure(self.result["rc"], self.result.get("failure"),
                                               "the training process in the kernel"))
        return self.upload()

    def send_job(self, first: bool = True) -> bool:
        """Make the job root in the kernel and send it there; False when a stop came first.
        Raises _StagingFailed when staging here fails."""
        conn, request, raw = self.conn, self.request, self.request.to_dict()
        self.remote_root = call(conn, "open_job", self.name)["root"]
        self.sink.write(f"Job root on the kernel's side: {self.remote_root}")
        if self.stop_requested():
            return False
        # ---- Downloading: channels to the kernel ----
        if first:  # a restart stays Restarting until it trains
            self.life.downloading()
        channels = raw.get("InputDataConfig") or []
        direct = [c.name for c in request.channels if kernel_reads(c.uri, self.transfer)]
        direct_file = [ch["ChannelName"] for ch in channels if ch["ChannelName"] in direct
                       and channel_options(ch, raw)["input_mode"] != "Pipe"]
        if direct_file:
            try:
                counts = call(conn, "stage", self.name, json.dumps(raw), json.dumps(direct_file))["objects"]
                self.sink.write(f"The kernel read channels {', '.join(direct_file)} itself "
                                f"({', '.join(f'{k}: {v} objects' for k, v in counts.items())})")
            except KernelCodeError as e:
                self.sink.write(f"The kernel could not read channels {', '.join(direct_file)} itself ({e}); "
                                "sending them through the kernel connection")
                direct = []
        here = [ch for ch in channels if ch["ChannelName"] not in direct]
        try:
            # the channels travel to the kernel in a tar: a lazy FastFile mount here would be read whole anyway
            prepare_root(self.root, dict(raw, InputDataConfig=here), request.source_dir, fastfile_mount=False)
            write_job_configs(self.root, raw)  # the config files name every channel, staged here or there
            self.pipe_request = stage_pipe_sources(self.root, raw, here, self.remote_root)
            archive = pack_job_root(self.root, self.job_dir / "to-kernel.tar.gz")
        except (NBSageError, OSError) as e:
            raise _StagingFailed(e) from e
        return self._send_archive(archive)

    def _send_archive(self, archive: Path) -> bool:
        """The staged job root to the kernel in base64 chunks (in the requests' metadata)."""
        try:
            size = archive.stat().st_size
            with open(archive, "rb") as f:
                while chunk := f.read(CHUNK):
                    if self.stop_requested():
                        return False
                    call(self.conn, "receive", self.name,
                         metadata={"nbsage_chunk": base64.b64encode(chunk).decode("ascii")})
            call(self.conn, "unpack", self.name)
        finally:
            archive.unlink(missing_ok=True)
            for staged in (self.root.data_dir, self.root.input_dir / PIPE_SOURCES):  # the data lives there now
                shutil.rmtree(staged, ignore_errors=True)
        self.sink.write(f"Sent the job root to the kernel ({size / 2**20:.1f} MiB)")
        return True

    def attempt(self, limits) -> Attempt:
        """One run of the runtime in the kernel (nbsage.backends.spot's hook)."""
        # ---- Checkpoints: restored and mirrored by the kernel itself, next to the runtime ----
        ckpt = start_checkpoints(self.conn, self.request, self.remote_root, self.transfer, self.sink)
        if ckpt is False:
            self.no_checkpoints = True
            return Attempt()
        # ---- Training: the runtime in the kernel ----
        self.life.training(self.spot.training_message)
        try:
            self.result = self._run_in_kernel(limits)
        except KernelGone as e:
            if not self.spot.enabled or self.stop_requested():
                raise
            self.gone = e  # managed spot: a kernel that dies is an instance taken away
            return Attempt(interrupted=str(e))
        finally:
            if ckpt and self.gone is None:
                self._last_checkpoint_sync(ckpt)
        exceeded = self.result["exceeded"]
        if exceeded is True:  # an agent that knows only MaxRuntimeInSeconds
            exceeded = "MaxRuntimeExceeded"
        rc = self.result["rc"]
        interrupted = None
        if rc < 0 and not self.result["stopped"] and not exceeded:  # managed spot: a runtime killed by a signal
            interrupted = f"the training process in the kernel was killed by {killed_by(rc)}"
        return Attempt(exceeded=exceeded or None, interrupted=interrupted, stopped=bool(self.result["stopped"]))

    def _run_in_kernel(self, limits) -> dict:
        """kernel_agent.run, interrupted by a stop while it runs."""
        stopper = self.stopper
        stopper.finished.clear()
        stopper.running.set()
        if self.stop_requested():
            stopper.on_sigterm(signal.SIGTERM, None)
        try:
            return call(self.conn, "run", self.name, json.dumps(self.request.environment), self.request.max_runtime,
                        STOP_GRACE_SECONDS, json.dumps(self.pipe_request) if self.pipe_request else None,
                        json.dumps(limits), on_stream=self.lines)
        finally:
            stopper.finished.set()
            stopper.running.clear()
            self.lines.flush()

    def _last_checkpoint_sync(self, uri: str) -> None:
        try:
            done = checkpoint_call(self.conn, "kernel_stop", self.remote_root)
            self.sink.write(f"Checkpoints synced to {uri}: {done['uploaded']} upload(s), {done['deleted']} deletion(s)")
        except Exception as e:  # the checkpoints are not the model: the job goes on
            self.sink.write(f"The last checkpoint sync in the kernel failed: {e}")

    def restart(self) -> None:
        """After an interruption: the same kernel trains again, or a new one replaces a kernel that died."""
        if self.gone is None:
            return  # the checkpoints are restored as the attempt starts
        old, self.gone = self.conn, None
        try:
            old.close()  # a gateway's kernel that was restarted in place is shut down
        except Exception:
            pass
        self._connect()
        self.sink.write(f"Restarting on a new Jupyter kernel {self.conn.describe()}")
        self.send_job(first=False)

    # ---- Uploading: artifacts back ----
    def upload(self) -> int:
        self.life.uploading()
        model_uri, output_uri = artifact_uris(self.request.to_dict())
        if kernel_reads(model_uri, self.transfer) and self._kernel_uploads(model_uri, output_uri):
            return 0
        result = self.result
        self._bring_back(("model", self.root.model_archive, result["model_size"]),
                         ("output", self.root.output_archive, result["output_size"]))
        try:
            model, output = collect(self.root, self.request.to_dict(), self.stores.artifacts)
        except Exception as e:
            self._flush()
            return self.life.failed_uploading(e)
        self.sink.flush()
        self.spot.bill()
        return self.life.completed(model=model, output=output)

    def _bring_back(self, *archives) -> None:
        """(which, local path, size) archives from the kernel's job root to this one, in chunks."""
        for which, path, size in archives:
            path.unlink(missing_ok=True)
            if size is None:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.part")
            with open(tmp, "wb") as out:
                for offset in range(0, size, CHUNK):
                    out.write(base64.b64decode(call(self.conn, "read", self.name, which, offset, CHUNK)["data"]))
            os.replace(tmp, path)

    def _kernel_uploads(self, model_uri: str, output_uri: str) -> bool:
        """The kernel writes the archives to the artifact store itself; False when it cannot."""
        try:
            sent = call(self.conn, "upload", self.name, model_uri if self.result["model_size"] is not None else None,
                        output_uri if self.result["output_size"] is not None else None)
        except KernelCodeError as e:
            self.sink.write(f"The kernel could not write to {model_uri} ({e}); bringing the artifacts "
                            "through the kernel connection")
            return False
        self.sink.write(f"The kernel wrote the artifacts to {model_uri.rsplit('/', 1)[0]}")
        self.sink.flush()  # every line is in the store before the job is seen Completed
        self.spot.bill()
        self.life.completed(model=sent["model"], output=sent["output"])
        return True


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return supervisor_main(supervise, argv[0])  # never leaves the job InProgress


if __name__ == "__main__":
    sys.exit(main())
