"""Suite-wide fixtures: every test gets its own NBSAGE_HOME, and nothing it started outlives it.

Fixtures more than one module uses live here, once: `session` (a Session in the test's home; a module
sets what its jobs need in SESSION_ENV), `data` (a tiny CSV channel folder), `cluster` (a Dask
LocalCluster), `gateway` (a Jupyter Kernel Gateway on loopback), `s3_endpoint` / `s3_bucket` (moto's
S3 server). Helpers that are not fixtures (`source`, `make_tarball`, `wait_for`, `Gateway`, `STEPPER`)
are in tests/support.py.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import uuid

import pytest

from support import Gateway, aws_environment


@pytest.fixture(autouse=True)
def nbsage_home(tmp_path, monkeypatch):
    """A fresh NBSAGE_HOME per test; endpoint and job processes left in it are stopped afterwards."""
    home = tmp_path / "nbsage-home"
    monkeypatch.setenv("NBSAGE_HOME", str(home))
    monkeypatch.setenv("NBSAGE_STOP_GRACE_SECONDS", os.environ.get("NBSAGE_STOP_GRACE_SECONDS", "2"))
    monkeypatch.delenv("NBSAGE_ARTIFACT_ROOT", raising=False)
    yield home
    db = home / "nbsage.db"
    if not db.exists():
        return
    try:
        conn = sqlite3.connect(db, timeout=5)
        pids = [r[0] for r in conn.execute("SELECT pid FROM endpoints WHERE pid IS NOT NULL")]
        pids += [r[0] for r in conn.execute(
            "SELECT supervisor_pid FROM jobs WHERE status IN ('InProgress', 'Stopping') AND supervisor_pid IS NOT NULL")]
        conn.close()
    except sqlite3.Error:
        return
    for pid in pids:
        if not _belongs_to(pid, str(home)):
            continue  # gone, and its pid may already be another test's process (pids are recycled)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _belongs_to(pid: int, home: str) -> bool:
    """Whether pid is still a process of this test: its command line or environment names the home."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return False
    return home.encode() in cmdline or f"NBSAGE_HOME={home}".encode() in environ.split(b"\0")


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on loopback (what s3fs's own tests use); its URL."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch, tmp_path):
    """A fresh bucket: (name, boto3 client); credentials and endpoint in the environment (inherited by
    job processes)."""
    for key, value in aws_environment(s3_endpoint, tmp_path).items():
        monkeypatch.setenv(key, value)
    import boto3
    import s3fs
    s3fs.S3FileSystem.clear_instance_cache()  # an earlier module's server may have had another port
    name = f"nbsage-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    yield name, client
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def session(nbsage_home, request, monkeypatch):
    """The default Session in this test's NBSAGE_HOME.

    A module's SESSION_ENV (a dict) is set in the environment first: the places read settings such as
    NBSAGE_STOP_GRACE_SECONDS there, in the processes they start. Afterwards training jobs still in
    progress are stopped and endpoints still up are deleted.
    """
    from nbsage.session import Session
    for key, value in getattr(request.module, "SESSION_ENV", {}).items():
        monkeypatch.setenv(key, value)
    session = Session.default()
    yield session
    _stop_what_is_left(session)


def _stop_what_is_left(session) -> None:
    from nbsage.errors import NBSageError
    from nbsage.serving import endpoints
    try:
        jobs = [job for job in session.list_training_jobs() if job.status == "InProgress"]
        names = [record["name"] for record in session.store.list_endpoints()]
    except (NBSageError, sqlite3.Error):
        return
    for job in jobs:
        try:
            job.stop()
        except NBSageError:
            pass
    for name in names:
        try:
            endpoints.delete_endpoint(session, name)
        except NBSageError:
            pass


@pytest.fixture
def data(tmp_path):
    """A train channel's folder: train.csv with two rows of two numbers."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_text("1,2\n3,4\n")
    return folder


@pytest.fixture(scope="module")
def cluster():
    """A Dask LocalCluster of 2 worker processes with 1 thread each, for the module."""
    pytest.importorskip("distributed")
    import logging
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                           silence_logs=logging.ERROR, env={"NBSAGE_STOP_GRACE_SECONDS": "1"})
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A Jupyter Kernel Gateway on loopback for the module; stopped (with its kernels) at the end."""
    pytest.importorskip("kernel_gateway")
    pytest.importorskip("jupyter_client")
    gw = Gateway(tmp_path_factory.mktemp("gateway"))
    yield gw
    gw.stop()
