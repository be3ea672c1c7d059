"""Linear Learner through the container contract: real jobs via `python -m nbsage.runtime train`."""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split

from nbsage import algorithms
from nbsage.errors import (HyperparameterError, InvalidRequest, UnsupportedAccept,
                           UnsupportedContentType)
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot
from nbsage.runtime.metrics import MetricScraper, parse_progress

ALGORITHM = algorithms.get("linear-learner")
REPO = Path(__file__).resolve().parents[2]


# -- helpers ------------------------------------------------------------------------------------

class Job:
    """A finished job: its root, exit code, output, and the metrics it emitted."""

    def __init__(self, root: Path, proc: subprocess.CompletedProcess, seconds: float):
        self.root = JobRoot(root)
        self.returncode = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        self.seconds = seconds
        self.metrics: dict[str, list] = {}
        scraper = MetricScraper()
        self.progress = []
        for line in self.stdout.splitlines():
            for m in scraper.scrape(line):
                self.metrics.setdefault(m.name, []).append((m.step, m.value))
            p = parse_progress(line)
            if p:
                self.progress.append(p)

    def final(self, name: str) -> float:
        """The last value of a metric (the final model's, for validation:* and test:*)."""
        return self.metrics[name][-1][1]

    def handler(self):
        return ALGORITHM.load(self.root.model_dir)

    @property
    def failure(self) -> str:
        return self.root.failure_reason() or ""


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack([y, x]), delimiter=",", fmt="%.10g")


def make_root(root: Path, hyperparameters: dict, **channels) -> JobRoot:
    """A job root with its configs and channels; channels: name=(x, y) or name={"f.csv": (x, y)}."""
    request = {
        "AlgorithmSpecification": {"TrainingImage": "linear-learner", "TrainingInputMode": "File"},
        "HyperParameters": {k: str(v) for k, v in hyperparameters.items()},
        "InputDataConfig": [{"ChannelName": name, "ContentType": "text/csv"} for name in channels],
    }
    write_job_configs(JobRoot(root), request)
    for name, data in channels.items():
        files = data if isinstance(data, dict) else {"data.csv": data}
        for filename, (x, y) in files.items():
            write_csv(root / "input" / "data" / name / filename, x, y)
    return JobRoot(root)


def run_job(root: Path, hyperparameters: dict, **channels) -> Job:
    """Run a Linear Learner job as the runtime does: in its own process."""
    make_root(root, hyperparameters, **channels)
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    return Job(root, proc, time.time() - started)


def train_in_process(root: Path, hyperparameters: dict, **channels) -> Job:
    """Train in this process (no interpreter start-up): for the many small variations."""
    from types import SimpleNamespace
    from nbsage.runtime.environment import TrainingEnvironment
    make_root(root, hyperparameters, **channels)
    started = time.time()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        ALGORITHM.train(TrainingEnvironment(root))
    return Job(root, SimpleNamespace(returncode=0, stdout=out.getvalue(), stderr=""), time.time() - started)


def csv_body(x: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in x).encode()


def split(x, y, stratify=True):
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y if stratify else None)


@pytest.fixture(scope="module")
def cancer():
    x, y = datasets.load_breast_cancer(return_X_y=True)
    return split(x, y)


@pytest.fixture(scope="module")
def binary_job(tmp_path_factory, cancer):
    x_tr, x_va, y_tr, y_va = cancer
    job = run_job(tmp_path_factory.mktemp("binary"), {"predictor_type": "binary_classifier"},
                  train=(x_tr, y_tr), validation=(x_va, y_va), test=(x_va, y_va))
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    return job


# -- binary classification ------------------------------------------------------------------------

def test_binary_classifier_reaches_high_validation_accuracy_on_breast_cancer(binary_job):
    assert binary_job.final("validation:binary_classification_accuracy") > 0.93
    assert binary_job.final("test:binary_classification_accuracy") > 0.93
    assert binary_job.final("validation:roc_auc_score") > 0.97
    assert binary_job.root.success_file.exists()
    assert binary_job.root.model_archive.exists()


