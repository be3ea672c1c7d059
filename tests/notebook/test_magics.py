"""The magics as a user types them, in a real IPython shell, running real jobs in real processes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

from nbsage.session import Session
from nbsage.training_job import TrainingJob
from support import wait_for


# A SageMaker script-mode script: trains (prints a loss per epoch and nbsage progress lines), and
# serves (model_fn / input_fn / predict_fn / output_fn) so the same job can be deployed.
SCRIPT = '''
import argparse, io, json, os, sys, time

import numpy as np


def model_fn(model_dir):
    with open(os.path.join(model_dir, "weight.txt")) as f:
        return float(f.read())


def input_fn(body, content_type):
    if content_type.startswith("application/json"):
        return json.loads(body)
    return np.genfromtxt(io.StringIO(body), delimiter=",", ndmin=2)


def predict_fn(data, model):
    if isinstance(data, dict):
        return {"keys": sorted(data)}
    return (data.sum(axis=1) * model).tolist()


def output_fn(prediction, accept):
    if isinstance(prediction, dict):
        return json.dumps(prediction), "application/json"
    return "\\n".join(str(v) for v in prediction), "text/csv"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--fail", type=int, default=0)
    args, _ = parser.parse_known_args()
    rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], os.listdir(os.environ["SM_CHANNEL_TRAIN"])[0])).read().split()
    print(f"read {len(rows)} rows", flush=True)
    for epoch in range(args.epochs):
        print(f"epoch {epoch} loss={1.0 / (epoch + 1):.4f}", flush=True)
        print(f"#progress step={epoch + 1} total={args.epochs}", flush=True)
        time.sleep(args.sleep)
    if args.fail:
        sys.exit("the loss diverged")
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "weight.txt"), "w") as f:
        f.write("2.0")
'''
LOSS = "--metric 'train:loss=loss=([0-9.]+)'"


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """The test IPython shell with `%load_ext nbsage`, its own NBSAGE_HOME and default settings."""
    monkeypatch.setenv("NBSAGE_HOME", str(tmp_path / "home"))
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython
    start_ipython()  # the test shell, created once per process
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbsage")
    ip.run_line_magic("config", "SageMakerMagics.wait = True")
    ip.user_ns.pop("_sm_job", None)
    ip.user_ns["df"] = pd.DataFrame({"label": [0, 1, 0, 1], "x1": [1.0, 2.0, 3.0, 4.0], "x2": [0.5, 0.1, 0.2, 0.3]})
    yield ip
    for name in ("df", "_sm_job", "_sm_predictor", "job", "rows"):
        ip.user_ns.pop(name, None)
    for job in Session.default().list_training_jobs():
        if job.status == "InProgress":
            job.stop()


@pytest.fixture
def script(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    return f"--entry-point train.py --source-dir {src} {LOSS}"


def test_sm_train_cell_with_a_namespace_dataframe_and_yaml_body_completes(shell, script):
    job = shell.run_cell_magic("sm_train", f"--train df {script}", "epochs: 4\nsleep: 0\n")
    assert isinstance(job, TrainingJob)
    assert job.status == "Completed"
    assert job.final_metrics() == {"train:loss": pytest.approx(0.25)}
    assert shell.user_ns["_sm_job"] is job
    assert "read 4 rows" in job.logs()
    assert any("--epochs 4" in line for line in job.logs())
    models = shell.run_line_magic("sm_models", "")
    assert [m["ModelName"] for m in models] == [job.name] and models.rows[0][1] == "train.py"
    assert job.name in repr(models) and job.model_data in models._repr_html_()


def test_sm_train_xgboost_on_breast_cancer_reports_validation_auc(shell):
    from sklearn.datasets import load_breast_cancer
    data = load_breast_cancer(as_frame=True)
    frame = pd.concat([data.target, data.data], axis=1)  # label in column 0
    shell.user_ns["bc_train"], shell.user_ns["bc_val"] = frame.iloc[:450], frame.iloc[450:]
    try:
        job = shell.run_cell_magic("sm_train", "xgboost --train bc_train --validation bc_val",
                                   "num_round: 20\nobjective: binary:logistic\neval_metric: auc\n")
    finally:
        shell.user_ns.pop("bc_train"), shell.user_ns.pop("bc_val")
    assert job.status == "Completed"
    assert job.final_metrics()["validation:auc"] > 0.95
    assert job.model_data.endswith("model.tar.gz")


def test_line_magic_with_hp_pairs_returns_the_job_for_assignment(shell, script):
    shell.run_cell(f"job = %sm_train --train df --hp epochs=2 --hp sleep=0 --no-wait {script}")
    job = shell.user_ns["job"]
    assert isinstance(job, TrainingJob)
    assert job.wait_quietly(timeout=30)["TrainingJobStatus"] == "Completed"
    assert len(job.metrics()) == 2


def test_unknown_hyperparameter_is_one_line_with_did_you_mean(shell, capsys):
    result = shell.run_cell("%%sm_train xgboost --train df\nnum_round: 5\nmax_dept: 3\n")
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err
    assert err.strip() == ("UsageError: hyperparameter 'max_dept' is not a XGBoost hyperparameter; "
                           "did you mean 'max_depth'?")
    assert "Traceback" not in err
    assert Session.default().list_training_jobs() == []


def test_unknown_dataframe_name_suggests_the_close_one(shell, capsys):
    result = shell.run_cell("%%sm_train linear-learner --train dff\npredictor_type: regressor\n")
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "no variable 'dff'" in err and "did you mean 'df'?" in err


def test_bad_yaml_names_the_line_of_the_cell(shell):
    with pytest.raises(UsageError, match=r"not valid YAML at line 3 of the cell"):
        shell.run_cell_magic("sm_train", "linear-learner --train df", "predictor_type: regressor\nepochs: [3\n")


def test_missing_train_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="--train is required"):
        shell.run_cell_magic("sm_train", "linear-learner", "predictor_type: regressor\n")


def test_bad_hp_pair_and_bad_metric_regex_are_usage_errors(shell, script):
    with pytest.raises(UsageError, match="write hyperparameters as name=value"):
        shell.run_line_magic("sm_train", f"--train df --hp epochs {script}")
    with pytest.raises(UsageError, match="needs a group"):
        shell.run_line_magic("sm_train", f"--train df --entry-point train.py --metric 'loss=loss'")


def test_failed_job_is_one_line_naming_the_reason(shell, script):
    with pytest.raises(UsageError, match=r"ended Failed: .*the loss diverged"):
        shell.run_cell_magic("sm_train", f"--train df {script}", "epochs: 1\nfail: 1\n")
    assert shell.user_ns["_sm_job"].status == "Failed"


def test_jobs_logs_describe_and_stop_follow_a_long_running_job(shell, script):
    shell.run_line_magic("config", "SageMakerMagics.wait = False")
    job = shell.run_cell_magic("sm_train", f"--train df --name slow-job {script}", "epochs: 1000\nsleep: 0.05\n")
    assert job.name == "slow-job"
    wait_for(lambda: any(line.startswith("epoch 2 ") for line in job.logs()), 120, "the job's third epoch")

    jobs = shell.run_line_magic("sm_jobs", "")
    assert [j.name for j in jobs] == ["slow-job"]
    assert jobs.rows[0][:3] == ["slow-job", "InProgress", "train.py"]
    assert "slow-job" in repr(jobs) and "<table>" in jobs._repr_html_()

    logs = shell.run_line_magic("sm_logs", "slow-job --tail 2")
    assert len(logs) == 2 and all(line.startswith("epoch ") for line in logs)
    assert "#progress" not in repr(logs) and "<pre" in logs._repr_html_()

    description = shell.run_line_magic("sm_describe", "")  # the last job started here
    assert description["TrainingJobStatus"] == "InProgress"
    assert '"TrainingJobName": "slow-job"' in repr(description)

    stopped = shell.run_line_magic("sm_stop", "slow-job")
    assert stopped.status == "Stopped"
    assert shell.run_line_magic("sm_jobs", "").rows[0][1] == "Stopped"


def test_job_commands_name_an_unknown_job_in_one_line(shell):
    with pytest.raises(UsageError, match="no job named 'nope'"):
        shell.run_line_magic("sm_logs", "nope")
    with pytest.raises(UsageError, match="no job has been started"):
        shell.run_line_magic("sm_describe", "")


def test_config_settings_are_validated_traitlets(shell, caplog):
    magics = next(c for c in shell.configurables if type(c).__name__ == "SageMakerMagics")
    shell.run_line_magic("config", "SageMakerMagics.wait = False")
    assert magics.wait is False
    try:
        shell.run_line_magic("config", "SageMakerMagics.default_backend = ' '")  # %config logs, keeps the old value
        assert magics.default_backend == "local"
        assert "must name a place" in caplog.text
    finally:  # the shell is the process's one IPython instance: later magics are built from its config
        shell.config.SageMakerMagics.pop("default_backend", None)
        shell.config.SageMakerMagics.pop("wait", None)


def test_deploy_predict_and_delete_an_endpoint(shell, script):
    shell.run_cell_magic("sm_train", f"--train df {script}", "epochs: 1\n")
    predictor = shell.run_line_magic("sm_deploy", "--name magic-ep")
    try:
        assert predictor.endpoint_name == "magic-ep"
        endpoints = shell.run_line_magic("sm_endpoints", "")
        assert [e["EndpointName"] for e in endpoints] == ["magic-ep"] and "InService" in repr(endpoints)

        shell.user_ns["rows"] = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
        as_csv = shell.run_line_magic("sm_predict", "magic-ep rows")  # DataFrame -> CSV; CSV -> array
        assert isinstance(as_csv, np.ndarray) and as_csv.tolist() == [8.0, 12.0]
        as_json = shell.run_line_magic("sm_predict", 'magic-ep {"b": 1, "a": [1, 2]}')  # dict -> JSON
        assert as_json == {"keys": ["a", "b"]}
        from_text = shell.run_line_magic("sm_predict", "_sm_predictor '1,1\\n2,2'")  # str as text/csv
        assert from_text.tolist() == [4.0, 8.0]
        with pytest.raises(UsageError, match="cannot evaluate 'undefined_rows'"):
            shell.run_line_magic("sm_predict", "magic-ep undefined_rows")
    finally:
        shell.run_line_magic("sm_delete", "magic-ep")
    assert len(shell.run_line_magic("sm_endpoints", "")) == 0
    with pytest.raises(UsageError, match="magic-ep"):
        shell.run_line_magic("sm_predict", "magic-ep [[1, 2]]")


@pytest.mark.parametrize("magic, line, unknown, hint", [
    ("sm_train", "--entry-point train.py --trian df", "--trian", "; did you mean '--train'?"),
    ("sm_jobs", "--limit 3 extra", "extra", ""),
    ("sm_places", "--gatewy http://gpu-box:8888", "--gatewy http://gpu-box:8888", "; did you mean '--gateway'?"),
    ("sm_deploy", "some-job --nmae ep", "--nmae ep", "; did you mean '--name'?"),
])
def test_an_unknown_argument_is_refused_naming_it(shell, magic, line, unknown, hint):
    with pytest.raises(UsageError) as info:
        shell.run_line_magic(magic, line)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"%{magic} does not take {unknown}{hint}"), message
    assert "--" in message.partition("its options are")[2]  # and the options it takes
    assert Session.default().list_training_jobs() == []


def test_an_unknown_argument_of_the_processing_and_data_magics_is_refused(shell):
    with pytest.raises(UsageError, match="%sm_process does not take --inptu x; did you mean '--input'"):
        shell.run_cell_magic("sm_process", "--inptu x", "print(1)")
    with pytest.raises(UsageError, match="%sm_load does not take --format text/csv"):
        shell.run_line_magic("sm_load", "frame data.csv --format text/csv")


def test_a_hyperparameter_given_twice_in_the_cell_is_refused_naming_it(shell):
    with pytest.raises(UsageError, match=r"hyperparameter 'epochs' is given twice at line 4 of the cell"):
        shell.run_cell_magic("sm_train", "linear-learner --train df",
                             "predictor_type: regressor\nepochs: 1\nepochs: 2\n")
    assert Session.default().list_training_jobs() == []


def test_a_place_option_the_place_does_not_declare_is_refused(shell, script):
    with pytest.raises(UsageError, match="'gateway' is not an option of the local place; it takes no options; "
                                         "it is an option of the kernel place"):
        shell.run_line_magic("sm_train", f"--train df --backend local --gateway http://gpu-box:8888 {script}")
    assert Session.default().list_training_jobs() == []


def test_sm_places_lists_each_places_declared_options(shell):
    places = {p["name"]: p for p in shell.run_line_magic("sm_places", "")}
    assert places["local"]["options"] == [] and places["local"]["default"]
    assert places["dask"]["options"] == ["scheduler", "n_workers", "threads_per_worker"]
    assert {"gateway", "kernel", "connection_file"} <= set(places["kernel"]["options"])
    assert "Options" in repr(shell.run_line_magic("sm_places", "--backend dask"))
