"""The job root: a folder laid out like SageMaker's /opt/ml.

Private by default: a job root holds the request (secrets passed with `environment=` included) and
copies of the training data, so its folders are made 0700 and its files 0600, whatever the umask of
the process that lays it out; nbsage's own processes (supervisors, runtimes, model servers) run
with PRIVATE_UMASK so that what they write later is private too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

# the umask of nbsage's own processes: files 0600, folders 0700
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str | os.PathLike) -> Path:
    """Make `path` and each missing parent 0700; tighten it when it exists, is ours and is wider.

    Only folders made here, and the folder itself, are touched: an existing parent (the user's
    home, /tmp) keeps its mode. A folder made by an older nbsage (0755) is tightened when opened.
    """
    path = Path(path)
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # made by another process meanwhile
            pass
        else:
            os.chmod(p, PRIVATE_DIR_MODE)  # mkdir's mode goes through the umask; this does not
    tighten(path, PRIVATE_DIR_MODE)
    return path


def tighten(path: str | os.PathLike, mode: int) -> None:
    """chmod `path` to `mode` when it exists, belongs to this user and grants more than `mode`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_uid == os.geteuid() and st.st_mode & 0o777 & ~mode:
        try:
            os.chmod(path, st.st_mode & 0o777 & mode)
        except OSError:  # a read-only file system: reading it must still work
            pass


def private_file(path: str | os.PathLike) -> Path:
    """Create `path` empty with mode 0600 when missing (else tighten it), so that whoever opens it
    next (SQLite, which gives its -wal and -shm files the database's mode) keeps it private."""
    path = Path(path)
    if path.exists():
        tighten(path, PRIVATE_FILE_MODE)
        return path
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE))
    except FileExistsError:
        tighten(path, PRIVATE_FILE_MODE)
    return path


def private_tree(path: str | os.PathLike) -> None:
    """Take group and other bits off every folder and file under `path` (copies keep the modes
    of what they copy: a source_dir or an archive made 0755/0644 elsewhere)."""
    path = Path(path)
    if not path.exists():
        return
    tighten(path, PRIVATE_DIR_MODE)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = os.path.join(folder, name)
            # a link is not ours to chmod, nor a file with more than one name: a staged input
            # hard-linked to the user's file is that file (nbsage.backends.staging)
            try:
                own = not os.path.islink(entry) and (name in dirs or os.stat(entry).st_nlink == 1)
            except FileNotFoundError:
                continue
            if own:
                tighten(entry, PRIVATE_DIR_MODE)


def write_private_text(path: str | os.PathLike, text: str) -> None:
    """Write text to a new file that is 0600 from its first byte (no window at the umask's mode)."""
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(text)

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
        private_dir(self.path)
        for d in (self.config_dir, self.data_dir, self.model_dir, self.output_data_dir,
                  self.intermediate_dir, self.checkpoints_dir, self.code_dir):
            private_dir(d)
        return self

    def write_config(self, name: str, content: dict) -> None:
        private_dir(self.config_dir)
        tmp = self.config_dir / f".{name}.tmp"
        write_private_text(tmp, json.dumps(content, indent=2, default=str))
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
