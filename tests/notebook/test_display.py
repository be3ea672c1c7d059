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
    assert not [o for o in outputs if o.output_type == "stream" and "epoch 0" in o.text], "no raw log stream"
    result = [o for o in outputs if o.output_type == "execute_result"]
    assert result and "status=Completed" in result[0].data["text/plain"]
    # each fact once: the returned job's table has the final metric and the artifact, the live display not
    table = result[0].data["text/html"]
    assert "train:loss" in table and "model.tar.gz" in table and "Completed (Completed)" not in table
    assert "train:loss" not in final["text/html"] and "model.tar.gz" not in final["text/html"]


def _desc(**changes) -> dict:
    desc = {"TrainingJobName": "j", "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
            "TrainingTimeInSeconds": 65, "nbsage:Progress": (100, 100), "FinalMetricDataList": [
                {"MetricName": "validation:rmse", "Value": 0.25}],
            "ModelArtifacts": {"S3ModelArtifacts": "/a/model.tar.gz"}}
    return dict(desc, **changes)


def test_a_job_ended_by_early_stopping_says_so():
    bundle = training_bundle(_desc(**{"nbsage:Progress": (82, 100)}), [], None)
    assert "82/100 stopped early: early stopping ended training before step 100" in bundle["text/plain"]
    assert "82/100 (82%) &mdash; <b>stopped early" in bundle["text/html"]
    assert "stopped early" not in training_bundle(_desc(), [], None)["text/plain"]
    failed = _desc(TrainingJobStatus="Failed", SecondaryStatus="Failed", **{"nbsage:Progress": (82, 100)})
    assert "stopped early" not in training_bundle(failed, [], None)["text/plain"]


def test_a_processing_job_is_titled_as_one():
    bundle = training_bundle(_desc(ProcessingJobName="j", **{"nbsage:Progress": (None, None)}), [], None)
    assert bundle["text/plain"].startswith("Processing job j: Completed in 01:05")
    assert bundle["text/html"].startswith("<div><b>Processing job j</b>")
    assert "Training job" not in bundle["text/plain"] + bundle["text/html"]


def test_a_failed_job_states_its_reason_once():
    reason = 'ExecuteUserScriptError:\nExitCode 1\nErrorMessage "the loss diverged"'
    desc = _desc(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=reason, ModelArtifacts={},
                 FinalMetricDataList=[])
    bundle = training_bundle(desc, ["epoch 0 loss=1.0", "the loss diverged"], None)
    assert bundle["text/plain"].count("the loss diverged") == 1 and "epoch 0 loss=1.0" in bundle["text/plain"]
    assert bundle["text/html"].count("the loss diverged") == 1
    # %%sm_train raises the reason as its error line: its display then leaves the reason out
    quiet = training_bundle(desc, ["epoch 0 loss=1.0", "the loss diverged"], None, results=False)
    assert "the loss diverged" not in quiet["text/plain"] + quiet["text/html"]


def test_results_false_leaves_metrics_and_artifact_to_the_caller():
    bundle = training_bundle(_desc(), [], None, results=False)
    assert bundle["text/plain"] == "Training job j: Completed in 01:05\n[####################] 100/100"
    assert "validation:rmse" not in bundle["text/html"] and "model.tar.gz" not in bundle["text/html"]


def test_the_plot_draws_curves_only_with_a_legend_outside_on_a_transparent_background():
    from nbsage.notebook.display import metric_plot_png, plotted_metrics
    rows = [("train:loss", 1.0 / (s + 1), s, 0.0) for s in range(5)]
    rows += [("validation:loss", 1.2 / (s + 1), s, 0.0) for s in range(5)]
    rows += [("test:RMSE", 3.0, None, 0.0), ("validation:objective_loss:final", 0.2, None, 0.0)]
    metrics = pd.DataFrame(rows, columns=["name", "value", "step", "timestamp"])
    assert plotted_metrics(metrics) == ["train:loss", "validation:loss"], "end-of-training values are not curves"
    png = metric_plot_png(metrics)
    assert png[25] == 6, "RGBA: the background is transparent, so the dark theme shows through"
    assert metric_plot_png(metrics[metrics["step"].isna()]) is None, "final values only: no plot, the table has them"
