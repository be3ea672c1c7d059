"""notebooks/blazingtext.ipynb runs end to end through papermill with small parameters."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_blazingtext_notebook_trains_both_modes_serves_and_records_a_summary(tmp_path, nbsage_home):
    executed = tmp_path / "blazingtext.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "blazingtext.ipynb"), "--output-dir", str(tmp_path),
         "-p", "epochs", "2", "-p", "sentences_per_package", "1500", "-p", "supervised_epochs", "5",
         "-p", "vector_dim", "32"],
        capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["validation:accuracy"] > 0.6          # six packages: chance is about 0.17
    assert summary["endpoint accuracy"] > 0.6
    assert len(summary["labels"]) == 6
    assert summary["oov vector norm"] > 0                # an unseen word got a subword vector
    assert summary["vocabulary"] > 1000
    assert len(summary["neighbours of array"]) == 5
    assert summary["word2vec job"] in proc.stdout and summary["classifier job"] in proc.stdout
    import nbsage
    assert nbsage.Session.default().list_endpoints() == []
