"""notebooks/seq2seq.ipynb runs headless through papermill with small parameters."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_seq2seq_notebook_trains_deploys_translates_and_plots_attention(tmp_path, nbsage_home):
    pytest.importorskip("num2words")
    executed = tmp_path / "seq2seq.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "seq2seq.ipynb"), "--output-dir", str(tmp_path),
         "-p", "num_train", "200", "-p", "num_validation", "20", "-p", "max_num_epochs", "2",
         "-p", "rnn_num_hidden", "32", "-p", "num_embed", "16"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["translated"] == 5
    assert math.isfinite(summary["validation:perplexity"]) and 0 <= summary["validation:bleu"] <= 100
    assert summary["matrix shape"] in ([summary["target words"], summary["source words"]], [0])
    assert summary["executed job"] in proc.stdout
    import nbformat
    nb = nbformat.read(executed, as_version=4)
    plot = next(c for c in nb.cells if "imshow" in c.source)  # the attention heat map
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)
    import nbsage
    assert nbsage.Session.default().list_endpoints() == []
