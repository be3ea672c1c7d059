"""The `nbsage` console script, run as a user runs it: in a subprocess, against its own NBSAGE_HOME.

Errors are one line, `nbsage: error: ...`, with exit code 2 for usage mistakes and 1 for failed
jobs; the algorithm help is generated from the declarations.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nbsage import algorithms
from support import wait_for

CONSOLE_SCRIPT = Path(sys.executable).parent / "nbsage"
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "nbsage.cli"]

TRAIN_SCRIPT = """
import argparse, json, os, sys
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--optimizer", default="sgd")
p.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
a, _ = p.parse_known_args()
print("args:", " ".join(sys.argv[1:]), flush=True)
for e in range(a.epochs):
    print(f"epoch {e} loss={1.0 / (e + 1):.3f}", flush=True)
open(os.path.join(a.model_dir, "model.txt"), "w").write(a.optimizer)
"""


def nbsage(home: Path, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, NBSAGE_HOME=str(home), NBSAGE_STOP_GRACE_SECONDS="1")
    env.pop("NBSAGE_ARTIFACT_ROOT", None)
    result = subprocess.run(COMMAND + list(args), env=env, capture_output=True, input=input, timeout=timeout)
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    return result


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nbsage: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSAGE_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A source dir, a data folder and one finished script-mode job trained through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    (root / "src").mkdir()
    (root / "src" / "train.py").write_text(textwrap.dedent(TRAIN_SCRIPT))
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("1,0.5\n0,0.25\n1,0.75\n0,0.1\n")
    (root / "hps.yaml").write_text("epochs: 2\noptimizer: sgd\n")
    home = root / "home"
    result = nbsage(home, "train", "--entry-point", "train.py", "--source-dir", str(root / "src"),
                    "--train", str(root / "data"), "--hyperparameters", str(root / "hps.yaml"),
                    "--hp", "optimizer=adam", "epochs=3", "--metric", "train:loss=loss=([0-9.]+)",
                    "--name", "cli-job")
    return root, home, result


def test_train_runs_a_script_mode_job_prints_its_log_and_where_the_model_is(workdir):
    root, home, result = workdir
    assert result.returncode == 0, result.stdout + result.stderr
    assert "args: --epochs 3 --optimizer adam" in result.stdout  # --hp overrides the file
    assert "epoch 2 loss=0.333" in result.stdout
    assert "train:loss = 0.333" in result.stdout
    model = home / "artifacts" / "training" / "cli-job" / "output" / "model.tar.gz"
    assert f"cli-job: Completed; model artifacts: {model}" in result.stdout
    assert model.exists()


def test_jobs_lists_the_job_with_its_status_script_and_metrics(workdir):
    _, home, _ = workdir
    result = nbsage(home, "jobs")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "STATUS", "SECONDARY", "ALGORITHM"]
    assert row.split()[:4] == ["cli-job", "Completed", "Completed", "train.py"]
    assert "train:loss=0.333" in row
    listed = json.loads(nbsage(home, "jobs", "--json").stdout)
    assert [d["TrainingJobName"] for d in listed] == ["cli-job"]


def test_describe_prints_describe_training_job_as_json(workdir):
    _, home, _ = workdir
    result = nbsage(home, "describe", "cli-job")
    assert result.returncode == 0, result.stderr
    desc = json.loads(result.stdout)
    assert desc["TrainingJobName"] == "cli-job" and desc["TrainingJobStatus"] == "Completed"
    assert desc["HyperParameters"]["epochs"] == "3" and desc["HyperParameters"]["optimizer"] == '"adam"'
    assert desc["ModelArtifacts"]["S3ModelArtifacts"].endswith("/cli-job/output/model.tar.gz")
    assert desc["FinalMetricDataList"][0]["MetricName"] == "train:loss"
    assert desc["TrainingJobArn"] == "arn:aws:sagemaker:local:000000000000:training-job/cli-job"


def test_logs_prints_the_jobs_log_lines(workdir):
    _, home, _ = workdir
    result = nbsage(home, "logs", "cli-job")
    assert result.returncode == 0, result.stderr
    assert "epoch 0 loss=1.000" in result.stdout and "args: --epochs 3 --optimizer adam" in result.stdout
    tail = nbsage(home, "logs", "cli-job", "--tail", "1").stdout.splitlines()
    assert tail == [result.stdout.splitlines()[-1]]


def test_a_hyperparameter_without_a_value_is_a_one_line_usage_error(workdir, tmp_path):
    root, _, _ = workdir
    result = nbsage(tmp_path / "home", "train", "--entry-point", "train.py", "--source-dir", str(root / "src"),
                    "--train", str(root / "data"), "--hp", "epochs")
    assert_one_line_error(result, 2, "--hp 'epochs' is not NAME=VALUE")


def test_an_invalid_builtin_hyperparameter_value_is_a_one_line_usage_error(workdir, tmp_path):
    root, _, _ = workdir
    result = nbsage(tmp_path / "home", "train", "linear-learner", "--train", str(root / "data"),
                    "--hp", "predictor_type=regressr")
    assert_one_line_error(result, 2, "'predictor_type'", "regressor")
    result = nbsage(tmp_path / "home", "train", "linear-learner", "--train", str(root / "data"),
                    "--hp", "predictor_typ=regressor")
    assert_one_line_error(result, 2, "did you mean 'predictor_type'")
    assert nbsage(tmp_path / "home", "jobs").stdout.startswith("no training jobs")


def test_a_hyperparameters_file_that_is_not_a_mapping_is_a_usage_error(workdir, tmp_path):
    root, _, _ = workdir
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    result = nbsage(tmp_path / "home", "train", "--entry-point", "train.py", "--source-dir", str(root / "src"),
                    "--hyperparameters", str(bad))
    assert_one_line_error(result, 2, "must hold a mapping")
    result = nbsage(tmp_path / "home", "train", "--entry-point", "train.py", "--source-dir", str(root / "src"),
                    "--hyperparameters", str(tmp_path / "missing.yaml"))
    assert_one_line_error(result, 2, "cannot read hyperparameters file")


def test_a_failed_job_exits_1_with_its_reason_on_one_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("raise SystemExit('the data folder is empty')\n")
    result = nbsage(tmp_path / "home", "train", "--entry-point", "train.py", "--source-dir", str(src), "--name", "bad-job")
    line = assert_one_line_error(result, 1, "training job 'bad-job' ended Failed", "ExecuteUserScriptError")
    assert "the data folder is empty" in line
    header, row = nbsage(tmp_path / "home", "jobs").stdout.splitlines()[:2]
    assert header.split()[-2:] == ["FAILURE", "REASON"]
    assert row.startswith("bad-job ") and row.endswith("ExecuteUserScriptError: the data folder is empty")


def test_train_without_an_algorithm_or_script_is_a_usage_error(tmp_path):
    assert_one_line_error(nbsage(tmp_path / "home", "train"), 2, "--entry-point")
    assert_one_line_error(nbsage(tmp_path / "home", "train", "xgbost", "--train", "x"), 2, "did you mean 'xgboost'")
    assert_one_line_error(nbsage(tmp_path / "home"), 2)
    assert_one_line_error(nbsage(tmp_path / "home", "trian"), 2, "invalid choice")


def test_an_unknown_job_is_a_one_line_error(tmp_path):
    assert_one_line_error(nbsage(tmp_path / "home", "describe", "nope"), 1, "no job named 'nope'")
    assert_one_line_error(nbsage(tmp_path / "home", "logs", "nope"), 1, "no job named 'nope'")


def test_no_wait_prints_the_job_name_and_logs_follow_waits_for_the_end(workdir, tmp_path):
    root, _, _ = workdir
    home = tmp_path / "home"
    started = nbsage(home, "train", "--entry-point", "train.py", "--source-dir", str(root / "src"),
                     "--train", str(root / "data"), "--hp", "epochs=4", "--no-wait")
    assert started.returncode == 0, started.stderr
    name = started.stdout.strip()
    assert len(started.stdout.splitlines()) == 1 and name.startswith("train-")
    followed = nbsage(home, "logs", name, "--follow")
    assert followed.returncode == 0, followed.stderr
    assert "epoch 3 loss=0.250" in followed.stdout
    assert json.loads(nbsage(home, "describe", name).stdout)["TrainingJobStatus"] == "Completed"


def test_stop_stops_a_running_job(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    marker = tmp_path / "running"
    (src / "train.py").write_text(f"import time\nopen({str(marker)!r}, 'w').write('x')\ntime.sleep(60)\n")
    home = tmp_path / "home"
    name = nbsage(home, "train", "--entry-point", "train.py", "--source-dir", str(src), "--no-wait").stdout.strip()
    wait_for(marker.exists, 120, "the script to start")
    result = nbsage(home, "stop", name, "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{name}: Stopped (Stopped)"


def test_train_help_lists_the_builtin_algorithms(tmp_path):
    result = nbsage(tmp_path / "home", "train", "--help")
    assert result.returncode == 0
    assert f"built-in algorithms: {', '.join(algorithms.names())}" in result.stdout
    assert "--entry-point" in result.stdout and "--hp NAME=VALUE" in result.stdout


@pytest.mark.parametrize("name", algorithms.names())
def test_algorithm_help_is_generated_from_the_declaration(tmp_path, name):
    algorithm = algorithms.get(name)
    for args in (["algorithms", name], ["train", name, "--help"]):
        result = nbsage(tmp_path / "home", *args)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        for hp in algorithm.hyperparameters:
            line = next((l for l in lines if l.split() and l.split()[0] == hp.name), None)
            assert line is not None, f"{hp.name} missing from `nbsage {' '.join(args)}`"
            assert hp.describe() in line and hp.help in line
            if hp.default is not None:
                assert f"default {hp.default}" in line
        for channel in algorithm.channels:
            assert any(l.split() and l.split()[0] == channel.name for l in lines)


def test_train_xgboost_help_lists_max_depth_with_its_range(tmp_path):
    result = nbsage(tmp_path / "home", "train", "xgboost", "--help")
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.strip().startswith("max_depth "))
    assert "default 6" in line and "an integer in >= 0" in line


def test_algorithms_lists_every_registered_algorithm(tmp_path):
    result = nbsage(tmp_path / "home", "algorithms")
    assert result.returncode == 0, result.stderr
    names = [l.split()[0] for l in result.stdout.splitlines()[1:] if l.strip() and not l.startswith("nbsage")]
    assert names == algorithms.names()


def test_the_module_form_and_version_work(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nbsage.cli", "--version"], capture_output=True, text=True,
                            env=dict(os.environ, NBSAGE_HOME=str(tmp_path / "home")), timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("nbsage ")


def test_deploy_endpoints_invoke_and_delete(tmp_path):
    home = tmp_path / "home"
    data = tmp_path / "train.csv"
    data.write_text("".join(f"{int(i % 2)},{(i % 2) + 0.1 * (i % 3)},{i % 5}\n" for i in range(40)))
    trained = nbsage(home, "train", "linear-learner", "--train", str(data), "--hp", "predictor_type=binary_classifier",
                     "epochs=1", "--name", "ll-job", "--quiet")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    deployed = nbsage(home, "deploy", "ll-job", "--name", "ll-endpoint")
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.strip() == "ll-endpoint"
    try:
        listed = nbsage(home, "endpoints")
        assert listed.stdout.splitlines()[1].split()[:2] == ["ll-endpoint", "InService"]
        described = json.loads(nbsage(home, "endpoints", "ll-endpoint").stdout)
        assert described["EndpointStatus"] == "InService"
        assert described["EndpointArn"] == "arn:aws:sagemaker:local:000000000000:endpoint/ll-endpoint", "one ARN scheme"
        models = nbsage(home, "models").stdout.splitlines()
        assert models[0].split() == ["NAME", "ALGORITHM", "CREATED", "ENDPOINTS", "MODEL", "DATA"]
        assert models[1].split()[:2] == ["ll-job", "linear-learner"] and models[1].split()[4] == "ll-endpoint"
        assert models[1].endswith("/ll-job/output/model.tar.gz")
        model = json.loads(nbsage(home, "models", "--json").stdout)[0]
        assert model["ModelArn"] == "arn:aws:sagemaker:local:000000000000:model/ll-job"
        assert model["nbsage:Endpoints"] == ["ll-endpoint"] and model["nbsage:Source"] == "training job ll-job"
        answer = nbsage(home, "invoke", "ll-endpoint", "-", "--content-type", "text/csv",
                        "--accept", "application/json", input=b"1.1,2\n0.0,4\n")
        assert answer.returncode == 0, answer.stderr
        predictions = json.loads(answer.stdout)["predictions"]
        assert len(predictions) == 2 and all("score" in p for p in predictions)
        request = tmp_path / "request.csv"
        request.write_text("1.1,2\n")
        from_file = nbsage(home, "invoke", "ll-endpoint", str(request), "--accept", "application/json")
        assert len(json.loads(from_file.stdout)["predictions"]) == 1
        assert_one_line_error(nbsage(home, "invoke", "ll-endpoint", str(tmp_path / "missing.csv")), 2,
                              "cannot read request body")
    finally:
        deleted = nbsage(home, "delete", "ll-endpoint")
    assert deleted.returncode == 0, deleted.stderr
    assert nbsage(home, "endpoints").stdout.startswith("no endpoints")
    kept = nbsage(home, "models").stdout.splitlines()[1]
    assert kept.split()[:2] == ["ll-job", "linear-learner"], "the model outlives its endpoint"
    assert "ll-endpoint" not in kept
    assert_one_line_error(nbsage(home, "invoke", "ll-endpoint", "-", input=b"1,2\n"), 1, "no endpoint named")


def test_deploying_a_job_that_did_not_complete_is_a_usage_error(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("raise SystemExit(3)\n")
    home = tmp_path / "home"
    nbsage(home, "train", "--entry-point", "train.py", "--source-dir", str(src), "--name", "failed-job")
    assert_one_line_error(nbsage(home, "deploy", "failed-job"), 2, "'failed-job' is Failed, not Completed")


SAME_SCRIPT = """
import os
print("#progress step=1 total=1", flush=True)
print("#metric train:auc=0.5", flush=True)
print("trained", flush=True)
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("x")
"""


def test_the_magic_and_the_cli_make_the_same_job_request_and_show_the_same_logs(tmp_path, monkeypatch):
    """One grammar: the same words give the same CreateTrainingJob request and the same log lines."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(SAME_SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("1,0.5\n0,0.25\n")
    words = ["--entry-point", "train.py", "--source-dir", str(tmp_path / "src"), "--train", str(tmp_path / "data"),
             "--test", str(tmp_path / "data"), "--channel", "extra=" + str(tmp_path / "data"),
             "--content-type", "text/csv", "--hp", "epochs=2", "lr=1e-3", "optimizer=adam", "nesterov=true",
             "--metric", "train:loss=loss=([0-9.]+)", "--instance-count", "1", "--max-run", "600",
             "--name", "same-job", "--quiet"]
    cli_home = tmp_path / "cli-home"
    result = nbsage(cli_home, "train", *words)
    assert result.returncode == 0, result.stderr

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython
    from nbsage.session import Session
    from nbsage.training_job import TrainingJob
    magic_home = tmp_path / "magic-home"
    monkeypatch.setenv("NBSAGE_HOME", str(magic_home))
    start_ipython()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbsage")
    shell.run_line_magic("config", "SageMakerMagics.wait = True")
    job = shell.run_line_magic("sm_train", " ".join(shlex.quote(w) for w in words))
    assert job.status == "Completed"

    def request(home: Path) -> str:
        text = json.dumps(TrainingJob("same-job", Session(home=home)).request, sort_keys=True)
        return text.replace(str(home), "HOME")
    assert request(magic_home) == request(cli_home)
    hps = TrainingJob("same-job", Session(home=magic_home)).request["HyperParameters"]
    assert (hps["epochs"], hps["lr"], hps["optimizer"], hps["nesterov"]) == ("2", "0.001", '"adam"', "true")

    def untimed(lines) -> list[str]:
        return [re.sub(r"[0-9.]+ s\b", "N s", line) for line in lines]  # "Training finished in 0.41 s"
    magic_logs = untimed(shell.run_line_magic("sm_logs", "same-job"))
    cli_logs = untimed(nbsage(cli_home, "logs", "same-job").stdout.splitlines())
    assert magic_logs == cli_logs and "trained" in cli_logs
    assert not any(line.startswith(("#metric", "#progress")) for line in cli_logs)
    shell.user_ns.pop("_sm_job", None)


def test_a_hyperparameter_given_twice_in_the_file_is_refused_naming_it(workdir, tmp_path):
    root, _, _ = workdir
    twice = tmp_path / "twice.yaml"
    twice.write_text("epochs: 2\noptimizer: sgd\nepochs: 3\n")
    result = nbsage(tmp_path / "home", "train", "--entry-point", "train.py", "--source-dir", str(root / "src"),
                    "--hyperparameters", str(twice))
    assert_one_line_error(result, 2, "hyperparameter 'epochs' is given twice at line 3 of hyperparameters file")
