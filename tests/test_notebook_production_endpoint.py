"""notebooks/production_endpoint.ipynb runs headless through papermill: two variants, a shadow test,
automatic scaling under a generated load (with its plot), capture, a baseline and a drift report."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_production_endpoint_runs_end_to_end_and_records_a_summary(tmp_path, nbsage_home):
    executed = tmp_path / "production_endpoint.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "production_endpoint.ipynb"), "--output-dir",
         str(tmp_path), "-p", "num_round", "5", "-p", "ab_requests", "100", "-p", "shadow_requests", "20",
         "-p", "drift_batches", "4"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert set(summary["variant split"]) == {"A", "B"}
    assert summary["shadow invocations"] >= 20
    assert summary["most instances"] >= 2 and summary["instances at the end"] == 1
    assert summary["scale-outs"] >= 1 and summary["scale-ins"] >= 1 and summary["failed requests"] == 0
    assert summary["monitoring status"] == "CompletedWithViolations"
    assert "mean texture" in summary["drifted features"]

    import nbformat
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the scaling plot is missing"
    import nbsage
    assert nbsage.Session.default().list_endpoints() == []  # the notebook deleted its endpoints
