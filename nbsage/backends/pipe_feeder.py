"""Pipe input mode: feed each Pipe channel's FIFOs `input/data/<channel>_<epoch>` while a job runs.

SageMaker's contract (see the spec, 3.1): the algorithm opens `<channel>_0`, reads it to EOF (or
closes it early), then opens `<channel>_1`, and so on; a FIFO may appear late, so readers retry.

One thread per Pipe channel does, for epoch 0, 1, 2, ... until `stop()`:

1. wait for a reader to open the FIFO `<channel>_<epoch>` (polling a non-blocking open for
   writing, so `stop()` never waits on a FIFO nobody opens); `start()` creates `<channel>_0`
   before the runtime starts;
2. create the next epoch's FIFO at once: it then exists whenever the reader reaches EOF or closes
   early, so a script that opens `train_1` right after `train_0` needs no retry loop (readers
   that retry, as the contract asks, work too);
3. write this host's objects into it, in the channel's order — shuffled afresh each epoch with
   ShuffleConfig's seed, sharded by host for ShardedByS3Key — each decompressed when
   CompressionType is Gzip and, when RecordWrapperType is RecordIO, wrapped as one RecordIO
   record; otherwise the objects' bytes are concatenated as they are;
4. close and remove the FIFO (a reader that closes early ends the epoch too), and go on.

Objects are read from their source (a local path or any fsspec URL) as they are written, so
nothing is staged on disk. The job's host index comes from its resourceconfig.json.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import BinaryIO, Callable

from nbsage.backends.staging import (
    ChannelObject,
    channel_options,
    host_count,
    list_channel_objects,
    open_decompressed,
    select_objects,
)
from nbsage.runtime import layout
from nbsage.runtime.layout import JobRoot

_CHUNK = 1 << 20


def pipe_path(root: JobRoot, channel: str, epoch: int) -> Path:
    """The FIFO of one channel's epoch: input/data/<channel>_<epoch>."""
    return root.data_dir / f"{channel}_{epoch}"


def write_objects(out: BinaryIO, objects: list[ChannelObject], channel: str, compression: str | None = None,
                  record_wrapper: str | None = None) -> None:
    """Write objects one after another as Pipe mode delivers them (gunzipped / RecordIO-wrapped)."""
    from nbsage.formats.recordio_protobuf import frame
    for obj in objects:
        src = open_decompressed(obj, channel) if compression == "Gzip" else obj.open()
        with src:
            if record_wrapper == "RecordIO":
                out.write(frame(src.read()))
            else:
                shutil.copyfileobj(src, out, _CHUNK)


