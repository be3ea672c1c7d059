"""notebooks/remote_and_distributed.ipynb runs headless through papermill: a job in a kernel behind a
loopback Kernel Gateway (started and stopped by the notebook) and a 2-worker job on a LocalCluster."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("kernel_gateway")
pytest.importorskip("distributed")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_remote_and_distributed_notebook_runs_a_kernel_job_and_a_two_worker_dask_job(tmp_path, nbsage_home):
    executed = tmp_path / "remote_and_distributed.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "remote_and_distributed.ipynb"),
         "--output-dir", str(tmp_path), "-p", "num_round", "20"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["kernel status"] == "Completed"
    assert summary["dask status"] == "Completed"
    assert summary["kernel validation:auc"] > 0.95
    assert summary["dask validation:auc"] > 0.95
    assert abs(summary["kernel validation:auc"] - summary["dask validation:auc"]) <= 0.02
    assert summary["kernel job"] in proc.stdout and summary["dask job"] in proc.stdout
    import nbsage
    session = nbsage.Session.default()
    assert {summary["kernel job"], summary["dask job"]} <= {job.name for job in session.list_training_jobs()}
    # both models landed in this machine's artifact store
    for key in ("kernel model", "dask model"):
        assert Path(summary[key]).name == "model.tar.gz" and Path(summary[key]).exists(), summary[key]
