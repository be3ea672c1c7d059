"""notebooks/deepar.ipynb runs headless through papermill with small parameters."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_deepar_notebook_trains_deploys_and_plots_a_forecast_with_quantile_bands(tmp_path, nbsage_home):
    executed = tmp_path / "deepar.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "deepar.ipynb"), "--output-dir", str(tmp_path),
         "-p", "epochs", "2", "-p", "test_windows", "3", "-p", "num_eval_samples", "20"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["forecast length"] == 12
    assert summary["quantiles"] == ["0.1", "0.5", "0.9"]
    assert math.isfinite(summary["test:mean_wQuantileLoss"]) and math.isfinite(summary["test:RMSE"])
    assert summary["executed job"] in proc.stdout
    import nbformat
    nb = nbformat.read(executed, as_version=4)
    plot = next(c for c in nb.cells if "fill_between" in c.source)  # the forecast with its quantile band
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)
    import nbsage
    assert nbsage.Session.default().list_endpoints() == []