def write_augmented_manifests(out: BinaryIO, manifests: list[ChannelObject], attribute_names,
                              record_wrapper: str | None) -> None:
    """An AugmentedManifestFile channel in Pipe mode: each line's AttributeNames, in order, as
    SageMaker streams them (one RecordIO record per attribute when RecordWrapperType is RecordIO)."""
    import tempfile
    from nbsage.formats.augmented_manifest import write_stream
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, obj in enumerate(manifests):
            if obj.local:
                paths.append(obj.url)
            else:  # a remote manifest is read once, locally
                local = os.path.join(tmp, f"{i}-{os.path.basename(obj.key)}")
                with obj.open() as src, open(local, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                paths.append(local)
        write_stream(paths, attribute_names, out, record_wrapper if record_wrapper == "RecordIO" else None)


class _ChannelFeeder(threading.Thread):
    def __init__(self, feeder: "PipeFeeder", channel: str, objects: list[ChannelObject], options: dict,
                 record_wrapper: str | None):
        super().__init__(name=f"pipe-feeder-{channel}", daemon=True)
        self.feeder, self.channel, self.objects = feeder, channel, objects
        self.options, self.record_wrapper = options, record_wrapper
        self.pending: list[Path] = []  # FIFOs created and not yet fed to the end
        self.epochs_fed = 0

    def run(self) -> None:
        try:
            self._feed()
        except Exception as e:  # reported in the job's log; the reader then waits for a FIFO in vain
            self.feeder.log(f"Pipe channel {self.channel!r}: feeding stopped: {type(e).__name__}: {e}")
        finally:
            for fifo in list(self.pending):
                self._remove(fifo)

    def make_fifo(self, epoch: int) -> Path:
        fifo = pipe_path(self.feeder.root, self.channel, epoch)
        if fifo.exists() or fifo.is_symlink():
            fifo.unlink()
        os.mkfifo(fifo, 0o600)
        self.pending.append(fifo)
        return fifo

    def _feed(self) -> None:
        epoch = 0
        stop = self.feeder.stopped
        fifo = self.pending[-1] if self.pending else self.make_fifo(0)
        while not stop.is_set():
            fd = self._open_for_writing(fifo)
            if fd is None:
                break
            # the reader is on this epoch: the next FIFO exists before it can reach EOF or close early
            following = self.make_fifo(epoch + 1)
            objects = select_objects(self.objects, self.options["distribution"], self.feeder.host_index,
                                     self.feeder.host_count, self.options["shuffle_seed"], epoch)
            try:
                with os.fdopen(fd, "wb", buffering=_CHUNK) as out:
                    if self.options.get("s3_data_type") == "AugmentedManifestFile":
                        write_augmented_manifests(out, objects, self.options.get("attribute_names"),
                                                  self.record_wrapper)
                    else:
                        write_objects(out, objects, self.channel, self.options["compression"], self.record_wrapper)
            except BrokenPipeError:
                pass  # the reader closed the FIFO before the end of the epoch: allowed
            except Exception as e:  # a bad object must not leave the reader waiting forever
                self.feeder.log(f"Pipe channel {self.channel!r}, epoch {epoch}: {type(e).__name__}: {e}")
            self._remove(fifo)
            self.pending.remove(fifo)
            self.epochs_fed = epoch + 1
            epoch, fifo = epoch + 1, following

    def _open_for_writing(self, fifo: Path) -> int | None:
        """Wait for a reader; None once the feeder is stopped."""
        while not self.feeder.stopped.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(self.feeder.poll_interval)
                continue
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
            return fd
        return None

    @staticmethod
    def _remove(fifo: Path) -> None:
        try:
            if stat.S_ISFIFO(os.lstat(fifo).st_mode):
                fifo.unlink()
        except FileNotFoundError:
            pass


class PipeFeeder:
    """Feeds every Pipe-mode channel of a job root; `start()` before the runtime, `stop()` after it."""

    def __init__(self, root: JobRoot, request: dict, host_index: int | None = None,
                 log: Callable[[str], None] | None = None, poll_interval: float = 0.02):
        self.root, self.request = root, request
        self.host_index = self._host_index(root) if host_index is None else host_index
        self.host_count = host_count(request)
        self.poll_interval = poll_interval
        self.stopped = threading.Event()
        self._log = log
        self.threads: list[_ChannelFeeder] = []
        inputdataconfig = root.read_config(layout.INPUT_DATA_CONFIG)
        for ch in request.get("InputDataConfig", []):
            options = channel_options(ch, request)
            if options["input_mode"] != "Pipe":
                continue
            name = ch["ChannelName"]
            objects = list_channel_objects(ch["DataSource"]["S3DataSource"]["S3Uri"], name, options["s3_data_type"])
            wrapper = ch.get("RecordWrapperType") or inputdataconfig.get(name, {}).get("RecordWrapperType")
            self.threads.append(_ChannelFeeder(self, name, objects, options, wrapper))

    @staticmethod
    def _host_index(root: JobRoot) -> int:
        res = root.read_config(layout.RESOURCE_CONFIG)
        hosts = sorted(res.get("hosts") or ["algo-1"])
        current = res.get("current_host", hosts[0])
        return hosts.index(current) if current in hosts else 0

    @property
    def channels(self) -> list[str]:
        return [t.channel for t in self.threads]

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    def start(self) -> "PipeFeeder":
        """Create every channel's first FIFO (so it exists when the runtime starts) and start feeding."""
        self.root.data_dir.mkdir(parents=True, exist_ok=True)
        for t in self.threads:
            t.make_fifo(0)
        for t in self.threads:
            t.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop feeding and remove the FIFOs left; a write blocked on a live reader is abandoned."""
        self.stopped.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            if t.is_alive():
                t.join(max(0.0, deadline - time.monotonic()))
        for t in self.threads:
            for fifo in list(t.pending):
                _ChannelFeeder._remove(fifo)

    def __enter__(self) -> "PipeFeeder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
