"""notebooks/tuning.ipynb runs headless through papermill with small settings: it tunes XGBoost,
shows the trials and plots, deploys the best model and cleans up."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent.parent / "notebooks"


def test_tuning_notebook_tunes_shows_the_trials_deploys_the_best_model_and_cleans_up(tmp_path, nbsage_home):
    executed = tmp_path / "tuning.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "tuning.ipynb"), "--output-dir", str(tmp_path),
         "-p", "max_jobs", "2", "-p", "num_round", "3"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["status"] == "Completed" and summary["trials"] == 2
    assert 0.5 < summary["best validation:auc"] <= 1.0 and summary["deployed accuracy"] > 0.5
    import nbformat
    nb = nbformat.read(executed, as_version=4)
    fit = next(c for c in nb.cells if "tuner.fit(" in c.source)
    final = [o for o in fit.outputs if "text/plain" in o.get("data", {})][-1]["data"]
    assert "image/png" in final and "Completed" in final["text/plain"]  # the trials table and the objective plot
    assert summary["tuning job"] in "".join(str(o) for c in nb.cells if c.cell_type == "code" and "%sm_jobs" in c.source
                                            for o in c.outputs)
    import nbsage
    assert nbsage.Session.default().list_endpoints() == []
