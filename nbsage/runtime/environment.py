"""What a built-in algorithm sees of its job: channels, hyperparameters, hosts, where to write."""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from nbsage.runtime import layout
from nbsage.runtime.layout import JobRoot
from nbsage.runtime.metrics import emit_metric, emit_progress

GPU_INSTANCE_PREFIXES = ("ml.g", "ml.p")


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
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@dataclass
class ChannelInput:
    name: str
    path: Path
    content_type: str
    input_mode: str = "File"
    distribution: str = "FullyReplicated"


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
                distribution=cfg.get("S3DistributionType", "FullyReplicated"))

    job_name = property(lambda self: self.job_config.get("TrainingJobName", os.environ.get("TRAINING_JOB_NAME", "")))
    model_dir = property(lambda self: self.root.model_dir)
    output_data_dir = property(lambda self: self.root.output_data_dir)
    checkpoints_dir = property(lambda self: Path(
        self.job_config.get("CheckpointConfig", {}).get("LocalPath") or self.root.checkpoints_dir))
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
        ch = self.channels.get(name)
        if ch is None or not ch.path.exists():
            return []
        return list_data_files(ch.path)

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        emit_metric(name, value, step)

    def progress(self, step: int, total: int) -> None:
        emit_progress(step, total)

    def log(self, message: str) -> None:
        print(message, file=sys.stdout, flush=True)

    def to_json(self) -> str:
        return json.dumps({"hyperparameters": self.hyperparameters, "channels": list(self.channels)})
