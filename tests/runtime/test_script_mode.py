"""Script mode as sagemaker-training-toolkit runs it: a training script written for SageMaker runs
unchanged through Estimator(entry_point=..., source_dir=...) on the local place.

The script sees the SM_* environment and its hyperparameters as sorted `--name value` arguments
(JSON-decoded; booleans True/False on the command line, true/false in SM_HP_*), runs with the code
directory as its working directory, and its model directory becomes model.tar.gz at
`<output_path>/<job>/output/model.tar.gz`; metrics are scraped by MetricDefinitions.
"""
from __future__ import annotations

import json
import tarfile
import textwrap
from pathlib import Path

import pytest

from nbsage.errors import JobFailed
from nbsage.estimator import Estimator
from nbsage.runtime.script_mode import decode, to_cmd_args, user_hyperparameters

# A training script as SageMaker users write them (sagemaker-python-sdk examples, PyTorch/SKLearn
# script mode): argparse with defaults from SM_* variables, parse_known_args, metrics printed.
SAGEMAKER_SCRIPT = '''
import argparse
import json
import os
import sys

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--optimizer", type=str, default="sgd")
    parser.add_argument("--use-amp", type=str, default="False")
    parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--train", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
    parser.add_argument("--hosts", type=list, default=json.loads(os.environ["SM_HOSTS"]))
    parser.add_argument("--current-host", type=str, default=os.environ["SM_CURRENT_HOST"])
    parser.add_argument("--num-gpus", type=int, default=os.environ["SM_NUM_GPUS"])
    args, _ = parser.parse_known_args()

    rows = []
    for name in sorted(os.listdir(args.train)):
        with open(os.path.join(args.train, name)) as f:
            rows += [[float(v) for v in line.split(",")] for line in f if line.strip()]
    weight = 0.0
    for epoch in range(args.epochs):
        weight += args.learning_rate
        print(f"epoch {epoch}: train_loss={1.0 / (epoch + 1):.4f};", flush=True)
    print(f"validation accuracy: {0.875}", flush=True)

    with open(os.path.join(args.model_dir, "model.json"), "w") as f:
        json.dump({"weight": weight, "rows": len(rows)}, f)
    training_env = json.loads(os.environ["SM_TRAINING_ENV"])
    seen = {
        "argv": sys.argv[1:],
        "hps": json.loads(os.environ["SM_HPS"]),
        "sm_hp": {k: v for k, v in os.environ.items() if k.startswith("SM_HP_")},
        "channels": json.loads(os.environ["SM_CHANNELS"]),
        "hosts": args.hosts, "current_host": args.current_host, "num_gpus": args.num_gpus,
        "user_args": json.loads(os.environ["SM_USER_ARGS"]),
        "entry_point": os.environ["SM_USER_ENTRY_POINT"], "module_name": os.environ["SM_MODULE_NAME"],
        "output_data_dir": os.environ["SM_OUTPUT_DATA_DIR"], "output_dir": os.environ["SM_OUTPUT_DIR"],
        "input_config_dir": os.environ["SM_INPUT_CONFIG_DIR"],
        "resource_config": json.loads(os.environ["SM_RESOURCE_CONFIG"]),
        "input_data_config": json.loads(os.environ["SM_INPUT_DATA_CONFIG"]),
        "num_cpus": int(os.environ["SM_NUM_CPUS"]), "framework_params": json.loads(os.environ["SM_FRAMEWORK_PARAMS"]),
        "training_env": {k: training_env[k] for k in ("job_name", "hyperparameters", "channel_input_dirs",
                                                      "current_host", "hosts", "model_dir")},
        "use_amp": args.use_amp, "learning_rate": args.learning_rate, "optimizer": args.optimizer,
        "cwd": os.getcwd(), "training_job_name": os.environ.get("TRAINING_JOB_NAME"),
    }
    with open(os.path.join(args.model_dir, "seen.json"), "w") as f:
        json.dump(seen, f)
'''

METRICS = [{"Name": "train:loss", "Regex": r"train_loss=([0-9.]+);"},
           {"Name": "validation:accuracy", "Regex": r"validation accuracy: ([0-9.]+)"}]


