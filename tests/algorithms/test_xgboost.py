"""XGBoost built-in algorithm: real job roots run by nbsage.runtime, real models, real handler."""
from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nbsage import algorithms
from nbsage.errors import (
    HyperparameterError,
    InvalidRequest,
    UnsupportedAccept,
    UnsupportedContentType,
)
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot
from nbsage.runtime.metrics import MetricScraper

xgb = pytest.importorskip("xgboost")
sklearn_datasets = pytest.importorskip("sklearn.datasets")
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score  # noqa: E402

ALGORITHM = algorithms.get("xgboost")
REPO = Path(__file__).resolve().parents[2]
EVAL_LINE = re.compile(r"^\[(\d+)\]\ttrain-\S+:\S+(\t\S+:\S+)*$", re.M)


# ----------------------------------------------------------------------------------------------
# data and job roots


@pytest.fixture(scope="module")
def breast_cancer():
    X, y = sklearn_datasets.load_breast_cancer(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    return (X[idx[:450]], y[idx[:450]]), (X[idx[450:]], y[idx[450:]])


@pytest.fixture(scope="module")
def iris():
    X, y = sklearn_datasets.load_iris(return_X_y=True)
    idx = np.random.default_rng(1).permutation(len(y))
    return (X[idx[:120]], y[idx[:120]]), (X[idx[120:]], y[idx[120:]])


def write_csv(path: Path, X, y, weights=None):
    columns = [y] + ([weights] if weights is not None else []) + [X]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack(columns), delimiter=",", fmt="%.8g")


def write_libsvm(path: Path, X, y):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for label, row in zip(y, X):
            f.write(f"{label:g} " + " ".join(f"{i}:{v:.8g}" for i, v in enumerate(row) if v != 0) + "\n")


def write_parquet(path: Path, X, y):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {"label": y.astype(np.float32)} | {f"f{i}": X[:, i].astype(np.float32) for i in range(X.shape[1])}
    pq.write_table(pa.table(columns), path)


def make_root(path: Path, hyperparameters: dict, content_types: dict[str, str | None],
              checkpoint_dir: Path | None = None) -> JobRoot:
    request = {
        "TrainingJobName": path.name,
        "AlgorithmSpecification": {"TrainingImage": "xgboost", "TrainingInputMode": "File"},
        "HyperParameters": {k: str(v) for k, v in hyperparameters.items()},
        "InputDataConfig": [
            {"ChannelName": name, **({"ContentType": ct} if ct else {}),
             "DataSource": {"S3DataSource": {"S3Uri": f"file://{path}/{name}"}}}
            for name, ct in content_types.items()],
        "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1},
    }
    if checkpoint_dir is not None:
        request["CheckpointConfig"] = {"LocalPath": str(checkpoint_dir)}
    return write_job_configs(JobRoot(path), request)


def csv_root(path: Path, data, hyperparameters: dict, **kwargs) -> JobRoot:
    (Xt, yt), (Xv, yv) = data
    root = make_root(path, hyperparameters, {"train": "text/csv", "validation": "text/csv"}, **kwargs)
    write_csv(root.channel_dir("train") / "train.csv", Xt, yt)
    write_csv(root.channel_dir("validation") / "validation.csv", Xv, yv)
    return root


def run_subprocess(root: JobRoot) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def run_in_process(root: JobRoot) -> tuple[int, str]:
    """The same runtime entry point in this process (saves an interpreter and xgboost import per job)."""
    from nbsage.runtime.train import run
    previous = signal.getsignal(signal.SIGTERM)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = run(str(root.path))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return rc, out.getvalue() + err.getvalue()


def load_booster(path: Path):
    booster = xgb.Booster()
    booster.load_model(bytearray(path.read_bytes()))
    return booster


def last_value(log: str, name: str) -> float:
    return float(re.findall(rf"\t{re.escape(name)}:(\S+)", log)[-1])


# ----------------------------------------------------------------------------------------------
# the breast-cancer job, run as SageMaker runs a container: a separate process on a job root


@pytest.fixture(scope="module")
def csv_job(tmp_path_factory, breast_cancer):
    root = csv_root(tmp_path_factory.mktemp("csv") / "job", breast_cancer,
                    {"num_round": 30, "objective": "binary:logistic", "eval_metric": "accuracy,f1,auc",
                     "max_depth": 4})
    return root, run_subprocess(root)


