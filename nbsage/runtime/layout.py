"""The job root: a folder laid out like SageMaker's /opt/ml."""
from __future__ import annotations

import json
import os
from pathlib import Path

HYPERPARAMETERS = "hyperparameters.json"
INPUT_DATA_CONFIG = "inputdataconfig.json"
RESOURCE_CONFIG = "resourceconfig.json"
# nbsage's echo of the CreateTrainingJob request (the analogue of processingjobconfig.json): it
# names the algorithm or script so that a job root alone is enough to run the job.
TRAINING_JOB_CONFIG = "trainingjobconfig.json"


class JobRoot:
    """Paths of one job root; `create()` makes the folders."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()

    input_dir = property(lambda self: self.path / "input")
    config_dir = property(lambda self: self.path / "input" / "config")
    data_dir = property(lambda self: self.path / "input" / "data")
    model_dir = property(lambda self: self.path / "model")
    output_dir = property(lambda self: self.path / "output")
    output_data_dir = property(lambda self: self.path / "output" / "data")
    intermediate_dir = property(lambda self: self.path / "output" / "intermediate")
    failure_file = property(lambda self: self.path / "output" / "failure")
    success_file = property(lambda self: self.path / "output" / "success")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    code_dir = property(lambda self: self.path / "code")
    model_archive = property(lambda self: self.path / "output" / "model.tar.gz")
    output_archive = property(lambda self: self.path / "output" / "output.tar.gz")

    def channel_dir(self, name: str) -> Path:
        return self.data_dir / name

    def create(self) -> "JobRoot":
        for d in (self.config_dir, self.data_dir, self.model_dir, self.output_data_dir,
                  self.intermediate_dir, self.checkpoints_dir, self.code_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def write_config(self, name: str, content: dict) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(content, indent=2, default=str))
        os.replace(tmp, self.config_dir / name)

    def read_config(self, name: str, default=None) -> dict:
        path = self.config_dir / name
        if not path.exists():
            return {} if default is None else default
        return json.loads(path.read_text())

    def write_failure(self, message: str) -> None:
        """Write output/failure unless the job already wrote one (the toolkit's rule)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if not self.failure_file.exists():
            self.failure_file.write_text(message)

    def failure_reason(self) -> str | None:
        """First 1024 characters of output/failure, as DescribeTrainingJob.FailureReason."""
        if self.failure_file.exists():
            return self.failure_file.read_text(errors="replace")[:1024] or None
        return None