def test_binary_handler_predicts_the_labels_training_scored(binary_job, cancer):
    _, x_va, _, y_va = cancer
    handler = binary_job.handler()
    body, content_type = handler.invoke(csv_body(x_va), "text/csv", "application/json")
    assert content_type == "application/json"
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == len(y_va)
    assert all(set(p) == {"score", "predicted_label"} and 0.0 <= p["score"] <= 1.0 for p in predictions)
    labels = np.array([p["predicted_label"] for p in predictions])
    accuracy = float(np.mean(labels == y_va))
    # the saved model (normalisation folded into the weights, tuned threshold) scores exactly
    # what training reported
    assert accuracy == pytest.approx(binary_job.final("validation:binary_classification_accuracy"), abs=1e-6)
    assert accuracy > 0.93

    json_request = json.dumps({"instances": [{"features": row.tolist()} for row in x_va[:5]]})
    body, _ = handler.invoke(json_request.encode(), "application/json", "application/jsonlines")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert [line["predicted_label"] for line in lines] == labels[:5].tolist()

    body, accept = handler.invoke(csv_body(x_va[:5]), "text/csv", "text/csv")
    assert accept == "text/csv"
    assert body.decode().splitlines() == [str(v) for v in labels[:5]]


def test_binary_log_has_sagemaker_lines_that_the_metric_definitions_scrape(binary_job):
    out = binary_job.stdout
    assert re.search(r"#quality_metric: host=algo-1, epoch=0, train "
                     r"binary_classification_cross_entropy_objective <loss>=\S+", out)
    assert re.search(r"#quality_metric: host=algo-1, validation binary_classification_accuracy "
                     r"<score>=0\.9\d*", out)
    assert re.search(r"#quality_metric: host=algo-1, validation binary_f_1\.000 <score>=", out)
    assert re.search(r"#progress_metric: host=algo-1, completed \d+ % of epochs", out)
    assert re.search(r"#early_stopping_criteria_metric: host=algo-1, epoch=0, criteria=sampled_accuracy", out)
    best = re.search(r"Best model found for hyperparameters: (\{.*\})", out)
    assert best and {"optimizer", "learning_rate", "l1", "wd"} <= set(json.loads(best.group(1)))
    definitions = {d["Name"]: re.compile(d["Regex"]) for d in ALGORITHM.metric_definitions()}
    scraped = {name for name, rx in definitions.items() if any(rx.search(l) for l in out.splitlines())}
    assert {"train:objective_loss", "validation:objective_loss", "validation:objective_loss:final",
            "validation:binary_classification_accuracy", "validation:binary_f_beta",
            "validation:precision", "validation:recall", "validation:roc_auc_score",
            "test:objective_loss", "test:binary_classification_accuracy"} <= scraped
    # a per-epoch regex never picks up the final line, nor the reverse
    per_epoch = [l for l in out.splitlines() if definitions["validation:objective_loss"].search(l)]
    assert per_epoch and all("epoch=" in l for l in per_epoch)


def test_binary_job_emits_per_epoch_and_final_metrics_and_progress(binary_job):
    steps = [step for step, _ in binary_job.metrics["train:objective_loss"]]
    assert steps == list(range(len(steps))) and len(steps) >= 3
    losses = [v for _, v in binary_job.metrics["train:objective_loss"]]
    assert losses[-1] < losses[0]
    for name in ("validation:binary_classification_accuracy", "validation:binary_f_beta",
                 "validation:precision", "validation:recall", "validation:roc_auc_score",
                 "validation:objective_loss:final", "test:objective_loss", "test:recall",
                 "train:objective_loss:final"):
        assert name in binary_job.metrics, name
    assert binary_job.progress[0] == (1, 15)
    assert binary_job.progress[-1] == (15, 15)


