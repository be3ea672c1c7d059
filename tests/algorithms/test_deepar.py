"""DeepAR: records, features, training jobs, checkpoints, likelihoods, inference shapes, bad input.

Jobs that must behave as SageMaker's run through `python -m nbsage.runtime train` in a
subprocess; the rest call the algorithm's `train(env)` on a job root in-process, on small
synthetic seasonal series, to stay fast.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nbsage import algorithms
from nbsage.errors import DataError, HyperparameterError, InvalidRequest
from nbsage.runtime.environment import TrainingEnvironment
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot

torch = pytest.importorskip("torch")

DEEPAR = algorithms.get("deepar")
PERIOD = 24
SMALL = {"time_freq": "H", "context_length": "24", "prediction_length": "12", "epochs": "2",
         "mini_batch_size": "16", "num_cells": "16", "num_layers": "1", "num_eval_samples": "20"}


def seasonal_records(n_series=6, length=8 * PERIOD, seed=0, cat=True, nan_every=0, dynamic=False, noise=0.03):
    """Daily-seasonal hourly series with per-series level and phase, and noise (relative to the level)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_series):
        level, phase = rng.uniform(10, 100), rng.uniform(0, 2 * np.pi)
        t = np.arange(length)
        y = level * (1 + 0.5 * np.sin(2 * np.pi * t / PERIOD + phase)) + rng.normal(0, noise * level, length)
        target = [round(float(v), 4) for v in y]
        if nan_every:
            for j in range(5, length, nan_every):
                target[j] = "NaN"
        record = {"start": "2024-01-01 00:00:00", "target": target}
        if cat:
            record["cat"] = [i % 2]
        if dynamic:
            record["dynamic_feat"] = [[float(np.sin(2 * np.pi * k / PERIOD + phase)) for k in range(length)]]
        out.append(record)
    return out


def write_jsonl(path: Path, records, gz=False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def make_root(path: Path, hps: dict, channels: dict, checkpoints: Path | None = None,
              content_type="application/jsonlines", files=None) -> JobRoot:
    request = {"TrainingJobName": "deepar-test",
               "AlgorithmSpecification": {"TrainingImage": "deepar", "TrainingInputMode": "File"},
               "HyperParameters": {k: str(v) for k, v in hps.items()},
               "InputDataConfig": [{"ChannelName": c, "ContentType": content_type} for c in channels],
               "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1}}
    if checkpoints is not None:
        request["CheckpointConfig"] = {"LocalPath": str(checkpoints)}
    root = write_job_configs(JobRoot(path), request)
    for name, records in channels.items():
        if isinstance(records, Path):
            target = root.channel_dir(name) / records.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(records.read_bytes())
        else:
            write_jsonl(root.channel_dir(name) / "data.json", records)
    return root


def train_in_process(tmp_path, hps, channels, **kw) -> tuple[JobRoot, str]:
    root = make_root(tmp_path / "root", hps, channels, **kw)
    DEEPAR.train(TrainingEnvironment(root))
    return root, ""


def run_job(root: JobRoot) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                          capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})


def metrics_of(stdout: str) -> dict:
    return {m[0]: float(m[1]) for m in re.findall(r"^#metric (\S+)=(\S+)", stdout, re.M)}


# ---- features ------------------------------------------------------------------------------------
@pytest.mark.parametrize("freq, expected", [
    ("M", [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 23, 24, 25, 35, 36, 37]),
    ("W", [1, 2, 3, 4, 5, 6, 7, 8, 12, 51, 52, 53, 103, 104, 105, 155, 156, 157]),
    ("D", list(range(1, 9)) + [13, 14, 15, 20, 21, 22, 27, 28, 29, 30, 31, 56, 84, 363, 364, 365,
                               727, 728, 729, 1091, 1092, 1093]),
])
def test_lags_follow_the_frequency_as_the_spec_lists(freq, expected):
    from nbsage.algorithms.deepar.features import Frequency
    assert Frequency.parse(freq).lags() == expected


def test_hourly_and_five_minute_lags_reach_a_week_and_four_hours_of_days():
    from nbsage.algorithms.deepar.features import Frequency
    hourly = Frequency.parse("H").lags()
    assert hourly[:7] == list(range(1, 8)) and {23, 24, 25, 167, 168, 169, 719, 720, 721} <= set(hourly)
    five = Frequency.parse("5min").lags()
    assert {10, 14, 22, 26, 34, 38, 287, 288, 289, 1151, 1152, 1153} <= set(five) and max(five) == 1153


