"""notebooks/object2vec.ipynb runs headless through papermill with small parameters."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_object2vec_notebook_classifies_pairs_and_plots_nearest_neighbours(tmp_path, nbsage_home):
    executed = tmp_path / "object2vec.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "object2vec.ipynb"), "--output-dir", str(tmp_path),
         "-p", "epochs", "2", "-p", "train_pairs", "600", "-p", "test_pairs", "200", "-p", "encoder",
         "pooled_embedding", "-p", "enc_dim", "16"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["scores per pair"] == 2 and summary["embedding length"] == 16
    assert 0.0 <= summary["test:accuracy"] <= 1.0 and 0.0 <= summary["neighbour agreement"] <= 1.0
    assert summary["executed job"] in proc.stdout
    import nbformat
    nb = nbformat.read(executed, as_version=4)
    plot = next(c for c in nb.cells if "Nearest neighbours by Object2Vec embedding" in c.source)
    assert sum("image/png" in o.get("data", {}) for o in plot.outputs) == 2  # neighbours grid and 2-D map
    import nbsage
    assert nbsage.Session.default().list_endpoints() == []
