"""notebooks/batch_and_pipelines.ipynb runs headless through papermill with small parameters."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_notebook_serves_a_pipeline_transforms_through_it_and_compiles_with_their_parity(tmp_path, nbsage_home):
    executed = tmp_path / "batch_and_pipelines.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "batch_and_pipelines.ipynb"), "--output-dir",
         str(tmp_path), "-p", "rows", "400", "-p", "num_round", "10", "-p", "parity_rows", "2000",
         "-p", "latency_repeats", "10", "-p", "batch_rows", "120", "-p", "batch_files", "3"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["pipeline vs in-process max diff"] <= 1e-6
    assert summary["failing stage named"] is True
    assert summary["batch transform status"] == "Completed"
    assert summary["batch joined rows"] == 120  # id and prediction, every row of the 3 files
    assert summary["batch vs endpoint max diff"] == 0
    assert summary["compilation status"] == "COMPLETED"
    assert summary["margin max diff"] <= 1e-5
    assert set(summary["latency ms"]) == {"native xgboost (ms)", "onnxruntime (ms)"}
    import nbsage
    assert nbsage.Session.default().list_endpoints() == []
