"""Where nbsage keeps what it knows: job/metric/log/endpoint records in SQLite, artifacts via fsspec.

`Stores` is what a process below the API (a job's supervisor) works with: the records, the
artifact store and the folder of job roots, found from NBSAGE_HOME / NBSAGE_ARTIFACT_ROOT as the
place that launched it set them — so the places never build an API `Session`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nbsage.runtime.layout import private_dir
from nbsage.store.artifacts import ArtifactStore
from nbsage.store.metadata import MetadataStore

__all__ = ["ArtifactStore", "MetadataStore", "Stores", "default_home"]


def default_home() -> Path:
    """$NBSAGE_HOME, else ~/.nbsage."""
    return Path(os.environ.get("NBSAGE_HOME") or "~/.nbsage").expanduser().resolve()


@dataclass
class Stores:
    """The store, the artifact store and the job roots' folder of one NBSAGE_HOME."""

    home: Path
    artifact_root: str
    store: MetadataStore
    artifacts: ArtifactStore

    @classmethod
    def open(cls, home: str | os.PathLike | None = None, artifact_root: str | None = None) -> "Stores":
        """The stores under `home` (default $NBSAGE_HOME), artifacts under `artifact_root`
        (default $NBSAGE_ARTIFACT_ROOT, else HOME/artifacts)."""
        home = Path(home).expanduser().resolve() if home else default_home()
        try:
            private_dir(home)  # 0700: the store and job roots hold requests, secrets and data
        except OSError as e:  # a full parent: StoreError naming NBSAGE_HOME, not a traceback
            from nbsage.store.metadata import store_error
            error = store_error(e, home / "nbsage.db")
            if error.cause != "read-only":  # a read-only one: an empty read-only store (nothing to list)
                raise error from e
        root = artifact_root or os.environ.get("NBSAGE_ARTIFACT_ROOT") or str(home / "artifacts")
        return cls(home, root, MetadataStore(home / "nbsage.db"), ArtifactStore(root))

    @classmethod
    def from_environment(cls) -> "Stores":
        """What a supervisor was launched with (NBSAGE_HOME, NBSAGE_ARTIFACT_ROOT)."""
        return cls.open()

    @property
    def jobs_dir(self) -> Path:
        """Job roots (the /opt/ml of each job) and their supervisors' logs, for places on this machine."""
        return self.home / "jobs"

    def launch_environment(self) -> dict[str, str]:
        """The variables that make a supervisor process find these stores again."""
        return {"NBSAGE_HOME": str(self.home), "NBSAGE_ARTIFACT_ROOT": self.artifact_root}
