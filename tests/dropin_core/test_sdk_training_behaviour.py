"""Training as SageMaker notebooks expect it: a script written after the Estimator was built, reading
/opt/ml/input/data/train as in a container; Linear Learner reading a channel without a content type
as RecordIO-protobuf; a failed job's reason printed once."""
from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import nbsage as sagemaker
from nbsage.errors import JobFailed, ValidationError
from nbsage.runtime.private_view import probe_private_view

SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": "1"}

HARD_CODED = """
import os
rows = open("/opt/ml/input/data/train/train.csv").read().splitlines()
open("/opt/ml/model/rows.txt", "w").write(str(len(rows)))
print("rows", len(rows))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="a private /opt/ml needs Linux mount namespaces")
def test_a_script_written_after_the_estimator_reads_opt_ml_as_in_a_container(session, tmp_path, data):
    if probe_private_view(tmp_path, opt_ml=True, map_root=False) is not None:
        pytest.skip("no private mount namespace can be made on this machine")
    src = tmp_path / "src"
    src.mkdir()
    est = sagemaker.estimator.Estimator(entry_point="train.py", source_dir=str(src), role="role",
                                        sagemaker_session=session)
    with pytest.raises(ValidationError, match="entry_point .*train.py' does not exist"):
        est.fit({"train": str(data)}, logs=False)
    (src / "train.py").write_text(HARD_CODED)  # %%writefile after the Estimator, as in the notebooks
    job = est.fit({"train": str(data)}, logs=False)
    assert "rows 2" in job.logs()
    with tarfile.open(job.model_data) as tar:
        assert tar.extractfile("rows.txt").read() == b"2"
    assert not Path("/opt/ml/model/rows.txt").exists()  # the job's own /opt/ml, not the machine's


def test_linear_learner_reads_a_channel_without_content_type_as_recordio_protobuf(session, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    buf = io.BytesIO()
    sagemaker.amazon.common.write_numpy_to_dense_tensor(buf, x, y)
    bucket, key = session.default_bucket(), "sagemaker/DEMO-linear/train/recordio-pb-data"
    sagemaker.s3.S3Uploader.upload_bytes(buf, f"s3://{bucket}/{key}", sagemaker_session=session)
    linear = sagemaker.estimator.Estimator(sagemaker.image_uris.retrieve("linear-learner", "us-west-2"), "role",
                                           instance_count=1, instance_type="ml.c4.xlarge", sagemaker_session=session)
    linear.set_hyperparameters(feature_dim=4, predictor_type="binary_classifier", mini_batch_size=20, epochs=2,
                               num_models=1)
    job = linear.fit({"train": f"s3://{bucket}/{key}"}, logs=False)
    assert job.describe()["TrainingJobStatus"] == "Completed"


def test_a_failed_jobs_reason_is_printed_once(session, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("1,2,3\nx,1,2,3\n")
    est = sagemaker.estimator.Estimator("xgboost", {"num_round": 2}, sagemaker_session=session)
    with pytest.raises(JobFailed) as failed:
        est.fit({"train": str(tmp_path / "bad.csv")})
    printed = capsys.readouterr().out
    assert failed.value.reason and printed.count(failed.value.reason) == 1, printed


def test_the_readmes_cli_example_trains_xgboost_on_a_csv_file_as_written(tmp_path, monkeypatch, capsys, session):
    from nbsage.cli import main
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    np.savetxt(tmp_path / "train.csv", np.column_stack([x[:, 0] * 2, x]), delimiter=",", fmt="%.4f")
    monkeypatch.chdir(tmp_path)
    code = main(["train", "xgboost", "--train", "train.csv", "--hp", "num_round=50"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("reading it as text/csv") == 1
    assert "Completed; model artifacts:" in out


def test_the_notebook_monitor_shows_a_failure_once_not_again_among_the_log_lines():
    from nbsage.notebook.display import training_bundle
    reason = "ClientError: channel 'train': bad.csv line 2: expected 3 columns (label + 2 features), found 4"
    desc = {"TrainingJobName": "j", "TrainingJobStatus": "Failed", "SecondaryStatus": "Failed",
            "TrainingTimeInSeconds": 1, "nbsage:Progress": (None, None), "FinalMetricDataList": [],
            "ModelArtifacts": {}, "FailureReason": reason}
    bundle = training_bundle(desc, ["reading train", reason], None)
    assert bundle["text/plain"].count(reason) == 1 and "reading train" in bundle["text/plain"]
