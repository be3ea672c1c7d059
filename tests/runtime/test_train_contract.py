"""The training container contract, run as SageMaker runs a container: `python -m nbsage.runtime
train --root DIR` on a job root laid out like /opt/ml, in a real subprocess.

Exit code 0 and output/success on success; non-zero and output/failure (the FailureReason)
otherwise; model/ becomes model.tar.gz with the files at the archive root; output/data becomes
output.tar.gz; SIGTERM ends the job with 143.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from nbsage.runtime import layout
from nbsage.runtime.environment import count_gpus
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot

RUN_TIMEOUT = 60


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSAGE_HOME", str(tmp_path / "home"))


def make_root(tmp_path: Path, script: str | None, hyperparameters: dict | None = None,
              channels: dict | None = None, instance_type: str = "local", algorithm: str | None = None) -> JobRoot:
    """A job root as a place would stage it: configs, channel files, the script in code/."""
    hps = {k: json.dumps(v) for k, v in (hyperparameters or {}).items()}
    if script is not None:
        hps.update(sagemaker_program=json.dumps("train.py"), sagemaker_submit_directory=json.dumps("/opt/ml/code"),
                   sagemaker_container_log_level="20", sagemaker_job_name=json.dumps("contract-job"))
    channels = {"train": {"part-0.csv": "1,2,3\n0,4,5\n"}} if channels is None else channels
    request = {
        "TrainingJobName": "contract-job",
        "AlgorithmSpecification": {"TrainingInputMode": "File",
                                   **({"TrainingImage": algorithm} if algorithm else {})},
        "HyperParameters": hps,
        "InputDataConfig": [{"ChannelName": name, "ContentType": "text/csv",
                             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"/data/{name}",
                                                             "S3DataDistributionType": "FullyReplicated"}}}
                            for name in channels],
        "OutputDataConfig": {"S3OutputPath": str(tmp_path / "out")},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    root = write_job_configs(JobRoot(tmp_path / "opt_ml"), request)
    for name, files in channels.items():
        for fname, content in files.items():
            (root.channel_dir(name)).mkdir(parents=True, exist_ok=True)
            (root.channel_dir(name) / fname).write_text(content)
    if script is not None:
        (root.code_dir / "train.py").write_text(textwrap.dedent(script))
    return root


def run_train(root: JobRoot) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=str(root.path))


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_config_files_follow_the_container_layout(tmp_path):
    root = make_root(tmp_path, "pass\n", {"epochs": 3, "optimizer": "adam", "use-amp": True})
    hps = json.loads((root.config_dir / layout.HYPERPARAMETERS).read_text())
    assert all(isinstance(v, str) for v in hps.values())
    assert hps["epochs"] == "3" and hps["optimizer"] == '"adam"' and hps["use-amp"] == "true"
    idc = json.loads((root.config_dir / layout.INPUT_DATA_CONFIG).read_text())
    assert idc == {"train": {"ContentType": "text/csv", "TrainingInputMode": "File",
                             "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}
    rc = json.loads((root.config_dir / layout.RESOURCE_CONFIG).read_text())
    assert rc["current_host"] == "algo-1" and rc["hosts"] == ["algo-1"]
    assert rc["network_interface_name"] == "eth0" and rc["current_instance_type"] == "local"
    for folder in (root.model_dir, root.output_data_dir, root.checkpoints_dir, root.code_dir, root.channel_dir("train")):
        assert folder.is_dir()


def test_success_exits_0_writes_success_and_packs_model_files_at_the_archive_root(tmp_path):
    root = make_root(tmp_path, """
        import os
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.bin"), "wb") as f:
            f.write(b"weights")
        os.makedirs(os.path.join(os.environ["SM_MODEL_DIR"], "sub"))
        open(os.path.join(os.environ["SM_MODEL_DIR"], "sub", "vocab.txt"), "w").write("a b")
    """)
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert root.success_file.exists()
    assert not root.failure_file.exists()
    files = members(root.model_archive)
    assert files == {"model.bin": b"weights", "sub/vocab.txt": b"a b"}


def test_output_data_becomes_output_tar_gz(tmp_path):
    root = make_root(tmp_path, """
        import os
        open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt"), "w").write("all good")
        open(os.path.join(os.environ["SM_MODEL_DIR"], "m"), "w").write("m")
    """)
    assert run_train(root).returncode == 0
    assert members(root.output_archive) == {"report.txt": b"all good"}


def test_a_script_that_raises_fails_with_execute_user_script_error_and_its_message(tmp_path):
    root = make_root(tmp_path, """
        import sys
        print("starting", flush=True)
        raise ValueError("column 7 holds text, expected numbers")
    """)
    result = run_train(root)
    assert result.returncode == 1
    reason = root.failure_reason()
    assert reason.startswith("ExecuteUserScriptError")
    assert "ExitCode 1" in reason
    assert "ValueError: column 7 holds text, expected numbers" in reason
    assert "train.py" in reason  # the Command line
    assert not root.success_file.exists()
    assert "column 7 holds text" in result.stderr  # the script's stderr is passed through


def test_the_scripts_own_exit_code_is_reported_but_the_job_exits_1(tmp_path):
    root = make_root(tmp_path, "import sys\nsys.exit(7)\n")
    result = run_train(root)
    assert result.returncode == 1
    assert "ExitCode 7" in root.failure_reason()


def test_a_failure_file_written_by_the_script_is_the_failure_reason(tmp_path):
    root = make_root(tmp_path, """
        import os, sys
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
            f.write("the labels must be 0 or 1; found 2 in row 12")
        sys.exit(2)
    """)
    assert run_train(root).returncode == 1
    assert root.failure_reason() == "the labels must be 0 or 1; found 2 in row 12"


def test_the_failure_reason_is_cut_at_1024_characters(tmp_path):
    root = make_root(tmp_path, """
        import os, sys
        open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w").write("x" * 5000)
        sys.exit(1)
    """)
    assert run_train(root).returncode == 1
    assert len(root.failure_reason()) == 1024


def test_sigterm_ends_the_job_with_143_and_a_stopped_reason(tmp_path):
    marker = tmp_path / "started"
    root = make_root(tmp_path, f"""
        import time
        open({str(marker)!r}, "w").write("x")
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists()
        os.killpg(proc.pid, signal.SIGTERM)  # what a place does to stop a job
        assert proc.wait(20) == 143
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert root.failure_reason().startswith("Stopped")


def test_a_root_naming_neither_an_algorithm_nor_a_script_fails_with_a_client_error(tmp_path):
    root = make_root(tmp_path, None)
    result = run_train(root)
    assert result.returncode == 1
    assert root.failure_reason().startswith("ClientError: the job root names neither")


def test_an_unknown_algorithm_fails_with_a_client_error_naming_it(tmp_path):
    root = make_root(tmp_path, None, algorithm="xgboots")
    result = run_train(root)
    assert result.returncode == 1
    reason = root.failure_reason()
    assert reason.startswith("ClientError") and "xgboots" in reason


@pytest.mark.skipif(count_gpus() > 0, reason="this machine has a GPU")
def test_a_gpu_instance_type_without_a_gpu_fails_with_a_clear_client_error(tmp_path):
    root = make_root(tmp_path, "print('should not run')\n", instance_type="local_gpu")
    result = run_train(root)
    assert result.returncode == 1
    reason = root.failure_reason()
    assert reason.startswith("ClientError") and "GPU" in reason and "local_gpu" in reason
    assert "should not run" not in result.stdout