def test_time_features_encode_the_calendar_in_half_unit_range():
    import datetime as dt
    from nbsage.algorithms.deepar.features import Frequency
    hourly = Frequency.parse("H")
    sunday_23h = hourly.ordinal(dt.datetime(2024, 3, 10, 23, 30))
    feats = hourly.time_features(np.array([sunday_23h]))[0]
    assert hourly.time_feature_names() == ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    assert feats[0] == pytest.approx(0.5) and feats[1] == pytest.approx(0.5)
    assert hourly.timestamp(sunday_23h) == dt.datetime(2024, 3, 10, 23)
    monthly = Frequency.parse("M")
    assert monthly.time_features(np.array([monthly.ordinal(dt.datetime(2024, 1, 15))]))[0, 0] == pytest.approx(-0.5)


@pytest.mark.parametrize("bad", ["X", "0H", "hourly", "5 sec"])
def test_time_freq_outside_m_w_d_h_min_is_rejected(bad):
    with pytest.raises(HyperparameterError, match="time_freq"):
        DEEPAR.validate({**SMALL, "time_freq": bad})


def test_hyperparameters_accept_sagemaker_spellings():
    hps = DEEPAR.validate({**SMALL, "likelihood": "student-t", "test_quantiles": "[0.1, 0.5, 0.9]",
                           "cardinality": "[2, 3]", "num_dynamic_feat": "ignore", "early_stopping_patience": ""})
    assert hps["likelihood"] == "student-T" and hps["test_quantiles"] == [0.1, 0.5, 0.9]
    assert hps["cardinality"] == [2, 3] and hps["num_dynamic_feat"] == "ignore"
    assert "early_stopping_patience" not in hps
    with pytest.raises(HyperparameterError, match="test_quantiles"):
        DEEPAR.validate({**SMALL, "test_quantiles": "[0.5, 1.5]"})
    with pytest.raises(HyperparameterError, match="likelihood"):
        DEEPAR.validate({**SMALL, "likelihood": "poisson"})
    with pytest.raises(HyperparameterError, match="required"):
        DEEPAR.validate({"time_freq": "H"})


def test_metric_definitions_scrape_the_log_lines():
    defs = {d["Name"]: re.compile(d["Regex"]) for d in DEEPAR.metric_definitions()}
    assert defs["test:RMSE"].search("#test_score (algo-1, RMSE): 1.25").group(1) == "1.25"
    assert defs["test:wQuantileLoss[0.9]"].search("#test_score (algo-1, wQuantileLoss[0.9]): 0.05").group(1) == "0.05"
    assert defs["train:final_loss"].search("#quality_metric: host=algo-1, train final_loss <loss>=0.7").group(1) == "0.7"


# ---- JSON Lines reader -----------------------------------------------------------------------------
def test_jsonlines_reader_finds_gzip_by_magic_and_names_the_bad_line(tmp_path):
    from nbsage.formats import jsonlines
    plain = tmp_path / "data.json"
    plain.write_text('{"a": 1}\n\n{"a": 2}\n')
    hidden_gz = tmp_path / "data.bin"
    hidden_gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert [v for _, v in jsonlines.iter_file(hidden_gz)] == [{"a": 1}, {"a": 2}]
    assert [n for n, _ in jsonlines.iter_file(plain)] == [1, 3]
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"bad.json line 2: not valid JSON"):
        list(jsonlines.iter_file(bad))