def test_csv_job_exits_zero_and_packs_xgboost_model(csv_job):
    root, proc = csv_job
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert root.model_archive.exists() and root.success_file.exists()
    import tarfile
    with tarfile.open(root.model_archive) as tar:
        assert tar.getnames() == ["xgboost-model"]


def test_model_loads_in_plain_xgboost_and_separates_the_classes(csv_job, breast_cancer):
    root, _ = csv_job
    booster = xgb.Booster()
    booster.load_model(str(root.model_dir / "xgboost-model"))  # the path as users load it
    (_, _), (Xv, yv) = breast_cancer
    assert booster.num_boosted_rounds() == 30 and booster.num_features() == 30
    assert roc_auc_score(yv, booster.predict(xgb.DMatrix(Xv))) > 0.95


def test_log_has_sagemaker_eval_lines_and_metric_lines(csv_job):
    _, proc = csv_job
    lines = EVAL_LINE.findall(proc.stdout)
    assert [int(n) for n, _ in lines] == list(range(30))
    assert re.search(r"^\[29\]\ttrain-auc:\d\.\d{5}\ttrain-accuracy:\S+\ttrain-f1:\S+\tvalidation-auc:\d\.\d{5}\t",
                     proc.stdout, re.M)
    assert len(re.findall(r"^#metric validation:auc=\S+ step=\d+$", proc.stdout, re.M)) == 30
    assert "#progress step=30 total=30" in proc.stdout


def test_metric_definitions_scrape_the_log_as_sagemaker_would(csv_job):
    _, proc = csv_job
    definitions = [d for d in ALGORITHM.metric_definitions() if d["Name"] in ("validation:auc", "train:f1")]
    scraper = MetricScraper(definitions)
    found = [m for line in proc.stdout.splitlines() if line.startswith("[") for m in scraper.scrape(line)]
    assert {m.name for m in found} == {"validation:auc", "train:f1"}
    assert len(found) == 60
    # CloudWatch shows the TAB as #011
    assert re.match(definitions[0]["Regex"], "[3]#011train-auc:0.9#011validation-auc:0.97")


def test_container_metrics_match_scikit_learn(csv_job, breast_cancer):
    root, proc = csv_job
    booster = load_booster(root.model_dir / "xgboost-model")
    (_, _), (Xv, yv) = breast_cancer
    predicted = booster.predict(xgb.DMatrix(Xv)) > 0.5
    assert last_value(proc.stdout, "validation-accuracy") == pytest.approx(accuracy_score(yv, predicted), abs=1e-5)
    assert last_value(proc.stdout, "validation-f1") == pytest.approx(
        f1_score(yv, predicted, average="macro"), abs=1e-5)


def test_a_job_without_a_checkpoint_location_keeps_no_checkpoints(csv_job):
    root, _ = csv_job
    assert list(root.checkpoints_dir.iterdir()) == []