# read by conftest's session fixture; requirements.txt tests must never reach the network: pip gets
# no index and no version check
SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": "1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture
def train_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "part-0.csv").write_text("1,0.5,0.25\n0,0.1,0.2\n")
    (data / "part-1.csv").write_text("1,0.9,0.8\n")
    return data


def source_dir(tmp_path: Path, script: str, name: str = "train.py", **extra_files: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / name).write_text(textwrap.dedent(script))
    for fname, content in extra_files.items():
        (src / fname.replace("__", ".")).write_text(content)
    return src


def archive_members(path: str) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_a_sagemaker_script_runs_unchanged_and_its_model_lands_where_sagemaker_puts_it(tmp_path, session, train_dir):
    src = source_dir(tmp_path, SAGEMAKER_SCRIPT)
    output_path = str(tmp_path / "bucket" / "models")
    est = Estimator(entry_point="train.py", source_dir=str(src), output_path=output_path,
                    hyperparameters={"epochs": 3, "learning-rate": 0.25, "optimizer": "adam", "use-amp": True,
                                     "layers": [64, 32], "schedule": {"warmup": 2, "decay": 0.5}},
                    metric_definitions=METRICS, sagemaker_session=session)
    job = est.fit({"train": str(train_dir)}, logs=False)
    desc = job.describe()
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")

    expected = f"{output_path}/{job.name}/output/model.tar.gz"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == expected == est.model_data
    files = archive_members(expected)
    assert set(files) == {"model.json", "seen.json"}  # at the archive root, no model/ prefix
    assert json.loads(files["model.json"]) == {"weight": 0.75, "rows": 3}

    seen = json.loads(files["seen.json"])
    # hyperparameters as sorted `--name value`: JSON-decoded, dict as k=v, bool as True
    assert seen["argv"] == ["--epochs", "3", "--layers", "[64, 32]", "--learning-rate", "0.25",
                            "--optimizer", "adam", "--schedule", "decay=0.5,warmup=2", "--use-amp", "True"]
    assert seen["user_args"] == seen["argv"]
    assert seen["hps"] == {"epochs": 3, "learning-rate": 0.25, "optimizer": "adam", "use-amp": True,
                           "layers": [64, 32], "schedule": {"warmup": 2, "decay": 0.5}}
    assert seen["sm_hp"] == {"SM_HP_EPOCHS": "3", "SM_HP_LEARNING-RATE": "0.25", "SM_HP_OPTIMIZER": "adam",
                             "SM_HP_USE-AMP": "true", "SM_HP_LAYERS": "[64,32]",
                             "SM_HP_SCHEDULE": '{"decay":0.5,"warmup":2}'}
    assert seen["learning_rate"] == 0.25 and seen["optimizer"] == "adam" and seen["use_amp"] == "True"
    assert seen["hosts"] == ["algo-1"] and seen["current_host"] == "algo-1" and seen["num_gpus"] == 0
    assert seen["channels"] == ["train"]
    assert seen["entry_point"] == "train.py" and seen["module_name"] == "train"
    assert seen["resource_config"]["hosts"] == ["algo-1"]
    assert seen["input_data_config"]["train"]["TrainingInputMode"] == "File"
    assert seen["num_cpus"] >= 1 and seen["framework_params"] == {}
    assert seen["training_env"]["job_name"] == job.name == seen["training_job_name"]
    assert seen["training_env"]["hyperparameters"] == seen["hps"]
    assert Path(seen["cwd"]).name == "code"  # /opt/ml/code
    assert seen["output_data_dir"].endswith("output/data") and seen["output_dir"].endswith("output")
    assert seen["input_config_dir"].endswith("input/config")

    final = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert final == pytest.approx({"train:loss": 1 / 3, "validation:accuracy": 0.875}, abs=1e-4)
    series = job.metrics()
    losses = series[series["name"] == "train:loss"]
    assert list(losses["step"]) == [0, 1, 2]
    assert list(losses["value"]) == pytest.approx([1.0, 0.5, 0.3333], abs=1e-4)
    assert any("epoch 2: train_loss=0.3333;" in line for line in job.logs())