# ---- training jobs ----------------------------------------------------------------------------------
def test_training_job_beats_seasonal_naive_and_logs_sagemaker_metrics(tmp_path):
    from nbsage.algorithms.deepar.evaluation import score, seasonal_naive
    # noisy enough that copying yesterday copies its noise: the seasonal mean forecasts better
    records = seasonal_records(n_series=8, length=12 * PERIOD, seed=1, noise=0.15)
    train = [{**r, "target": r["target"][:-12]} for r in records]
    hps = {**SMALL, "epochs": "15", "mini_batch_size": "32", "num_cells": "32", "num_eval_samples": "50",
           "likelihood": "gaussian", "learning_rate": "0.005"}
    root = make_root(tmp_path / "job", hps, {"train": train, "test": records})
    proc = run_job(root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "#quality_metric: host=algo-1, epoch=14, train loss <loss>=" in out
    assert re.search(r"#test_score \(algo-1, RMSE\): \S+", out)
    assert re.search(r"#test_score \(algo-1, wQuantileLoss\[0.9\]\): \S+", out)
    assert "#quality_metric: host=algo-1, test mean_wQuantileLoss <loss>=" in out
    assert "Inferred value of cardinality=[2] from dataset" in out
    metrics = metrics_of(out)
    assert {"train:final_loss", "test:RMSE", "test:mean_wQuantileLoss", "test:wQuantileLoss[0.5]"} <= set(metrics)
    history = [np.array(r["target"][:-12], dtype=float) for r in records]
    actual = np.array([r["target"][-12:] for r in records], dtype=float)
    naive = score(seasonal_naive(history, 12, PERIOD), actual, [0.1, 0.5, 0.9])
    assert metrics["test:mean_wQuantileLoss"] < naive["mean_wQuantileLoss"]
    assert "#progress step=15 total=15" in out
    assert (root.model_dir / "model_algo-1.pt").exists() and (root.model_dir / "model_algo-1-config.json").exists()
    assert (root.path / "output" / "model.tar.gz").exists()


def test_a_job_started_again_with_the_same_checkpoints_resumes_after_its_last_epoch(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    records = seasonal_records()
    first = make_root(tmp_path / "first", SMALL, {"train": records}, checkpoints=checkpoints)
    proc = run_job(first)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch=1, train loss" in proc.stdout and "Resuming" not in proc.stdout
    assert sorted(p.name for p in checkpoints.iterdir())[-1] == "deepar-checkpoint-epoch00001.pt"
    second = make_root(tmp_path / "second", {**SMALL, "epochs": "4"}, {"train": records}, checkpoints=checkpoints)
    proc = run_job(second)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "continuing at epoch 2" in proc.stdout
    assert "epoch=0, train loss" not in proc.stdout and "epoch=1, train loss" not in proc.stdout
    assert "epoch=2, train loss" in proc.stdout and "epoch=3, train loss" in proc.stdout
    assert "#progress step=4 total=4" in proc.stdout


@pytest.mark.parametrize("likelihood", ["gaussian", "student-T", "negative-binomial", "beta", "deterministic-L1"])
def test_each_likelihood_trains_and_forecasts_without_nan(tmp_path, likelihood, capsys):
    records = seasonal_records(n_series=4, length=5 * PERIOD, nan_every=17)
    if likelihood == "beta":
        for r in records:
            r["target"] = [v if v == "NaN" else min(max(v / 200.0, 0.01), 0.99) for v in r["target"]]
    if likelihood == "negative-binomial":
        for r in records:
            r["target"] = [v if v == "NaN" else float(round(v)) for v in r["target"]]
    root, _ = train_in_process(tmp_path, {**SMALL, "epochs": "1", "likelihood": likelihood},
                               {"train": records, "test": records})
    metrics = metrics_of(capsys.readouterr().out)
    assert np.isfinite(metrics["train:final_loss"]) and np.isfinite(metrics["test:mean_wQuantileLoss"])
    handler = DEEPAR.load(str(root.model_dir))
    body = json.dumps({"instances": records[:2], "configuration": {"num_samples": 10, "output_types": ["mean", "samples"]}})
    answer = json.loads(handler.invoke(body.encode(), "application/json", "application/json")[0])
    samples = np.array(answer["predictions"][0]["samples"])
    assert samples.shape == (10, 12) and np.isfinite(samples).all()
    if likelihood == "negative-binomial":
        assert (samples >= 0).all() and np.allclose(samples, np.round(samples))
    if likelihood == "beta":
        assert ((samples >= 0) & (samples <= 1)).all()


def test_gzip_parquet_and_dynamic_features_train(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq
    records = seasonal_records(n_series=4, length=5 * PERIOD, dynamic=True)
    gz = write_jsonl(tmp_path / "src" / "train.json.gz", records, gz=True)
    root, _ = train_in_process(tmp_path, {**SMALL, "epochs": "1"}, {"train": gz})
    assert "Inferred value of num_dynamic_feat=1 from dataset" in capsys.readouterr().out
    table = pa.table({"start": [r["start"] for r in records],
                      "target": [[None if v == "NaN" else v for v in r["target"]] for r in records],
                      "cat": [r["cat"] for r in records]})
    pq.write_table(table, tmp_path / "train.parquet")
    root = make_root(tmp_path / "pq", {**SMALL, "epochs": "1"}, {"train": tmp_path / "train.parquet"},
                     content_type="application/x-parquet")
    DEEPAR.train(TrainingEnvironment(root))
    assert "number of time series: 4" in capsys.readouterr().out


# ---- inference --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deepar-model")
    records = seasonal_records(n_series=4, length=5 * PERIOD, dynamic=True)
    root = make_root(tmp / "root", {**SMALL, "epochs": "1"}, {"train": records})
    DEEPAR.train(TrainingEnvironment(root))
    return root.model_dir, records


def _instance(record, horizon=12):
    dyn = record["dynamic_feat"][0]
    return {**record, "dynamic_feat": [dyn + dyn[:horizon]]}


def test_json_request_is_answered_in_the_spec_shape(trained_model):
    model_dir, records = trained_model
    handler = DEEPAR.load(str(model_dir))
    request = {"instances": [_instance(records[0]), _instance(records[1])],
               "configuration": {"num_samples": 30, "output_types": ["mean", "quantiles", "samples"],
                                 "quantiles": ["0.5", "0.9"]}}
    body, ctype = handler.invoke(json.dumps(request).encode(), "application/json", "application/json")
    answer = json.loads(body)
    assert ctype == "application/json" and len(answer["predictions"]) == 2
    first = answer["predictions"][0]
    assert set(first) == {"mean", "quantiles", "samples"}
    assert list(first["quantiles"]) == ["0.5", "0.9"] and len(first["quantiles"]["0.9"]) == 12
    assert len(first["mean"]) == 12 and np.array(first["samples"]).shape == (30, 12)
    assert all(lo <= hi for lo, hi in zip(first["quantiles"]["0.5"], first["quantiles"]["0.9"]))
    only_mean = json.loads(handler.invoke(json.dumps({"instances": [_instance(records[2])],
                                                       "configuration": {"output_types": ["mean"]}}).encode(),
                                          "application/json", None)[0])
    assert set(only_mean["predictions"][0]) == {"mean"}


def test_jsonlines_request_answers_one_line_per_record_in_order(trained_model, monkeypatch):
    model_dir, records = trained_model
    monkeypatch.setenv("DEEPAR_INFERENCE_CONFIG", json.dumps({"num_samples": 20, "output_types": ["quantiles"],
                                                                "quantiles": ["0.1", "0.9"]}))
    handler = DEEPAR.load(str(model_dir))
    body = "".join(json.dumps(_instance(r)) + "\n" for r in records[:3]).encode()
    out, ctype = handler.invoke(body, "application/jsonlines", "application/jsonlines")
    lines = out.decode().splitlines()
    assert ctype == "application/jsonlines" and len(lines) == 3
    for line in lines:
        prediction = json.loads(line)
        assert set(prediction) == {"quantiles"} and set(prediction["quantiles"]) == {"0.1", "0.9"}
    as_json = json.loads(handler.invoke(body, "application/jsonlines", "application/json")[0])
    assert len(as_json["predictions"]) == 3


def test_the_saved_model_reloads_with_its_settings(trained_model):
    from nbsage.algorithms.deepar.predictor import DeepARPredictor
    model_dir, _ = trained_model
    predictor = DeepARPredictor.load(model_dir)
    assert predictor.settings.prediction_length == 12 and predictor.settings.num_dynamic_feat == 1


# ---- bad input -----------------------------------------------------------------------------------------
def test_a_series_shorter_than_context_plus_prediction_names_the_record_and_rule(tmp_path):
    records = seasonal_records(n_series=3)
    records[2]["target"] = records[2]["target"][:30]
    with pytest.raises(DataError, match=r"train/data.json line 3: the series has 30 point\(s\); DeepAR needs "
                                        r"at least 36 \(context_length \+ prediction_length = 24 \+ 12\)"):
        train_in_process(tmp_path, SMALL, {"train": records})


def test_a_start_that_does_not_parse_names_the_record(tmp_path):
    records = seasonal_records(n_series=3)
    records[1]["start"] = "2024-13-45 00:00:00"
    with pytest.raises(DataError, match=r"train/data.json line 2: 'start' = '2024-13-45 00:00:00' is not a "
                                        r"timestamp; DeepAR expects 'YYYY-MM-DD HH:MM:SS'"):
        train_in_process(tmp_path, SMALL, {"train": records})


def test_a_cat_value_beyond_cardinality_names_the_record(tmp_path):
    records = seasonal_records(n_series=3)
    records[2]["cat"] = [5]
    with pytest.raises(DataError, match=r"train/data.json line 3: cat\[0\] = 5 is beyond cardinality\[0\] = 2"):
        train_in_process(tmp_path, {**SMALL, "cardinality": "[2]"}, {"train": records})


def test_a_bad_target_value_names_the_index(tmp_path):
    records = seasonal_records(n_series=2)
    records[0]["target"][7] = "seven"
    with pytest.raises(DataError, match=r"line 1: target\[7\] = 'seven' is not a number"):
        train_in_process(tmp_path, SMALL, {"train": records})


def test_inference_errors_name_the_instance_and_rule(trained_model):
    model_dir, records = trained_model
    handler = DEEPAR.load(str(model_dir))

    def ask(request):
        return handler.invoke(json.dumps(request).encode(), "application/json", "application/json")

    with pytest.raises(InvalidRequest, match=r"output type 'median' is not known; DeepAR answers mean, "
                                             r"quantiles, samples"):
        ask({"instances": [_instance(records[0])], "configuration": {"output_types": ["mean", "median"]}})
    with pytest.raises(InvalidRequest, match=r"instances\[0\]: 'dynamic_feat' arrays have 120 values; they "
                                             r"must have len\(target\) \+ prediction_length = 120 \+ 12"):
        ask({"instances": [records[0]]})
    with pytest.raises(InvalidRequest, match=r"instances\[1\]: cat\[0\] = 7 is beyond cardinality\[0\] = 2"):
        ask({"instances": [_instance(records[0]), {**_instance(records[1]), "cat": [7]}]})
    with pytest.raises(InvalidRequest, match=r"instances\[0\]: 'start' = 'yesterday' is not a timestamp"):
        ask({"instances": [{**_instance(records[0]), "start": "yesterday"}]})
    with pytest.raises(InvalidRequest, match="num_samples"):
        ask({"instances": [_instance(records[0])], "configuration": {"num_samples": 0}})
    with pytest.raises(InvalidRequest, match="instances"):
        ask({"records": []})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_instance_type_trains_on_cuda(tmp_path):
    records = seasonal_records()
    root = make_root(tmp_path / "gpu", SMALL, {"train": records})
    config = root.read_config("resourceconfig.json")
    root.write_config("resourceconfig.json", {**config, "current_instance_type": "ml.g5.xlarge"})
    proc = run_job(root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Training on cuda" in proc.stdout


def test_early_stopping_keeps_the_lowest_loss_epoch(tmp_path, capsys):
    # a learning rate too small to learn: the epoch loss only wanders, so patience runs out
    hps = {**SMALL, "epochs": "30", "early_stopping_patience": "2", "learning_rate": "1e-9"}
    train_in_process(tmp_path, hps, {"train": seasonal_records(n_series=3)})
    out = capsys.readouterr().out
    assert "Loss has not improved in 2 epochs. Stopping training." in out
    assert "epoch=29, train loss" not in out
    losses = [float(v) for v in re.findall(r"epoch=\d+, train loss <loss>=(\S+)", out)]
    final = float(re.search(r"train final_loss <loss>=(\S+)", out).group(1))
    assert final == min(losses)


def test_two_instances_train_one_model_across_the_hosts_as_good_as_one(tmp_path):
    from nbsage.algorithms.deepar.evaluation import score, seasonal_naive
    from nbsage.estimator import Estimator
    from nbsage.inputs import TrainingInput
    from nbsage.session import Session
    records = seasonal_records(n_series=8, length=12 * PERIOD, seed=1, noise=0.15)
    train = [{**r, "target": r["target"][:-12]} for r in records]
    hps = {**SMALL, "epochs": "8", "mini_batch_size": "32", "num_cells": "32", "num_eval_samples": "50",
           "likelihood": "gaussian", "learning_rate": "0.005"}
    one = make_root(tmp_path / "one", hps, {"train": train, "test": records})
    proc = run_job(one)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    single = metrics_of(proc.stdout)["test:mean_wQuantileLoss"]

    folders = {name: write_jsonl(tmp_path / "data" / name / "data.json", data).parent
               for name, data in (("train", train), ("test", records))}
    session = Session.default()
    est = Estimator("deepar", hps, instance_count=2, sagemaker_session=session)
    job = est.fit({name: TrainingInput(str(folder), content_type="application/jsonlines")
                   for name, folder in folders.items()}, wait=False)
    desc = job.wait_quietly(timeout=240)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    logs = job.logs()
    assert any(line.startswith("[algo-1] ") for line in logs) and any(line.startswith("[algo-2] ") for line in logs)
    assert any("Distributed training on 2 hosts (rank 1): 4 of 8 time series" in line for line in logs)
    metrics = {m["name"]: m["value"] for m in session.store.get_metrics(job.name)}
    two = metrics["test:mean_wQuantileLoss"]
    assert two < 1.5 * single, (single, two)
    history = [np.array(r["target"][:-12], dtype=float) for r in records]
    actual = np.array([r["target"][-12:] for r in records], dtype=float)
    naive = score(seasonal_naive(history, 12, PERIOD), actual, [0.1, 0.5, 0.9])
    assert two < naive["mean_wQuantileLoss"], (two, naive["mean_wQuantileLoss"])