def test_auto_hyperparameters_are_resolved_in_the_log(binary_job):
    out = binary_job.stdout
    for expected in ("loss=auto resolved to logistic", "optimizer=auto resolved to adam",
                     "num_models=auto resolved to 32", "learning_rate=auto resolved to",
                     "beta_1=auto resolved to 0.9", "bias_lr_mult=auto resolved to 10",
                     "feature_dim=auto resolved to 30", "normalize_label=auto resolved to False",
                     "lr_scheduler_step=auto resolved to 100"):
        assert expected in out, expected
    saved = json.loads((binary_job.root.model_dir / "linear-learner-model.json").read_text())
    assert saved["resolved_auto"]["loss"] == "logistic"
    assert saved["num_models"] == 32


def test_handler_rejects_bad_requests_with_clear_errors(binary_job, cancer):
    _, x_va, _, _ = cancer
    handler = binary_job.handler()
    with pytest.raises(UnsupportedAccept, match="application/json"):
        handler.invoke(csv_body(x_va[:2]), "text/csv", "application/x-recordio-protobuf")
    with pytest.raises(UnsupportedContentType, match="text/csv"):
        handler.invoke(b"1 2 3", "text/libsvm", "application/json")
    with pytest.raises(InvalidRequest, match="29 features.*30"):
        handler.invoke(csv_body(x_va[:2, :29]), "text/csv", "application/json")
    with pytest.raises(InvalidRequest, match=r"instances\[0\].*29 features.*30"):
        handler.invoke(json.dumps({"instances": [{"features": [1.0] * 29}]}).encode(),
                       "application/json", None)
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        handler.invoke(b'{"instances": [', "application/json", None)
    with pytest.raises(InvalidRequest, match="line 2.*'abc' is not a number"):
        handler.invoke(("1," * 29 + "2\n" + "1," * 29 + "abc\n").encode(), "text/csv", None)


def test_handler_reads_sparse_and_jsonlines_requests(binary_job, cancer):
    _, x_va, _, _ = cancer
    handler = binary_job.handler()
    row = x_va[0]
    nonzero = [int(i) for i in np.flatnonzero(row)]
    sparse = {"instances": [{"data": {"features": {"keys": nonzero, "shape": [30],
                                                   "values": [float(row[i]) for i in nonzero]}}}]}
    dense, _ = handler.invoke(csv_body(x_va[:1]), "text/csv", "application/json")
    body, _ = handler.invoke(json.dumps(sparse).encode(), "application/json", "application/json")
    assert json.loads(body) == json.loads(dense)
    lines = "\n".join(json.dumps({"data": {"features": {"values": r.tolist()}}}) for r in x_va[:3])
    body, _ = handler.invoke(lines.encode(), "application/jsonlines", "application/jsonlines")
    assert len(body.decode().splitlines()) == 3


def test_default_accept_comes_from_the_environment(binary_job, cancer, monkeypatch):
    _, x_va, _, _ = cancer
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/jsonlines")
    body, accept = binary_job.handler().invoke(csv_body(x_va[:3]), "text/csv", "*/*")
    assert accept == "application/jsonlines"
    assert [set(json.loads(line)) for line in body.decode().splitlines()] == [{"score", "predicted_label"}] * 3


def test_loading_a_folder_without_a_model_says_what_is_missing(tmp_path):
    from nbsage.errors import DataError
    with pytest.raises(DataError, match="no Linear Learner model.*linear-learner-model.json"):
        ALGORITHM.load(tmp_path)


