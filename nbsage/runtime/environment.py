"""What a built-in algorithm sees of its job: channels, hyperparameters, hosts, where to write."""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from nbsage.errors import ChannelError
from nbsage.runtime import layout
from nbsage.runtime.layout import JobRoot
from nbsage.runtime.metrics import emit_metric, emit_progress

GPU_INSTANCE_PREFIXES = ("ml.g", "ml.p")
# how long a reader waits for a Pipe channel's next FIFO to appear (the contract: it may appear late)
PIPE_WAIT_SECONDS = float(os.environ.get("NBSAGE_PIPE_WAIT_SECONDS", "300"))
GZIP_MAGIC = b"\x1f\x8b"


def is_gpu_instance_type(instance_type: str | None) -> bool:
    """`local_gpu` and ml.g*/ml.p* instance types mean CUDA."""
    t = (instance_type or "").lower()
    return t == "local_gpu" or t.startswith(GPU_INSTANCE_PREFIXES)


def count_gpus() -> int:
    """GPUs visible here, as the toolkit counts them (nvidia-smi), 0 where there is none."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    import subprocess
    try:
        out = subprocess.run([smi, "--list-gpus"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    total = sum(1 for line in out.splitlines() if line.startswith("GPU "))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # a place that gives each host its own GPUs narrows what it sees
        ids = [v for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        return min(total, len(ids))
    return total


@dataclass
class ChannelInput:
    name: str
    path: Path
    content_type: str
    input_mode: str = "File"
    distribution: str = "FullyReplicated"
    record_wrapper: str = "None"
    compression: str = "None"


def list_data_files(path: Path) -> list[Path]:
    """Files of a channel folder, recursively and sorted, skipping hidden files and _SUCCESS markers."""
    if path.is_file():
        return [path]
    files = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in sorted(names):
            if n.startswith(".") or n.startswith("_"):
                continue
            files.append(Path(root) / n)
    return files


def resolve_checkpoint_dir(root: JobRoot | str, local_path: str | None = None) -> Path:
    """CheckpointConfig.LocalPath on this job root: /opt/ml/... (the default /opt/ml/checkpoints/
    included) is the same place under the job root; another absolute path is used as it is."""
    root = root if isinstance(root, JobRoot) else JobRoot(root)
    if not local_path:
        return root.checkpoints_dir
    p = local_path.rstrip("/") or "/"
    if p == "/opt/ml/checkpoints":
        return root.checkpoints_dir
    if p.startswith("/opt/ml/"):
        return root.path / p[len("/opt/ml/"):]
    return Path(p)


class TrainingEnvironment:
    """A job root read back as the algorithm needs it."""

    def __init__(self, root: JobRoot | str):
        self.root = root if isinstance(root, JobRoot) else JobRoot(root)
        self.hyperparameters: dict[str, str] = self.root.read_config(layout.HYPERPARAMETERS)
        self.input_data_config: dict = self.root.read_config(layout.INPUT_DATA_CONFIG)
        self.resource_config: dict = self.root.read_config(layout.RESOURCE_CONFIG) or {
            "current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0",
            "current_instance_type": "local"}
        self.job_config: dict = self.root.read_config(layout.TRAINING_JOB_CONFIG)
        self.channels: dict[str, ChannelInput] = {}
        for name, cfg in sorted(self.input_data_config.items()):
            self.channels[name] = ChannelInput(
                name=name, path=self.root.channel_dir(name),
                content_type=cfg.get("ContentType", ""),
                input_mode=cfg.get("TrainingInputMode", "File"),
                distribution=cfg.get("S3DistributionType", "FullyReplicated"),
                record_wrapper=cfg.get("RecordWrapperType", "None") or "None",
                compression=cfg.get("CompressionType", "None") or "None")
        self._next_epoch: dict[str, int] = {}
        self._spooled: dict[str, list[Path]] = {}

    job_name = property(lambda self: self.job_config.get("TrainingJobName", os.environ.get("TRAINING_JOB_NAME", "")))
    model_dir = property(lambda self: self.root.model_dir)
    output_data_dir = property(lambda self: self.root.output_data_dir)
    checkpoints_dir = property(lambda self: resolve_checkpoint_dir(
        self.root, (self.job_config.get("CheckpointConfig") or {}).get("LocalPath")))
    @property
    def checkpointing(self) -> bool:
        """Whether the job asked for checkpoints (CheckpointConfig, or managed spot training).

        As on SageMaker, a job without a checkpoint location keeps none: nothing could resume
        from them, and saving costs training time.
        """
        return bool(self.job_config.get("CheckpointConfig") or self.job_config.get("EnableManagedSpotTraining"))

    current_host = property(lambda self: self.resource_config.get("current_host", "algo-1"))
    hosts = property(lambda self: sorted(self.resource_config.get("hosts", ["algo-1"])))
    instance_type = property(lambda self: self.resource_config.get("current_instance_type", "local"))
    num_cpus = property(lambda self: os.cpu_count() or 1)

    @property
    def num_gpus(self) -> int:
        return count_gpus() if is_gpu_instance_type(self.instance_type) else 0

    @property
    def device(self) -> str:
        """"cuda" for a GPU instance type (the runtime has already checked one exists), else "cpu"."""
        return "cuda" if is_gpu_instance_type(self.instance_type) else "cpu"

    def channel_files(self, name: str) -> list[Path]:
        """The channel's data files, in any input mode.

        File and FastFile: the files under input/data/<channel>. Pipe: the first call reads the
        channel's next epoch from its FIFO into input/pipe-spool/<channel>/ (one file; one file per
        record when RecordWrapperType is RecordIO, i.e. per source object) and later calls return
        the same files, so algorithms that need the whole data set read Pipe channels unchanged.
        """
        ch = self.channels.get(name)
        if ch is None:
            return []
        if ch.input_mode == "Pipe" and not ch.path.is_dir():
            if name not in self._spooled:
                self._spooled[name] = self._spool_pipe(ch)
            return list(self._spooled[name])
        if not ch.path.exists():
            return []
        return list_data_files(ch.path)

    # ---- Pipe mode --------------------------------------------------------------------------------
    def pipe_path(self, name: str, epoch: int) -> Path:
        """The FIFO of a Pipe channel's epoch: input/data/<channel>_<epoch>."""
        return self.root.data_dir / f"{name}_{epoch}"

    def pipe_epochs(self, name: str, timeout: float | None = None) -> Iterator[Path]:
        """The FIFOs of a Pipe channel's next epochs, in order, each yielded once it exists.

        Open each one and read it (to EOF, or close it early) before asking for the next: the next
        epoch's FIFO appears only after the previous one was read. Endless; stop when done.
        """
        while True:
            epoch = self._next_epoch.get(name, 0)
            path = self._wait_for_pipe(name, epoch, PIPE_WAIT_SECONDS if timeout is None else timeout)
            self._next_epoch[name] = epoch + 1
            yield path

    def open_channel(self, name: str) -> BinaryIO:
        """The channel's bytes as one binary stream, whatever its input mode.

        Pipe: each call opens the next epoch's FIFO (objects concatenated, or RecordIO records when
        RecordWrapperType is RecordIO). File and FastFile: the channel's files, concatenated in order.
        """
        ch = self.channels.get(name)
        if ch is None:
            raise ChannelError(f"channel {name!r} was not given to this job; its channels are "
                               f"{', '.join(self.channels) or 'none'}")
        if ch.input_mode == "Pipe" and not ch.path.is_dir():
            return open(next(self.pipe_epochs(name)), "rb")
        return io.BufferedReader(_Concatenated(list_data_files(ch.path) if ch.path.exists() else []))

    def _wait_for_pipe(self, name: str, epoch: int, timeout: float) -> Path:
        path = self.pipe_path(name, epoch)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if stat.S_ISFIFO(os.stat(path).st_mode):
                    return path
            except FileNotFoundError:
                pass
            if time.monotonic() >= deadline:
                raise ChannelError(f"Pipe channel {name!r}: {path} did not appear within {timeout:g} s "
                                   "(is the place feeding Pipe-mode channels?)")
            time.sleep(0.02)

    def _spool_pipe(self, ch: ChannelInput) -> list[Path]:
        spool = self.root.input_dir / "pipe-spool" / ch.name
        if spool.exists():
            shutil.rmtree(spool)
        spool.mkdir(parents=True)
        files = []
        with self.open_channel(ch.name) as stream:
            if ch.record_wrapper == "RecordIO":
                from nbsage.formats.recordio_protobuf import iter_payloads
                for i, payload in enumerate(iter_payloads(stream, f"Pipe channel {ch.name!r}")):
                    suffix = ".gz" if payload[:2] == GZIP_MAGIC else ""
                    path = spool / f"part-{i:05d}{suffix}"
                    path.write_bytes(payload)
                    files.append(path)
            else:
                path = spool / "data"
                with open(path, "wb") as out:
                    shutil.copyfileobj(stream, out, 1 << 20)
                with open(path, "rb") as f:
                    if f.read(2) == GZIP_MAGIC:  # readers pick gzip by suffix
                        path = path.rename(path.with_name("data.gz"))
                files.append(path)
        return files

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        emit_metric(name, value, step)

    def progress(self, step: int, total: int) -> None:
        emit_progress(step, total)

    def log(self, message: str) -> None:
        print(message, file=sys.stdout, flush=True)

    def to_json(self) -> str:
        return json.dumps({"hyperparameters": self.hyperparameters, "channels": list(self.channels)})


class _Concatenated(io.RawIOBase):
    """Several files read as one stream (open_channel in File and FastFile mode)."""

    def __init__(self, paths: list[Path]):
        super().__init__()
        self._paths = list(paths)
        self._current: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self._current is None:
                if not self._paths:
                    return 0
                self._current = open(self._paths.pop(0), "rb")
            n = self._current.readinto(buffer)
            if n:
                return n
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()
