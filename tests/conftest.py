"""Suite-wide fixtures: every test gets its own NBSAGE_HOME, and nothing it started outlives it."""
from __future__ import annotations

import os
import signal
import sqlite3

import pytest


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
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
