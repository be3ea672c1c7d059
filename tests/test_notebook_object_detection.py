"""notebooks/object_detection.ipynb runs headless through papermill with small parameters."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_object_detection_notebook_trains_both_inputs_deploys_and_draws_boxes(tmp_path, nbsage_home):
    executed = tmp_path / "object_detection.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "object_detection.ipynb"), "--output-dir", str(tmp_path),
         "-p", "n_train", "16", "-p", "n_validation", "6", "-p", "epochs", "1", "-p", "image_size", "48"],
        capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["fields per detection"] == 6 and summary["answers"] == 6
    assert 0 <= summary["validation:mAP"] <= 1
    assert summary["executed job"] in proc.stdout
    import nbformat
    nb = nbformat.read(executed, as_version=4)
    plot = next(c for c in nb.cells if "Rectangle(" in c.source)
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)
    import nbsage
    assert nbsage.Session.default().list_endpoints() == []