def test_checkpoints_keep_the_last_rounds(tmp_path, breast_cancer):
    checkpoints = tmp_path / "checkpoints"
    root = csv_root(tmp_path / "job", breast_cancer, {"num_round": 30, "objective": "binary:logistic"},
                    checkpoint_dir=checkpoints)
    rc, _ = run_in_process(root)
    assert rc == 0
    names = sorted(checkpoints.iterdir(), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    assert 1 <= len(names) <= 5
    assert names[-1].name == "xgboost-checkpoint.29"
    assert load_booster(names[-1]).num_boosted_rounds() == 30


# ----------------------------------------------------------------------------------------------
# other formats and hyperparameters, run in this process through the same entry point


def test_libsvm_is_the_default_content_type(tmp_path, breast_cancer):
    (Xt, yt), (Xv, yv) = breast_cancer
    root = make_root(tmp_path / "job", {"num_round": 5, "objective": "binary:logistic"},
                     {"train": None, "validation": None})
    write_libsvm(root.channel_dir("train") / "part-0", Xt, yt)
    write_libsvm(root.channel_dir("validation") / "part-0", Xv, yv)
    rc, log = run_in_process(root)
    assert rc == 0, log
    assert "\tvalidation-logloss:" in log
    booster = load_booster(root.model_dir / "xgboost-model")
    assert booster.num_features() == 30
    assert roc_auc_score(yv, booster.inplace_predict(Xv)) > 0.95


def test_parquet_channels_train(tmp_path, breast_cancer):
    (Xt, yt), (Xv, yv) = breast_cancer
    root = make_root(tmp_path / "job", {"num_round": 5, "objective": "binary:logistic"},
                     {"train": "application/x-parquet", "validation": "application/x-parquet"})
    write_parquet(root.channel_dir("train") / "train.parquet", Xt, yt)
    write_parquet(root.channel_dir("validation") / "validation.parquet", Xv, yv)
    rc, log = run_in_process(root)
    assert rc == 0, log
    assert load_booster(root.model_dir / "xgboost-model").num_features() == 30


def test_csv_weights_reads_the_second_column_as_instance_weight(tmp_path, breast_cancer):
    (Xt, yt), _ = breast_cancer
    weights = np.where(yt == 1, 1e-3, 1.0)  # positives barely count: predictions fall
    root = make_root(tmp_path / "job", {"num_round": 10, "objective": "binary:logistic", "csv_weights": 1},
                     {"train": "text/csv"})
    write_csv(root.channel_dir("train") / "train.csv", Xt, yt, weights)
    rc, log = run_in_process(root)
    assert rc == 0, log
    booster = load_booster(root.model_dir / "xgboost-model")
    assert booster.num_features() == 30  # the weight column is not a feature
    assert booster.inplace_predict(Xt).mean() < 0.5 * yt.mean()


def test_multi_softprob_with_num_class(tmp_path, iris):
    root = csv_root(tmp_path / "job", iris, {"num_round": 8, "objective": "multi:softprob", "num_class": 3})
    rc, log = run_in_process(root)
    assert rc == 0, log
    assert "\tvalidation-mlogloss:" in log
    handler = ALGORITHM.load(root.model_dir)
    (_, _), (Xv, yv) = iris
    body = "\n".join(",".join(map(str, row)) for row in Xv).encode()
    answer, content_type = handler.invoke(body, "text/csv", None)
    rows = [list(map(float, line.split(","))) for line in answer.decode().splitlines()]
    assert content_type == "text/csv" and len(rows) == len(yv) and all(len(r) == 3 for r in rows)
    assert np.allclose(np.sum(rows, axis=1), 1.0, atol=1e-4)
    assert accuracy_score(yv, np.argmax(rows, axis=1)) > 0.85


def test_early_stopping_stops_before_num_round_and_keeps_the_best_round(tmp_path, breast_cancer):
    root = csv_root(tmp_path / "job", breast_cancer,
                    {"num_round": 300, "objective": "binary:logistic", "eval_metric": "logloss",
                     "early_stopping_rounds": 3, "eta": 0.6})
    rc, log = run_in_process(root)
    assert rc == 0, log
    rounds = [int(n) for n, _ in EVAL_LINE.findall(log)]
    assert rounds[-1] < 299
    best = int(re.search(r"Best round: (\d+)", log).group(1))
    assert rounds[-1] == best + 3
    assert load_booster(root.model_dir / "xgboost-model").num_boosted_rounds() == best + 1


def test_training_resumes_from_the_latest_checkpoint(tmp_path, breast_cancer):
    checkpoints = tmp_path / "checkpoints"
    hps = {"num_round": 6, "objective": "binary:logistic"}
    rc, _ = run_in_process(csv_root(tmp_path / "first", breast_cancer, hps, checkpoint_dir=checkpoints))
    assert rc == 0 and (checkpoints / "xgboost-checkpoint.5").exists()
    second = csv_root(tmp_path / "second", breast_cancer, hps | {"num_round": 9}, checkpoint_dir=checkpoints)
    rc, log = run_in_process(second)
    assert rc == 0, log
    assert "Resuming from checkpoint" in log
    assert [int(n) for n, _ in EVAL_LINE.findall(log)] == [6, 7, 8]
    assert "#progress step=9 total=9" in log
    assert load_booster(second.model_dir / "xgboost-model").num_boosted_rounds() == 9


def test_kfold_mode_saves_one_model_per_fold_and_out_of_fold_predictions(tmp_path, breast_cancer):
    root = csv_root(tmp_path / "job", breast_cancer,
                    {"num_round": 4, "objective": "binary:logistic", "_kfold": 3, "eval_metric": "auc"})
    rc, log = run_in_process(root)
    assert rc == 0, log
    assert sorted(p.name for p in root.model_dir.iterdir()) == [f"xgboost-model-{i}" for i in range(3)]
    predictions = np.loadtxt(root.output_data_dir / "predictions.csv", delimiter=",")
    assert predictions.shape == (569, 3)
    assert re.search(r"^\[4\]\ttrain-auc:\S+\tvalidation-auc:\S+$", log, re.M)
    answer, _ = ALGORITHM.load(root.model_dir).invoke(b"1," * 29 + b"1", "text/csv", "application/json")
    assert 0 <= json.loads(answer)["predictions"][0]["score"] <= 1


# ----------------------------------------------------------------------------------------------
# failures: what the user sees


@pytest.mark.parametrize("hyperparameters, message", [
    ({"num_round": 5, "max_dept": 3}, "did you mean 'max_depth'?"),
    ({"num_round": 5, "eta": 1.5}, "expected a number in [0, 1]"),
    ({"num_round": 5, "subsample": 0}, "expected a number in (0, 1]"),
    ({"eta": 0.1}, "hyperparameter 'num_round' is required"),
    ({"num_round": 5, "objective": "multi:softprob"}, "'num_class' is required"),
    ({"num_round": 5, "objective": "binary:logistic", "num_class": 3}, "applies only to objective 'multi:softmax'"),
    ({"num_round": 5, "eval_metric": "auc"}, "'auc' applies only to binary: and rank: objectives"),
    ({"num_round": 5, "eval_metric": "rmse@3"}, "only error, ndcg, map take a threshold"),
    ({"num_round": 5, "monotone_constraints": "(1,0)", "tree_method": "approx"}, "needs tree_method 'exact' or 'hist'"),
    ({"num_round": 5, "monotone_constraints": "(2,0)", "tree_method": "hist"}, "one of -1, 0, 1"),
    ({"num_round": 5, "interaction_constraints": "[[0,1]]", "tree_method": "auto"}, "'exact', 'hist' or 'approx'"),
    ({"num_round": 5, "booster": "gblinear", "updater": "grow_colmaker"}, "exactly one of shotgun, coord_descent"),
    ({"num_round": 5, "objective": "reg:logistc"}, "did you mean 'reg:logistic'?"),
    ({"num_round": 5, "_tuning_objective_metric": "validation:auk"}, "_tuning_objective_metric"),
])
def test_invalid_hyperparameters_are_named_with_what_is_accepted(hyperparameters, message):
    with pytest.raises(HyperparameterError) as e:
        ALGORITHM.validate({k: str(v) for k, v in hyperparameters.items()})
    assert message in str(e.value)


def test_aliases_and_string_values_parse_to_canonical_names():
    hps = ALGORITHM.validate({"num_round": "10", "learning_rate": "0.1", "reg_lambda": "2", "reg_alpha": "0.5",
                              "min_split_loss": "1", "eval_metric": "error@0.7,auc", "objective": "binary:logistic",
                              "monotone_constraints": "(0,1,-1)", "tree_method": "hist",
                              "interaction_constraints": "[[0,1],[2]]", "save_model_on_termination": "true",
                              "_tuning_objective_metric": "validation:auc", "_kfold": "5"})
    assert (hps["eta"], hps["lambda"], hps["alpha"], hps["gamma"]) == (0.1, 2.0, 0.5, 1.0)
    assert hps["eval_metric"] == ["error@0.7", "auc"] and hps["monotone_constraints"] == [0, 1, -1]
    assert hps["interaction_constraints"] == [[0, 1], [2]] and hps["save_model_on_termination"] is True
    assert hps["_kfold"] == 5 and hps["_tuning_objective_metric"] == "validation:auc"


def test_every_sagemaker_hyperparameter_is_declared():
    spec = """num_round num_class objective eval_metric early_stopping_rounds csv_weights booster verbosity nthread
    eta gamma max_depth min_child_weight max_delta_step subsample colsample_bytree colsample_bylevel
    colsample_bynode lambda alpha tree_method sketch_eps scale_pos_weight updater dsplit refresh_leaf
    process_type grow_policy max_leaves max_bin predictor monotone_constraints interaction_constraints
    sample_type normalize_type rate_drop skip_drop one_drop lambda_bias tweedie_variance_power base_score seed
    num_parallel_tree save_model_on_termination aft_loss_distribution aft_loss_distribution_scale
    deterministic_histogram single_precision_histogram sampling_method prob_buffer_row use_dask_gpu_training
    _kfold _num_cv_round _tuning_objective_metric learning_rate min_split_loss reg_lambda reg_alpha""".split()
    for name in spec:
        assert ALGORITHM.hyperparameter(name).help
    assert [c.name for c in ALGORITHM.channels] == ["train", "validation"]
    assert ALGORITHM.channel("train").default_content_type == "text/libsvm"
    directions = {m.name: m.direction for m in ALGORITHM.metrics}
    assert directions["validation:auc"] == "Maximize" and directions["validation:rmse"] == "Minimize"
    assert directions["train:f1"] == "Maximize" and directions["validation:mlogloss"] == "Minimize"


def test_unknown_hyperparameter_fails_the_job_with_a_client_error(tmp_path, breast_cancer):
    root = csv_root(tmp_path / "job", breast_cancer, {"num_round": 5, "max_dept": 3})
    proc = run_subprocess(root)
    assert proc.returncode == 1
    failure = root.failure_file.read_text()
    assert failure.startswith("ClientError: ") and "did you mean 'max_depth'?" in failure


def test_malformed_csv_row_fails_the_job_naming_file_and_line(tmp_path, breast_cancer):
    root = csv_root(tmp_path / "job", breast_cancer, {"num_round": 5})
    path = root.channel_dir("train") / "train.csv"
    lines = path.read_text().splitlines()
    lines[6] = lines[6].rsplit(",", 1)[0]  # line 7 loses its last feature
    path.write_text("\n".join(lines) + "\n")
    proc = run_subprocess(root)
    assert proc.returncode == 1
    failure = root.failure_file.read_text()
    assert "train.csv line 7" in failure and "expected 31 columns" in failure, failure


def test_empty_validation_channel_names_the_channel(tmp_path, breast_cancer):
    root = csv_root(tmp_path / "job", breast_cancer, {"num_round": 5})
    (root.channel_dir("validation") / "validation.csv").write_text("")
    rc, log = run_in_process(root)
    assert rc == 1
    assert "channel 'validation'" in root.failure_file.read_text()


def test_labels_out_of_range_fail_as_a_client_error(tmp_path, iris):
    root = csv_root(tmp_path / "job", iris, {"num_round": 3, "objective": "multi:softmax", "num_class": 2})
    rc, _ = run_in_process(root)
    assert rc == 1
    failure = root.failure_file.read_text()
    assert failure.startswith("ClientError: XGBoost rejected the labels") and "Stack trace" not in failure


# ----------------------------------------------------------------------------------------------
# inference


@pytest.fixture(scope="module")
def handler(csv_job):
    root, proc = csv_job
    assert proc.returncode == 0
    return ALGORITHM.load(root.model_dir)


@pytest.fixture(scope="module")
def expected(csv_job, breast_cancer):
    root, _ = csv_job
    (_, _), (Xv, _) = breast_cancer
    booster = load_booster(root.model_dir / "xgboost-model")
    return Xv[:5], booster.predict(xgb.DMatrix(Xv[:5]))


def csv_body(X) -> bytes:
    return "\n".join(",".join(f"{v:.8g}" for v in row) for row in X).encode()


def test_csv_request_answers_csv_by_default(handler, expected):
    X, want = expected
    answer, content_type = handler.invoke(csv_body(X), "text/csv", None)
    assert content_type == "text/csv"
    assert np.allclose([float(v) for v in answer.decode().splitlines()], want, atol=1e-6)
    answer, content_type = handler.invoke(csv_body(X[:1]), "text/csv; label_size=0", "*/*")
    assert content_type == "text/csv" and float(answer) == pytest.approx(want[0], abs=1e-6)


def test_libsvm_request_with_or_without_label(handler, expected):
    X, want = expected
    body = "\n".join("1 " + " ".join(f"{i}:{v:.8g}" for i, v in enumerate(row)) for row in X).encode()
    answer, _ = handler.invoke(body, "text/libsvm", "text/csv")
    assert np.allclose([float(v) for v in answer.decode().splitlines()], want, atol=1e-6)
    body = " ".join(f"{i}:{v:.8g}" for i, v in enumerate(X[0])).encode()
    answer, _ = handler.invoke(body, "text/x-libsvm", "text/csv")
    assert float(answer) == pytest.approx(want[0], abs=1e-6)


def test_json_requests_and_json_and_jsonlines_answers(handler, expected):
    X, want = expected
    body = json.dumps({"instances": [{"features": row.tolist()} for row in X]}).encode()
    answer, content_type = handler.invoke(body, "application/json", "application/json")
    assert content_type == "application/json"
    scores = [p["score"] for p in json.loads(answer)["predictions"]]
    assert np.allclose(scores, want, atol=1e-6)
    body = json.dumps({"instances": [{"data": {"features": {"values": row.tolist()}}} for row in X]}).encode()
    answer, content_type = handler.invoke(body, "application/json", "application/jsonlines")
    assert content_type == "application/jsonlines"
    assert np.allclose([json.loads(line)["score"] for line in answer.decode().splitlines()], want, atol=1e-6)
    body = "\n".join(json.dumps({"features": row.tolist()}) for row in X).encode()
    answer, _ = handler.invoke(body, "application/jsonlines", "application/json")
    assert np.allclose([p["score"] for p in json.loads(answer)["predictions"]], want, atol=1e-6)
    answer, _ = handler.invoke(json.dumps(X.tolist()).encode(), "application/json", "application/json")
    assert len(json.loads(answer)["predictions"]) == len(X)


def test_a_sparse_json_request_predicts_as_the_same_libsvm_request(handler, expected):
    """An absent key is a missing feature (as in text/libsvm), not a 0."""
    X, _ = expected
    keys = [i for i in range(30) if i % 3]
    record = {"keys": keys, "shape": [30], "values": [float(X[0, i]) for i in keys]}
    libsvm = " ".join(f"{i}:{float(X[0, i])!r}" for i in keys).encode()
    want, _ = handler.invoke(libsvm, "text/libsvm", "text/csv")
    for body, content_type in ((json.dumps({"instances": [{"data": {"features": record}}]}), "application/json"),
                               (json.dumps({"features": record}), "application/jsonlines")):
        answer, _ = handler.invoke(body.encode(), content_type, "text/csv")
        assert answer == want


def test_unsupported_accept_is_406_and_content_type_415(handler, expected):
    X, _ = expected
    with pytest.raises(UnsupportedAccept) as e:
        handler.invoke(csv_body(X), "text/csv", "application/xml")
    assert e.value.status == 406 and "text/csv" in str(e.value)
    with pytest.raises(UnsupportedContentType) as e:
        handler.invoke(csv_body(X), "application/x-parquet", None)
    assert e.value.status == 415 and "text/libsvm" in str(e.value)


def test_wrong_feature_count_names_both_counts(handler, expected):
    X, _ = expected
    with pytest.raises(InvalidRequest) as e:
        handler.invoke(csv_body(X[:, :29]), "text/csv", None)
    assert e.value.status == 400 and "29" in str(e.value) and "30" in str(e.value)
    with pytest.raises(InvalidRequest, match="feature index 40.*30 features"):
        handler.invoke(b"40:1.0", "text/libsvm", None)


def test_malformed_request_names_the_line(handler, expected):
    X, _ = expected
    lines = csv_body(X[:3]).decode().splitlines()
    lines[1] = lines[1].replace(",", ",abc,", 1).rsplit(",", 1)[0]
    with pytest.raises(InvalidRequest, match="line 2.*'abc'"):
        handler.invoke("\n".join(lines).encode(), "text/csv", None)
    with pytest.raises(InvalidRequest, match="line 2"):
        handler.invoke(b'{"features": [1]}\n{oops', "application/jsonlines", None)


def test_the_handler_declares_that_an_empty_request_gets_204(handler):
    from nbsage.inference_contract import InferenceHandler
    assert handler.empty_body_status == 204 and InferenceHandler.empty_body_status == 400


def test_the_model_server_answers_an_empty_request_with_204(csv_job):
    import http.client
    import threading
    root, _ = csv_job
    server = subprocess.Popen(
        [sys.executable, "-m", "nbsage.runtime", "serve", "--model-dir", str(root.model_dir), "--algorithm", "xgb",
         "--port", "0"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[bytes] = []

    def until_serving():
        for line in server.stderr:
            lines.append(line)
            if b"serving on" in line:
                return

    try:
        waiter = threading.Thread(target=until_serving, daemon=True)
        waiter.start()
        waiter.join(timeout=120)
        assert lines and b"serving on" in lines[-1], b"".join(lines).decode()
        port = int(re.search(rb":([0-9]+)\s*$", lines[-1]).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/invocations", body=b"", headers={"Content-Type": "text/csv"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (204, b"")
    finally:
        server.terminate()
        server.wait(timeout=60)

