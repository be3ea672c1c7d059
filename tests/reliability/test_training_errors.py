"""Errors for training inputs and model archives that used to be unclear, through the real faces.

(The single-input cases are in corpus.yaml; these need a job's supervisor, an endpoint's deploy or
the model server's own process.)
"""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from nbsage.errors import JobFailed, NBSageError
from nbsage.session import Session

REPO = Path(__file__).resolve().parents[2]


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_unreachable_s3_channel_fails_the_job_naming_the_channel_and_uri(tmp_path, monkeypatch):
    pytest.importorskip("s3fs")
    from nbsage.estimator import Estimator
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": closed, "AWS_MAX_ATTEMPTS": "1",
                       "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(key, value)
    est = Estimator("xgboost", {"num_round": 2}, sagemaker_session=Session.default())
    with pytest.raises(JobFailed) as info:
        est.fit({"train": "s3://no-such-bucket/train/"}, wait=True, logs=False)
    reason = info.value.reason
    assert reason.startswith("ClientError: channel 'train'"), reason
    assert "s3://no-such-bucket/train/" in reason and "checkpoint" not in reason.lower(), reason


def test_deploying_another_algorithms_archive_fails_in_one_line_naming_the_files(tmp_path):
    from nbsage.serving import endpoints
    session = Session(home=tmp_path / "home")
    archive = _archive(tmp_path / "model.tar.gz", {"linear-learner-model.npz": b"PK", "linear-learner-model.json": b"{}"})
    with pytest.raises(NBSageError) as info:
        endpoints.deploy(session, "wrong-model", str(archive), algorithm="xgboost")
    message = str(info.value)
    assert "\n" not in message and "xgboost-model" in message and "linear-learner-model.npz" in message, message
    record = session.store.get_endpoint("wrong-model")
    assert record["status"] == "Failed" and "xgboost-model" in record["failure_reason"]


def test_the_model_server_refuses_a_folder_without_the_model_file_in_one_line(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"\0")
    ready = tmp_path / "ready"
    proc = subprocess.run([sys.executable, "-m", "nbsage.runtime", "serve", "--model-dir", str(model),
                           "--algorithm", "xgboost", "--port", "0", "--ready-file", str(ready)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1
    reason = Path(f"{ready}.failure").read_text().strip()
    assert "xgboost-model" in reason and "model.bin" in reason and "blazingtext" in reason, reason
    assert "Traceback" not in proc.stderr, proc.stderr


def test_a_job_names_the_users_own_file_and_line_not_the_staged_copy(tmp_path):
    from nbsage.estimator import Estimator
    from nbsage.inputs import TrainingInput
    data = tmp_path / "my-data"
    data.mkdir()
    (data / "train.csv").write_text("1,0.5,0.25\n0,0.1,0.2\nnan,0.3,0.4\n1,0.9,0.1\n")
    est = Estimator("xgboost", {"num_round": 2, "objective": "binary:logistic"}, sagemaker_session=Session.default())
    with pytest.raises(JobFailed) as info:
        est.fit({"train": TrainingInput(str(data), content_type="text/csv")}, wait=True, logs=False)
    reason = info.value.reason
    assert f"{data / 'train.csv'} line 3: the label is nan" in reason, reason
    assert "input/data/train" not in reason and "Stack trace" not in reason, reason
