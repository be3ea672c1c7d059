"""notebooks/data_preparation.ipynb runs headless through papermill: a processing job writes
RecordIO-protobuf and Parquet channels, Linear Learner trains from the RecordIO channel."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_data_preparation_runs_end_to_end_and_records_a_summary(tmp_path, nbsage_home):
    executed = tmp_path / "data_preparation.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "nbsage.demo", str(NOTEBOOKS / "data_preparation.ipynb"), "--output-dir",
         str(tmp_path), "-p", "epochs", "5"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from nbsage.demo import read_summary
    summary = read_summary(executed)
    assert summary["raw rows"] == 569 and summary["features"] == 30
    assert {"recordio/train/train.pbr", "recordio/validation/validation.pbr",
            "parquet/train/train.parquet", "parquet/test/test.parquet"} <= set(summary["channel files"])
    assert summary["validation:binary_classification_accuracy"] > 0.9
    assert summary["test accuracy"] > 0.9

    import nbformat
    nb = nbformat.read(executed, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the exploration plot is missing"

    # the jobs it ran are in the store: the processing job and the training job that read its RecordIO output
    import nbsage
    from nbsage.training_job import TrainingJob
    job = TrainingJob(summary["training job"], nbsage.Session.default())
    desc = job.describe()
    assert desc["TrainingJobStatus"] == "Completed"
    channel = {c["ChannelName"]: c for c in desc["InputDataConfig"]}["train"]
    assert channel["ContentType"] == "application/x-recordio-protobuf"
    assert nbsage.Session.default().list_endpoints() == []  # the notebook deleted its endpoint
