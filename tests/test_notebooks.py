"""The example notebooks are tests too: executed headless by papermill with small parameters."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_quickstart_runs_end_to_end_and_records_a_summary(tmp_path, nbsage_home):
    executed = tmp_path / "quickstart.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "quickstart.ipynb"), "--output-dir", str(tmp_path),
         "-p", "num_round", "30"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert executed.exists()
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["validation:auc"] > 0.95
    assert summary["endpoint accuracy"] > 0.9
    assert "Executed notebook:" in proc.stdout and summary["executed job"] in proc.stdout
    import nbsage
    # the notebook deleted its endpoint
    assert nbsage.Session.default().list_endpoints() == []