def test_more_parallel_models_choose_a_model_at_least_as_good_as_one(tmp_path, cancer):
    x_tr, x_va, y_tr, y_va = cancer
    common = {"predictor_type": "binary_classifier", "epochs": 6, "early_stopping_patience": 10}
    one = run_job(tmp_path / "one", {**common, "num_models": 1}, train=(x_tr, y_tr), validation=(x_va, y_va))
    many = run_job(tmp_path / "many", {**common, "num_models": 16}, train=(x_tr, y_tr), validation=(x_va, y_va))
    assert one.returncode == 0 and many.returncode == 0, one.stderr + many.stderr
    assert "Model 0 of 1 selected" in one.stdout
    name = "validation:binary_classification_accuracy"
    assert many.final(name) >= one.final(name)
    # model 0 of the parallel run trains with exactly the settings of the single-model run
    assert ([v for _, v in many.metrics["train:objective_loss"]]
            == pytest.approx([v for _, v in one.metrics["train:objective_loss"]], rel=1e-5))


def test_precision_at_target_recall_holds_the_target_recall_on_validation(tmp_path, cancer):
    x_tr, x_va, y_tr, y_va = cancer
    job = run_job(tmp_path, {"predictor_type": "binary_classifier", "num_models": 8,
                             "binary_classifier_model_selection_criteria": "precision_at_target_recall",
                             "target_recall": 0.99},
                  train=(x_tr, y_tr), validation=(x_va, y_va))
    assert job.returncode == 0, job.stderr
    assert job.final("validation:recall") >= 0.99
    labels = np.array([p["predicted_label"] for p in json.loads(
        job.handler().invoke(csv_body(x_va), "text/csv", None)[0])["predictions"]])
    recall = float(np.sum((labels == 1) & (y_va == 1)) / np.sum(y_va == 1))
    assert recall >= 0.99
    assert "Decision threshold for precision_at_target_recall" in job.stdout


def test_hinge_loss_without_validation_chooses_on_training_data(tmp_path, cancer):
    x_tr, x_va, y_tr, y_va = cancer
    job = run_job(tmp_path, {"predictor_type": "binary_classifier", "loss": "hinge_loss",
                             "num_models": 4, "mini_batch_size": 64, "optimizer": "sgd"},
                  train=(x_tr, y_tr), test=(x_va, y_va))
    assert job.returncode == 0, job.stderr
    assert "Validation data is not provided" in job.stdout
    assert "binary_classification_hinge_loss_objective" in job.stdout
    assert "validation:binary_classification_accuracy" not in job.metrics
    assert job.final("test:binary_classification_accuracy") > 0.9
    scores = [p["score"] for p in json.loads(job.handler().invoke(
        csv_body(x_va[:20]), "text/csv", None)[0])["predictions"]]
    assert min(scores) < 0 < max(scores) and max(abs(s) for s in scores) > 1  # raw margins


def test_a_job_resumes_from_its_checkpoint_where_it_stopped(tmp_path, cancer):
    x_tr, x_va, y_tr, y_va = cancer
    hps = {"predictor_type": "binary_classifier", "num_models": 4, "early_stopping_patience": 100,
           "mini_batch_size": 200}
    data = {"train": (x_tr, y_tr), "validation": (x_va, y_va)}
    first = run_job(tmp_path / "resumed", {**hps, "epochs": 3}, **data)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "resumed" / "checkpoints" / "linear-learner-checkpoint.npz").exists()
    resumed = run_job(tmp_path / "resumed", {**hps, "epochs": 6}, **data)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from the checkpoint" in resumed.stdout and "epochs 0..2 are done" in resumed.stdout
    assert [step for step, _ in resumed.metrics["train:objective_loss"]] == [3, 4, 5]
    fresh = run_job(tmp_path / "fresh", {**hps, "epochs": 6}, **data)
    assert ([v for _, v in resumed.metrics["train:objective_loss"]]
            == pytest.approx([v for _, v in fresh.metrics["train:objective_loss"]][3:], rel=1e-5))
    assert resumed.final("validation:binary_classification_accuracy") == fresh.final(
        "validation:binary_classification_accuracy")


# -- multiclass and regression ------------------------------------------------------------------

