"""The live training monitor: what it publishes while a real job runs, and what an executed
notebook keeps."""
from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from nbsage.estimator import Estimator
from nbsage.notebook.display import LiveMonitor, training_bundle

SCRIPT = '''
import argparse, os, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--fail", type=int, default=0)
parser.add_argument("--release", default="")
args, _ = parser.parse_known_args()
for epoch in range(args.epochs):
    print(f"epoch {epoch} loss={1.0 / (epoch + 1):.4f} acc={epoch / args.epochs:.3f}", flush=True)
    print(f"#progress step={epoch + 1} total={args.epochs}", flush=True)
    time.sleep(args.sleep)
# given --release FILE, the job stays running after its last epoch until FILE exists: a test that must
# see it running does not depend on how fast a busy machine draws
held_until = time.time() + 600
while args.release and not os.path.exists(args.release):
    if time.time() > held_until:
        sys.exit(f"{args.release} did not appear within 600 s")
    time.sleep(0.05)
if args.fail:
    sys.exit("the loss diverged")
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("ok")
'''
METRICS = [{"Name": "train:loss", "Regex": "loss=([0-9.]+)"}, {"Name": "train:acc", "Regex": "acc=([0-9.]+)"}]
DATA = pd.DataFrame({"label": [0, 1, 0], "x": [1.0, 2.0, 3.0]})


@pytest.fixture
def source_dir(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    return src


def start(source_dir, session, **hyperparameters):
    estimator = Estimator(entry_point="train.py", source_dir=str(source_dir), hyperparameters=hyperparameters,
                          metric_definitions=METRICS, sagemaker_session=session)
    return estimator.fit(DATA, wait=False)


def test_monitor_updates_in_place_with_progress_then_keeps_curve_metrics_and_artifact(source_dir, session, tmp_path):
    release = tmp_path / "release"
    job = start(source_dir, session, epochs=8, sleep=0.15, release=str(release))
    bundles = []

    def publish(bundle):
        """Keep every bundle; once one shows the running job with its progress and log, let it end."""
        bundles.append(bundle)
        text = bundle["text/plain"]
        if "InProgress" in text and "8/8" in text and "epoch 7" in text:
            release.touch()

    began = time.monotonic()
    desc = LiveMonitor(job, publish=publish).run()
    elapsed = time.monotonic() - began

    assert desc["TrainingJobStatus"] == "Completed"
    assert all("text/plain" in b and "text/html" in b for b in bundles)
    assert len(bundles) <= 4 * elapsed + 2, "at most ~3 updates a second"
    running = [b for b in bundles if "InProgress" in b["text/plain"]]
    assert running, "the job was shown while it ran"
    assert any("/8" in b["text/plain"] and "epoch " in b["text/plain"] for b in running), "progress bar and log lines"

    final = bundles[-1]
    assert final["text/plain"].startswith(f"Training job {job.name}: Completed")
    assert base64.b64decode(final["image/png"]).startswith(b"\x89PNG")
    assert "train:loss" in final["text/html"] and "train:acc" in final["text/html"]
    assert "data:image/png;base64," in final["text/html"]
    assert job.model_data in final["text/plain"] and job.model_data in final["text/html"]
    assert "epoch " not in final["text/plain"], "the final display keeps results, not the log"


def test_monitor_shows_a_failed_job_with_its_reason_in_red(source_dir, session):
    job = start(source_dir, session, epochs=2, fail=1)
    bundles = []
    LiveMonitor(job, publish=bundles.append).run()
    final = bundles[-1]
    assert "Failed" in final["text/plain"] and "the loss diverged" in final["text/plain"]
    assert "color:#c62828'><b>Failure reason:</b>" in final["text/html"]
    assert "epoch 1" in final["text/plain"], "a failed job keeps its last log lines"


def test_bundle_of_a_starting_job_has_text_and_no_plot():
    desc = {"TrainingJobName": "j", "TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting",
            "TrainingTimeInSeconds": 0, "nbsage:Progress": (None, None), "FinalMetricDataList": [],
            "ModelArtifacts": {}}
    bundle = training_bundle(desc, [], None)
    assert bundle["text/plain"] == "Training job j: InProgress (Starting), 00:00 elapsed"
    assert "image/png" not in bundle


def test_outside_a_jupyter_kernel_fit_keeps_plain_text_lines(source_dir, session):
    import nbsage.notebook.display  # noqa: F401  (registered, yet not used outside a kernel)
    from nbsage.watch import TextWatcher, watcher_for
    job = start(source_dir, session, epochs=1)
    assert isinstance(watcher_for(job), TextWatcher)
    job.wait_quietly(timeout=120)


def test_import_and_load_ext_do_not_import_matplotlib():
    code = textwrap.dedent("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        import nbsage
        InteractiveShell.instance().run_line_magic("load_ext", "nbsage")
        assert "nbsage.notebook.magics" in sys.modules
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "ipywidgets", "xgboost", "torch")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_executed_notebook_keeps_the_final_monitor_display(source_dir, session, tmp_path):
    """%%sm_train in a real Jupyter kernel (as papermill runs it): one display, updated in place."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext nbsage\nimport pandas as pd\n"
                                  "df = pd.DataFrame({'label': [0, 1], 'x': [1.0, 2.0]})"),
        nbformat.v4.new_code_cell(f"%%sm_train --train df --entry-point train.py --source-dir {source_dir} "
                                  "--metric train:loss=loss=([0-9.]+)\nepochs: 6\nsleep: 0.1"),
    ])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[1].outputs
    displays = [o for o in outputs if o.output_type == "display_data"]
    assert len(displays) == 1, [o.output_type for o in outputs]
    final = displays[0].data
    assert final["text/plain"].startswith("Training job train-") and ": Completed" in final["text/plain"]
    assert base64.b64decode(final["image/png"]).startswith(b"\x89PNG")
    assert "train:loss" in final["text/html"]
    assert not [o for o in outputs if o.output_type == "stream" and "epoch 0" in o.text], "no raw log stream"
    result = [o for o in outputs if o.output_type == "execute_result"]
    assert result and "status=Completed" in result[0].data["text/plain"]