def test_script_hyperparameters_are_recorded_json_encoded_as_the_sdk_does(tmp_path, session, train_dir):
    src = source_dir(tmp_path, "pass\n")
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session,
                    hyperparameters={"epochs": 10, "optimizer": "adam", "use-amp": True}).fit(train_dir, logs=False)
    hps = job.describe()["HyperParameters"]
    assert hps["epochs"] == "10" and hps["optimizer"] == '"adam"' and hps["use-amp"] == "true"
    assert hps["sagemaker_program"] == '"train.py"'
    assert json.loads(hps["sagemaker_job_name"]) == job.name


def test_a_comment_only_requirements_txt_needs_no_pip_run(tmp_path, session, train_dir):
    src = source_dir(tmp_path, """
        import os
        open(os.path.join(os.environ["SM_MODEL_DIR"], "m.txt"), "w").write("ok")
    """, requirements__txt="# no extra packages needed\n\n")
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session).fit(train_dir, logs=False)
    assert job.status == "Completed"
    assert not any("Installing requirements" in line for line in job.logs())


def test_a_requirement_that_cannot_be_installed_fails_the_job_before_the_script_runs(tmp_path, session, train_dir):
    # --no-index keeps pip off the network: the package is simply not found
    src = source_dir(tmp_path, "print('script ran')\n",
                     requirements__txt="--no-index\nnbsage-no-such-package-for-tests==0.0.0\n")
    est = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session)
    with pytest.raises(JobFailed) as err:
        est.fit(train_dir, logs=False)
    assert err.value.reason.startswith("InstallRequirementsError")
    assert not any("script ran" in line for line in est.latest_training_job.logs())


def test_a_shell_entry_point_runs_as_a_command_with_the_same_arguments(tmp_path, session, train_dir):
    src = source_dir(tmp_path, """\
        #!/bin/sh
        echo "args: $@"
        echo "$SM_HP_EPOCHS" > "$SM_MODEL_DIR/epochs.txt"
    """, name="train.sh")
    job = Estimator(entry_point="train.sh", source_dir=str(src), hyperparameters={"epochs": 4, "lr": 0.5},
                    sagemaker_session=session).fit(train_dir, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    assert "args: --epochs 4 --lr 0.5" in job.logs()
    assert archive_members(job.model_data) == {"epochs.txt": b"4\n"}


def test_a_script_sees_every_channel_under_its_own_sm_channel_variable(tmp_path, session, train_dir):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "e.csv").write_text("5,6\n")
    src = source_dir(tmp_path, """
        import json, os
        found = {c: sorted(os.listdir(os.environ["SM_CHANNEL_" + c.upper()]))
                 for c in json.loads(os.environ["SM_CHANNELS"])}
        json.dump(found, open(os.path.join(os.environ["SM_MODEL_DIR"], "found.json"), "w"))
    """)
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session).fit(
        {"train": str(train_dir), "validation": str(extra / "e.csv"), "test": str(extra)}, logs=False)
    found = json.loads(archive_members(job.model_data)["found.json"])
    assert found == {"test": ["e.csv"], "train": ["part-0.csv", "part-1.csv"], "validation": ["e.csv"]}


# ---- the toolkit's rendering rules, on their own --------------------------------------------------
def test_hyperparameter_values_are_decoded_as_the_toolkit_reads_them():
    assert decode("10") == 10 and decode('"adam"') == "adam" and decode("true") is True
    assert decode("adam") == "adam"  # an unquoted string from a non-SDK client stays a string
    user, framework = user_hyperparameters({"epochs": "2", "sagemaker_program": '"t.py"',
                                            "sagemaker_mpi_enabled": "true"})
    assert user == {"epochs": 2} and framework == {"sagemaker_mpi_enabled": True}


def test_command_line_arguments_are_sorted_and_rendered_with_str():
    args = to_cmd_args({"use-amp": True, "b": None, "lr": 0.001, "cfg": {"z": 1, "a": "x"}, "layers": [1, 2]})
    assert args == ["-b", "", "--cfg", "a=x,z=1", "--layers", "[1, 2]", "--lr", "0.001", "--use-amp", "True"]
