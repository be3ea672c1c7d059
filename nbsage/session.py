"""Session: where nbsage keeps its records and artifacts, shaped like sagemaker.Session.

NBSAGE_HOME (default ~/.nbsage) holds the SQLite store (`nbsage.db`) and, unless
NBSAGE_ARTIFACT_ROOT or `artifact_root=` names another fsspec URL, the artifact root
(`artifacts/`). Nothing here needs an AWS account.
"""
from __future__ import annotations

import itertools
import os
import re
import secrets
import time
from pathlib import Path

from nbsage.errors import ValidationError
from nbsage.runtime.layout import private_dir
from nbsage.store import ArtifactStore, MetadataStore

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def default_home() -> Path:
    return Path(os.environ.get("NBSAGE_HOME") or "~/.nbsage").expanduser().resolve()


# a counter from a random start: names made in one process never clash (3 random hex digits did
# within one millisecond: 50 names had a 1 in 4 chance), names from two processes rarely do
_NAME_SUFFIX = itertools.count(secrets.randbelow(16**5))


def unique_name(base: str) -> str:
    """`<base>-YYYY-MM-DD-HH-MM-SS-mmm` like the SDK, plus 5 hex digits against clashes (at most 62 characters)."""
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-")[:32] or "job"
    now = time.time()
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    return f"{base}-{stamp}-{next(_NAME_SUFFIX) % 16**5:05x}"


def check_name(name: str, what: str = "job") -> str:
    if not JOB_NAME.match(name):
        raise ValidationError(f"{what} name {name!r} is not valid: use 1-63 letters, digits and hyphens, "
                              "starting with a letter or digit")
    return name


class Session:
    """The store and artifact root that jobs and endpoints use."""

    _default: "Session | None" = None

    def __init__(self, home: str | os.PathLike | None = None, artifact_root: str | None = None):
        self.home = Path(home).expanduser().resolve() if home else default_home()
        private_dir(self.home)  # 0700: the store and job roots hold requests, secrets and data
        self.artifact_root = artifact_root or os.environ.get("NBSAGE_ARTIFACT_ROOT") or str(self.home / "artifacts")
        self.store = MetadataStore(self.home / "nbsage.db")
        self.artifacts = ArtifactStore(self.artifact_root)

    @classmethod
    def default(cls) -> "Session":
        """The process-wide session; rebuilt when NBSAGE_HOME changes."""
        if cls._default is None or cls._default.home != default_home():
            cls._default = cls()
        return cls._default

    @property
    def jobs_dir(self) -> Path:
        """Job roots (the /opt/ml of each job) for places on this machine."""
        return self.home / "jobs"

    @property
    def endpoints_dir(self) -> Path:
        return self.home / "endpoints"

    def default_output_path(self) -> str:
        return self.artifacts.url("training")

    def default_data_prefix(self) -> str:
        return self.artifacts.url("data")

    def __repr__(self) -> str:
        return f"Session(home={str(self.home)!r}, artifact_root={self.artifact_root!r})"

    # ---- what the faces list and control (thin over the store, the places and serving) -----------
    def list_training_jobs(self, limit: int = 50) -> list:
        """TrainingJob handles, newest first (InProgress jobs whose process died are marked Failed)."""
        from nbsage.training_job import TrainingJob
        return [TrainingJob(row["name"], self) for row in self.store.list_jobs(limit=limit, kind="training")]

    def list_endpoints(self) -> list[dict]:
        """DescribeEndpoint-shaped records of every endpoint."""
        from nbsage.serving import endpoints
        return endpoints.list_endpoints(self)

    def describe_endpoint(self, name: str) -> dict:
        from nbsage.serving import endpoints
        return endpoints.describe_endpoint(self, name)

    def invoke_endpoint(self, name: str, body: bytes, content_type: str, accept: str | None = None):
        """(body, content type, headers) of one /invocations request."""
        from nbsage.serving import endpoints
        return endpoints.invoke_endpoint(self, name, body, content_type, accept)

    def delete_endpoint(self, name: str) -> None:
        from nbsage.serving import endpoints
        endpoints.delete_endpoint(self, name)
