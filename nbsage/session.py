"""Session: where nbsage keeps its records and artifacts, shaped like sagemaker.Session.

NBSAGE_HOME (default ~/.nbsage) holds the SQLite store (`nbsage.db`) and, unless
NBSAGE_ARTIFACT_ROOT or `artifact_root=` names another fsspec URL, the artifact root
(`artifacts/`). Nothing here needs an AWS account.
"""
from __future__ import annotations

import os
from pathlib import Path

from nbsage.store import Stores, default_home
from nbsage.store.names import JOB_NAME, check_name, unique_name  # noqa: F401 - the API's names


class Session:
    """The store and artifact root that jobs and endpoints use."""

    _default: "Session | None" = None

    def __init__(self, home: str | os.PathLike | None = None, artifact_root: str | None = None):
        self.stores = Stores.open(home, artifact_root)
        self.home, self.artifact_root = self.stores.home, self.stores.artifact_root
        self.store, self.artifacts = self.stores.store, self.stores.artifacts

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
        self.watch_jobs()
        return [TrainingJob(row["name"], self) for row in self.store.list_jobs(limit=limit, kind="training")]

    def watch_jobs(self) -> None:
        """Keep this process reconciling the store's jobs (nbsage.backends.reconciler): a job whose
        supervisor died is marked Failed within seconds, whether or not anyone reads it. Called when
        a job is submitted or listed."""
        from nbsage.backends.reconciler import ensure_reconciler
        ensure_reconciler(self)

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