def test_multiclass_classifier_on_wine(tmp_path):
    x, y = datasets.load_wine(return_X_y=True)
    x_tr, x_va, y_tr, y_va = split(x, y)
    job = run_job(tmp_path, {"predictor_type": "multiclass_classifier", "num_classes": 3,
                             "balance_multiclass_weights": "true", "accuracy_top_k": 2},
                  train=(x_tr, y_tr), validation=(x_va, y_va))
    assert job.returncode == 0, job.stderr
    assert job.final("validation:multiclass_accuracy") > 0.85
    for name in ("validation:multiclass_top_k_accuracy", "validation:dcg", "validation:macro_f_beta",
                 "validation:macro_precision", "validation:macro_recall"):
        assert 0.85 < job.final(name) <= 1.0, name
    assert "multiclass_cross_entropy_objective" in job.stdout
    assert "validation multiclass_top_k_accuracy_2 <score>=" in job.stdout
    body, _ = job.handler().invoke(csv_body(x_va), "text/csv", "application/json")
    predictions = json.loads(body)["predictions"]
    probabilities = np.array([p["score"] for p in predictions])
    assert probabilities.shape == (len(y_va), 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    labels = np.array([p["predicted_label"] for p in predictions])
    assert (labels == probabilities.argmax(axis=1)).all()
    assert np.mean(labels == y_va) == pytest.approx(job.final("validation:multiclass_accuracy"), abs=1e-6)


def test_regressor_on_diabetes_beats_predicting_the_mean(tmp_path):
    x, y = datasets.load_diabetes(return_X_y=True)
    x_tr, x_va, y_tr, y_va = split(x, y, stratify=False)
    job = run_job(tmp_path, {"predictor_type": "regressor", "mini_batch_size": 100},
                  train=(x_tr, y_tr), validation=(x_va, y_va), test=(x_va, y_va))
    assert job.returncode == 0, job.stderr
    baseline = float(np.sqrt(np.mean((y_va - y_tr.mean()) ** 2)))
    rmse = job.final("validation:rmse")
    assert rmse < 0.85 * baseline
    assert job.final("test:rmse") == pytest.approx(rmse, rel=1e-5)
    assert job.final("validation:mse") == pytest.approx(rmse ** 2, rel=1e-5)
    assert "normalize_label=auto resolved to True" in job.stdout
    assert re.search(r"#quality_metric: host=algo-1, validation rmse <loss>=\S+", job.stdout)
    assert re.search(r"#quality_metric: host=algo-1, epoch=0, train mse_objective <loss>=", job.stdout)
    body, _ = job.handler().invoke(csv_body(x_va), "text/csv", "application/json")
    predictions = json.loads(body)["predictions"]
    assert set(predictions[0]) == {"score"}
    scores = np.array([p["score"] for p in predictions])
    assert float(np.sqrt(np.mean((scores - y_va) ** 2))) == pytest.approx(rmse, rel=1e-5)


@pytest.mark.parametrize("loss", ["absolute_loss", "huber_loss", "quantile_loss",
                                  "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss"])
def test_every_regression_loss_trains(tmp_path, loss):
    x, y = datasets.load_diabetes(return_X_y=True)
    x_tr, x_va, y_tr, y_va = split(x, y, stratify=False)
    job = train_in_process(tmp_path, {"predictor_type": "regressor", "loss": loss, "num_models": 8,
                             "huber_delta": 30, "loss_insensitivity": 5, "mini_batch_size": 100},
                  train=(x_tr, y_tr), validation=(x_va, y_va))
    assert job.returncode == 0, job.stderr
    baseline = float(np.sqrt(np.mean((y_va - y_tr.mean()) ** 2)))
    assert job.final("validation:rmse") < baseline
    assert f"{loss if loss != 'squared_loss' else 'mse'}_objective" in job.stdout


# -- hyperparameter and data errors -------------------------------------------------------------

def test_unknown_hyperparameter_suggests_the_right_name():
    with pytest.raises(HyperparameterError, match="'learning_rat'.*did you mean 'learning_rate'"):
        ALGORITHM.validate({"predictor_type": "regressor", "learning_rat": "0.1"})


def test_out_of_range_value_names_the_range():
    with pytest.raises(HyperparameterError, match=r"'target_recall' = '1.5'.*\(0, 1\)"):
        ALGORITHM.validate({"predictor_type": "binary_classifier", "target_recall": "1.5"})
    with pytest.raises(HyperparameterError, match=r"'wd'.*>= 0.*'auto'"):
        ALGORITHM.validate({"predictor_type": "regressor", "wd": "-1"})
    with pytest.raises(HyperparameterError, match=r"'positive_example_weight_mult'.*'balanced'"):
        ALGORITHM.validate({"predictor_type": "binary_classifier", "positive_example_weight_mult": "0"})


def test_predictor_type_and_multiclass_num_classes_are_required():
    with pytest.raises(HyperparameterError, match="'predictor_type' is required"):
        ALGORITHM.validate({"epochs": "3"})
    with pytest.raises(HyperparameterError, match="'num_classes' is required.*multiclass_classifier"):
        ALGORITHM.validate({"predictor_type": "multiclass_classifier"})
    with pytest.raises(HyperparameterError, match=r"'num_classes' = '?2'?.*\[3, 1000000\]"):
        ALGORITHM.validate({"predictor_type": "multiclass_classifier", "num_classes": "2"})


def test_loss_must_suit_the_predictor_type():
    with pytest.raises(HyperparameterError, match="'softmax_loss' is not valid for predictor_type=binary_classifier"
                                                  ".*logistic, hinge_loss"):
        ALGORITHM.validate({"predictor_type": "binary_classifier", "loss": "softmax_loss"})


def test_accepted_values_include_auto_balanced_and_legacy_criteria():
    hps = ALGORITHM.validate({
        "predictor_type": "binary_classifier", "positive_example_weight_mult": "balanced",
        "binary_classifier_model_selection_criteria": "f1", "normalize_label": "auto",
        "learning_rate": "auto", "_tuning_objective_metric": "validation:recall"})
    assert hps["positive_example_weight_mult"] == "balanced"
    assert hps["num_models"] == "auto" and hps["epochs"] == 15 and hps["mini_batch_size"] == 1000
    assert ALGORITHM.validate({"predictor_type": "binary_classifier",
                               "positive_example_weight_mult": "auto"})["positive_example_weight_mult"] == "auto"
    assert ALGORITHM.validate({"predictor_type": "binary_classifier",
                               "binary_classifier_model_selection_criteria": "cross_entropy_loss"})


def test_every_documented_hyperparameter_is_declared():
    documented = """predictor_type num_classes feature_dim accuracy_top_k balance_multiclass_weights
        beta_1 beta_2 bias_lr_mult bias_wd_mult binary_classifier_model_selection_criteria
        early_stopping_patience early_stopping_tolerance epochs f_beta huber_delta init_bias
        init_method init_scale init_sigma l1 learning_rate loss loss_insensitivity lr_scheduler_factor
        lr_scheduler_minimum_lr lr_scheduler_step margin mini_batch_size momentum normalize_data
        normalize_label num_calibration_samples num_models num_point_for_scaler optimizer
        positive_example_weight_mult quantile target_precision target_recall unbias_data unbias_label
        use_bias use_lr_scheduler wd""".split()
    assert sorted(hp.name for hp in ALGORITHM.hyperparameters) == sorted(documented)
    assert all(hp.help for hp in ALGORITHM.hyperparameters)


def test_a_job_without_predictor_type_fails_with_a_client_error(tmp_path, cancer):
    x_tr, _, y_tr, _ = cancer
    job = run_job(tmp_path, {"epochs": 2}, train=(x_tr, y_tr))
    assert job.returncode != 0
    assert job.failure.startswith("ClientError: hyperparameter 'predictor_type' is required")


def test_a_binary_label_outside_0_1_names_the_file_and_line(tmp_path, cancer):
    x_tr, _, y_tr, _ = cancer
    y_bad = y_tr.copy()
    y_bad[6] = 2
    job = run_job(tmp_path, {"predictor_type": "binary_classifier"},
                  train={"a.csv": (x_tr[:50], y_tr[:50]), "b.csv": (x_tr[50:], y_bad[50:]),
                         "c.csv": (x_tr[:10], y_bad[:10])})
    assert job.returncode != 0
    assert "train/c.csv line 7: label 2 is not valid for predictor_type=binary_classifier" in job.failure
    assert "labels must be 0 or 1" in job.failure


def test_a_multiclass_label_outside_the_classes_is_an_error(tmp_path):
    x, y = datasets.load_iris(return_X_y=True)
    y = y.astype(float)
    y[3] = 3
    job = run_job(tmp_path, {"predictor_type": "multiclass_classifier", "num_classes": 3}, train=(x, y))
    assert job.returncode != 0
    assert "train/data.csv line 4: label 3" in job.failure
    assert "an integer from 0 to 2 (num_classes=3)" in job.failure


def test_feature_dim_that_disagrees_with_the_data_is_an_error(tmp_path, cancer):
    x_tr, _, y_tr, _ = cancer
    job = run_job(tmp_path, {"predictor_type": "binary_classifier", "feature_dim": 12}, train=(x_tr, y_tr))
    assert job.returncode != 0
    assert "'feature_dim' = 12 does not match the train channel" in job.failure
    assert "30 features" in job.failure


def test_validation_with_another_feature_count_is_an_error(tmp_path, cancer):
    x_tr, x_va, y_tr, y_va = cancer
    job = run_job(tmp_path, {"predictor_type": "binary_classifier"},
                  train=(x_tr, y_tr), validation=(x_va[:, :20], y_va))
    assert job.returncode != 0
    assert "expected 30" in job.failure


def test_breast_cancer_with_32_models_trains_every_one_of_15_epochs(tmp_path, cancer):
    from nbsage.runtime.environment import TrainingEnvironment
    from nbsage.algorithms.linear_learner.training import train
    x_tr, x_va, y_tr, y_va = cancer
    root = make_root(tmp_path / "speed", {"predictor_type": "binary_classifier", "num_models": 32,
                                          "epochs": 15, "early_stopping_patience": 100,
                                          "mini_batch_size": 100},
                     train=(x_tr, y_tr), validation=(x_va, y_va))
    env = TrainingEnvironment(root)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        train(env)
    assert "completed 100 % of epochs" in out.getvalue()


def test_auto_values_are_declared_once_and_quoted_by_the_help():
    from nbsage.algorithms.linear_learner import declaration, settings
    resolved = settings.resolve(ALGORITHM.validate({"predictor_type": "binary_classifier"})).resolved
    for name, value in declaration.AUTO_VALUES.items():
        assert resolved[name][0] == value
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        assert f"auto: {shown}" in ALGORITHM.hyperparameter(name).help
    assert resolved["optimizer"][0] == declaration.AUTO_OPTIMIZER
    assert resolved["learning_rate"][0] == declaration.AUTO_LEARNING_RATE[declaration.AUTO_OPTIMIZER]


def test_num_classes_range_help_and_check_agree():
    num_classes = ALGORITHM.hyperparameter("num_classes")
    assert (num_classes.range.low, num_classes.range.high) == (3, 1_000_000)
    assert "3 to 1,000,000" in num_classes.help
    with pytest.raises(HyperparameterError, match=r"'num_classes' = 2.*\[3, 1000000\]"):
        ALGORITHM.validate({"predictor_type": "binary_classifier", "num_classes": 2})
    assert ALGORITHM.validate({"predictor_type": "multiclass_classifier", "num_classes": 3})["num_classes"] == 3
