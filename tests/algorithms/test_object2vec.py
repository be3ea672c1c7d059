"""Object2Vec: declaration, records, encoders, training jobs, checkpoints, inference shapes, bad input.

One job runs through `python -m nbsage.runtime train` in a subprocess (SageMaker's behaviour: log
lines, metrics, ClientError); the rest call the algorithm's `train(env)` on a job root in-process,
on small digit pairs and generated ratings, to stay fast.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nbsage import algorithms
from nbsage.errors import DataError, HyperparameterError, InvalidRequest, ValidationError
from nbsage.runtime.environment import TrainingEnvironment
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

O2V = algorithms.get("object2vec")
SMALL = {"enc0_max_seq_len": "64", "enc0_vocab_size": "256", "enc_dim": "16", "enc0_token_embedding_dim": "8",
         "enc0_network": "pooled_embedding", "mlp_dim": "16", "mlp_activation": "relu", "epochs": "3",
         "mini_batch_size": "64", "learning_rate": "0.01"}


@pytest.fixture(scope="module")
def digits():
    from nbsage.algorithms.object2vec.sample_data import digit_pairs
    return digit_pairs(n_train=2000, n_test=400)


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def make_root(path: Path, hps: dict, channels: dict, checkpoints: Path | None = None, instances: int = 1) -> JobRoot:
    request = {"TrainingJobName": "object2vec-test",
               "AlgorithmSpecification": {"TrainingImage": "object2vec", "TrainingInputMode": "File"},
               "HyperParameters": {k: str(v) for k, v in hps.items()},
               "InputDataConfig": [{"ChannelName": c, "ContentType": "application/json" if c == "auxiliary"
                                    else "application/jsonlines"} for c in channels],
               "ResourceConfig": {"InstanceType": "local", "InstanceCount": instances}}
    if checkpoints is not None:
        request["CheckpointConfig"] = {"LocalPath": str(checkpoints)}
    root = write_job_configs(JobRoot(path), request)
    for name, records in channels.items():
        if isinstance(records, dict):  # auxiliary: {file name: text}
            for file, text in records.items():
                (root.channel_dir(name) / file).parent.mkdir(parents=True, exist_ok=True)
                (root.channel_dir(name) / file).write_text(text)
        else:
            write_jsonl(root.channel_dir(name) / "data.json", records)
    return root


def train_in_process(tmp_path, hps, channels, **kw) -> JobRoot:
    root = make_root(tmp_path / "root", hps, channels, **kw)
    O2V.train(TrainingEnvironment(root))
    return root


def run_job(root: JobRoot) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                          capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})


def metrics_of(stdout: str) -> dict:
    return {m[0]: float(m[1]) for m in re.findall(r"^#metric (\S+)=(\S+)$", stdout, re.M)}


# ---- declaration -----------------------------------------------------------------------------------
def test_declaration_has_sagemakers_defaults_ranges_and_required_parameters():
    hps = O2V.validate({"enc0_max_seq_len": "10", "enc0_vocab_size": "100"})
    assert hps["enc_dim"] == 4096 and hps["comparator_list"] == "hadamard, concat, abs_diff"
    assert hps["output_layer"] == "softmax" and hps["enc1_network"] == "enc0" and hps["epochs"] == 30
    assert hps["learning_rate"] == 0.0004 and hps["early_stopping_patience"] == 3 and hps["mini_batch_size"] == 32
    with pytest.raises(HyperparameterError, match="'enc0_vocab_size' is required"):
        O2V.validate({"enc0_max_seq_len": "10"})
    with pytest.raises(HyperparameterError, match="'early_stopping_patience' = '6'"):
        O2V.validate({"enc0_max_seq_len": "10", "enc0_vocab_size": "100", "early_stopping_patience": "6"})
    with pytest.raises(HyperparameterError, match="'enc1_vocab_size' is required when enc1_network='bilstm'"):
        O2V.validate({"enc0_max_seq_len": "10", "enc0_vocab_size": "100", "enc1_network": "bilstm",
                      "enc1_max_seq_len": "5"})
    with pytest.raises(HyperparameterError, match="'cosine' is not a comparator"):
        O2V.validate({"enc0_max_seq_len": "10", "enc0_vocab_size": "100", "comparator_list": "hadamard, cosine"})
    assert O2V.validate({"enc0_max_seq_len": "1", "enc0_vocab_size": "2",
                         "enc0_freeze_pretrained_embedding": "False"})["enc0_freeze_pretrained_embedding"] is False
    assert O2V.metric_definitions()[0] == {"Name": "validation:accuracy",
                                           "Regex": r"#quality_metric: host=\S+, validation accuracy <score>=(\S+)"}


def test_enc1_enc0_copies_enc0_and_warns_about_ignored_enc1_settings():
    from nbsage.algorithms.object2vec.building import network_config
    lines = []
    given = {"enc0_max_seq_len": "10", "enc0_vocab_size": "2", "enc1_vocab_size": "3", "enc_dim": "8",
             "enc0_network": "pooled_embedding", "enc0_token_embedding_dim": "300"}
    config = network_config(O2V.validate(given), given, lines.append)
    assert config.encoder(1).vocab_size == 2 and config.encoder(1).network == "pooled_embedding"
    assert config.encoder(0).token_embedding_dim == 8
    text = "\n".join(lines)
    assert "enc1_vocab_size ignored" in text
    assert "Inconsistent enc_dim and token_embedding_dim found for token-embedding-encoder: 8 vs 300" in text


@pytest.mark.parametrize("network", ["hcnn", "bilstm", "pooled_embedding"])
def test_each_encoder_gives_enc_dim_vectors_that_ignore_padding(network):
    from nbsage.algorithms.object2vec.network import EncoderConfig, NetworkConfig, Object2VecNetwork
    enc = EncoderConfig(network, 20, 10, 6, 2, cnn_filter_width=2)
    net = Object2VecNetwork(NetworkConfig([enc, enc], 7, ["hadamard", "concat", "abs_diff"], 1, 8, "tanh", 0.0,
                                          "softmax", 3)).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [3, 4, 5, 9, 9]])
    e = net.encode(0, ids, torch.tensor([3, 3]))
    assert e.shape == (2, 7)
    assert torch.allclose(e[0], e[1], atol=1e-6)  # what lies past the length does not count
    assert net(ids, torch.tensor([3, 5]), ids, torch.tensor([3, 5])).shape == (2, 3)


# ---- training --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("o2v")
    hps = {**SMALL, "epochs": "5", "early_stopping_patience": "5", "mini_batch_size": "32"}
    root = make_root(path / "job", hps, {"train": digits.train, "validation": digits.test[:200],
                                         "test": digits.test[200:]})
    proc = run_job(root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return root, proc.stdout


def test_a_training_job_learns_digit_pairs_and_logs_sagemaker_metrics(trained):
    root, out = trained
    assert "#quality_metric: host=algo-1, epoch=0, train loss <loss>=" in out
    assert re.search(r"#quality_metric: host=algo-1, epoch=\d, validation accuracy <score>=", out)
    metrics = metrics_of(out)
    assert {"validation:accuracy", "validation:cross_entropy", "test:accuracy", "test:cross_entropy"} <= set(metrics)
    assert metrics["test:accuracy"] > 0.6, metrics  # above chance (0.5) after a few epochs on unseen images
    assert (root.model_dir / "model_algo-1.pt").exists() and (root.model_dir / "model_algo-1-config.json").exists()
    assert (root.path / "output" / "model.tar.gz").exists()


def test_regression_reports_mean_squared_error_and_answers_one_score(tmp_path):
    from nbsage.algorithms.object2vec.sample_data import rating_pairs
    data = rating_pairs(num_users=30, num_items=20, n_train=1500, n_test=300)
    hps = {"enc0_max_seq_len": "1", "enc0_vocab_size": "30", "enc1_network": "pooled_embedding",
           "enc1_max_seq_len": "1", "enc1_vocab_size": "20", "enc0_network": "pooled_embedding", "enc_dim": "8",
           "output_layer": "mean_squared_error", "mlp_dim": "16", "mlp_activation": "relu", "epochs": "4",
           "mini_batch_size": "64", "learning_rate": "0.01"}
    root = train_in_process(tmp_path, hps, {"train": data.train, "test": data.test})
    handler = O2V.load(str(root.model_dir))
    body, ct = handler.invoke(json.dumps({"instances": [{"in0": [1], "in1": [2]}]}).encode(), "application/json",
                              "application/json")
    (prediction,) = json.loads(body)["predictions"]
    assert len(prediction["scores"]) == 1 and 1.0 < prediction["scores"][0] < 5.0
    variance = float(np.var([r["label"] for r in data.test]))
    from nbsage.algorithms.object2vec.evaluation import score
    from nbsage.algorithms.object2vec.predictor import Object2VecPredictor
    from nbsage.algorithms.object2vec.records import Limits, read_channel
    test = read_channel([root.channel_dir("test") / "data.json"], (Limits(30, 1), Limits(20, 1)), None)
    assert score(Object2VecPredictor.load(root.model_dir), test)["mean_squared_error"] < variance


def test_negative_sampling_adds_rate_negatives_per_pair_each_epoch(tmp_path, digits, capsys):
    positives = [r for r in digits.train if r["label"] == 1][:200]
    train_in_process(tmp_path, {**SMALL, "epochs": "1", "negative_sampling_rate": "2"}, {"train": positives})
    out = capsys.readouterr().out
    assert "Negative sampling: 2 negative(s) per pair each epoch (400 in all), labelled 0" in out
    from nbsage.algorithms.object2vec.records import Pairs
    from nbsage.algorithms.object2vec.training import _epoch_order, _Padded
    pairs = Pairs([np.array(r["in0"]) for r in positives], [np.array(r["in1"]) for r in positives],
                  np.ones(len(positives), dtype=np.float32))
    batches = _epoch_order(_Padded(pairs, "cpu"), len(pairs), 2, 32, 0, np.random.default_rng(0))
    r0 = np.concatenate([b[0] for b in batches])
    r1 = np.concatenate([b[1] for b in batches])
    neg = np.concatenate([b[2] for b in batches])
    assert neg.sum() == 400 and (~neg).sum() == 200
    assert (r0[neg] != r1[neg]).all() and (r0[~neg] == r1[~neg]).all()


def test_a_job_started_again_with_the_same_checkpoints_resumes_after_its_last_epoch(tmp_path, digits, capsys):
    checkpoints = tmp_path / "checkpoints"
    small = digits.train[:300]
    hps = {**SMALL, "epochs": "2", "early_stopping_patience": "5"}
    O2V.train(TrainingEnvironment(make_root(tmp_path / "a", hps, {"train": small}, checkpoints=checkpoints)))
    assert sorted(p.name for p in checkpoints.iterdir())[-1] == "object2vec-checkpoint-epoch00001.pt"
    capsys.readouterr()
    O2V.train(TrainingEnvironment(make_root(tmp_path / "b", {**hps, "epochs": "3"}, {"train": small},
                                            checkpoints=checkpoints)))
    out = capsys.readouterr().out
    assert "continuing at epoch 2" in out
    assert "epoch=1, train loss" not in out and "epoch=2, train loss" in out


def test_bucketing_bilstm_hcnn_and_a_second_vocabulary_train(tmp_path, capsys):
    rng = np.random.default_rng(0)
    records = []
    for k in range(120):
        n = int(rng.integers(1, 12))
        a = rng.integers(0, 9, n).tolist()
        records.append({"label": k % 2, "in0": a, "in1": [t + 5 * (k % 2) for t in a][: int(rng.integers(1, n + 1))]})
    hps = {"enc0_max_seq_len": "8", "enc0_vocab_size": "10", "enc0_network": "bilstm", "enc1_network": "hcnn",
           "enc1_vocab_size": "15", "enc1_max_seq_len": "12", "enc1_layers": "2", "enc_dim": "9",
           "enc0_token_embedding_dim": "4", "enc1_token_embedding_dim": "5", "mlp_layers": "1", "mlp_dim": "4",
           "epochs": "2", "mini_batch_size": "16", "bucket_width": "3", "comparator_list": "abs_diff,hadamard",
           "optimizer": "rmsprop", "dropout": "0.1"}
    train_in_process(tmp_path, hps, {"train": records})
    assert "were truncated" in capsys.readouterr().out


def test_pretrained_embeddings_are_read_from_the_auxiliary_channel_and_kept_frozen(tmp_path):
    vocab = {"zero": 0, "one": 1, "two": 2, "three": 3}
    glove = "one 0.5 0.5 0.5 0.5\nthree 1 2 3 4\nunused 9 9 9 9\n"
    records = [{"label": i % 2, "in0": [i % 4, 1], "in1": [3, i % 4]} for i in range(40)]
    hps = {"enc0_max_seq_len": "4", "enc0_vocab_size": "4", "enc0_network": "hcnn", "enc0_layers": "1",
           "enc0_token_embedding_dim": "4", "enc_dim": "4", "mlp_dim": "4", "epochs": "2",
           "enc0_vocab_file": "vocab.json", "enc0_pretrained_embedding_file": "glove.txt"}
    root = train_in_process(tmp_path, hps, {"train": records,
                                            "auxiliary": {"vocab.json": json.dumps(vocab), "glove.txt": glove}})
    state = torch.load(root.model_dir / "model_algo-1.pt", weights_only=True)
    table = state["enc0.embedding.weight"]
    assert torch.equal(table[3], torch.tensor([1.0, 2.0, 3.0, 4.0])) and torch.equal(table[1], torch.full((4,), 0.5))


# ---- inference -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def handler(trained):
    root, _ = trained
    return O2V.load(str(root.model_dir))


def test_pair_requests_get_num_classes_scores_in_json_and_jsonlines(handler, digits):
    pairs = [{"in0": r["in0"], "in1": r["in1"]} for r in digits.test[:3]]
    body, ct = handler.invoke(json.dumps({"instances": pairs}).encode(), "application/json", "application/json")
    predictions = json.loads(body)["predictions"]
    assert ct == "application/json" and len(predictions) == 3
    assert all(len(p["scores"]) == 2 and abs(sum(p["scores"]) - 1) < 1e-5 for p in predictions)
    lines, ct = handler.invoke("\n".join(json.dumps(p) for p in pairs).encode(), "application/jsonlines",
                               "application/jsonlines")
    rows = [json.loads(line) for line in lines.decode().splitlines()]
    assert ct == "application/jsonlines" and [r["scores"] for r in rows] == [p["scores"] for p in predictions]


def test_one_input_gets_its_encoders_embedding_and_verbose_adds_both(handler, digits):
    body, _ = handler.invoke(json.dumps({"instances": [{"in0": digits.images[0]}, {"in1": digits.images[1]},
                                                       {"in0": digits.images[0], "in1": digits.images[1]}]}).encode(),
                             "application/json; infer_max_seqlens=64,64", "application/json")
    first, second, pair = json.loads(body)["predictions"]
    assert len(first["embeddings"]) == 16 and len(second["embeddings"]) == 16 and "scores" in pair
    lines, _ = handler.invoke(json.dumps({"in0": digits.images[0], "in1": digits.images[1]}).encode(),
                              "application/jsonlines", "application/jsonlines; verbose=true")
    row = json.loads(lines)
    assert row["in0_embedding"] == first["embeddings"] and row["in1_embedding"] == second["embeddings"]


# ---- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("record, rule", [
    ({"label": 1, "in0": [1, 2]}, r"train/data.json line 2: the record has no 'in1'"),
    ({"label": 2, "in0": [1], "in1": [2]}, r"train/data.json line 2: label 2 is outside the declared classes; with "
                                           r"output_layer=softmax and num_classes=2 a label is an integer from 0 to 1"),
    ({"label": 0, "in0": [1], "in1": [256]}, r'train/data.json line 2: Inconsistent vocab for in1 found. Vocab id '
                                             r'"256" is not less than vocab_size=256'),
    ({"label": 0, "in0": [], "in1": [3]}, r"line 2: 'in0' must be a non-empty list of integer token ids"),
])
def test_a_bad_training_record_names_the_file_line_and_rule(tmp_path, record, rule):
    good = {"label": 0, "in0": [1, 2], "in1": [3]}
    with pytest.raises(DataError, match=rule):
        train_in_process(tmp_path, SMALL, {"train": [good, record]})


def test_a_bad_record_fails_the_job_with_a_client_error(tmp_path):
    import signal
    from nbsage.runtime.train import run
    root = make_root(tmp_path / "job", SMALL, {"train": [{"label": 0, "in1": [1]}]})
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert run(str(root.path)) != 0  # the runtime's own entry point, in this process
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert root.failure_reason().startswith("ClientError: train/data.json line 1: the record has no 'in0'")


def test_more_than_one_instance_is_refused_clearly(tmp_path):
    with pytest.raises(ValidationError, match="Object2Vec trains on one instance .* set instance_count=1"):
        train_in_process(tmp_path, SMALL, {"train": [{"label": 0, "in0": [1], "in1": [1]}]}, instances=2)


def test_missing_auxiliary_files_and_bad_vocab_files_are_named(tmp_path):
    hps = {**SMALL, "enc0_vocab_file": "vocab.json", "enc0_pretrained_embedding_file": "glove.txt"}
    records = [{"label": 0, "in0": [1], "in1": [1]}]
    with pytest.raises(DataError, match="enc0_vocab_file='vocab.json'.*no auxiliary channel"):
        train_in_process(tmp_path / "a", hps, {"train": records})
    with pytest.raises(DataError, match=r"vocab.json \(enc0_vocab_file\) must be a JSON object"):
        train_in_process(tmp_path / "b", hps, {"train": records, "auxiliary": {"vocab.json": "[1, 2]",
                                                                               "glove.txt": ""}})


@pytest.mark.parametrize("body, content_type, message", [
    (b'[{"in0": [1], "in1": [2]}]', "application/json", "has no 'instances'"),
    (b'{"instances": [{"in0": [1]}, {"x": [1]}]}', "application/json",
     r"instances\[1\]: the instance has neither 'in0' nor 'in1'"),
    (b'{"instances": [{"in0": [1, 999]}]}', "application/json",
     r'instances\[0\]: Inconsistent vocab for in0 found. Vocab id "999" is not less than vocab_size=256'),
    (b'{"in0": [1]}\n{"in0": "abc"}', "application/jsonlines", "request line 2: 'in0' must be a non-empty list"),
    (b'{"instances": [{"in0": [1]}]}', "application/json; infer_max_seqlens=0,9", "infer_max_seqlens='0,9'"),
])
def test_a_bad_request_names_the_instance_and_rule_and_the_model_keeps_answering(handler, body, content_type, message):
    with pytest.raises(InvalidRequest, match=message):
        handler.invoke(body, content_type, "application/json")
    ok, _ = handler.invoke(b'{"instances": [{"in0": [1, 2], "in1": [3]}]}', "application/json", "application/json")
    assert "scores" in json.loads(ok)["predictions"][0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_instance_type_trains_on_cuda(tmp_path, digits):
    root = make_root(tmp_path / "gpu", SMALL, {"train": digits.train[:300]})
    config = root.read_config("resourceconfig.json")
    root.write_config("resourceconfig.json", {**config, "current_instance_type": "ml.g5.xlarge"})
    proc = run_job(root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Training on cuda" in proc.stdout


def test_tied_token_embeddings_share_one_table_and_need_matching_sizes():
    from nbsage.algorithms.object2vec.building import network_config
    from nbsage.algorithms.object2vec.network import Object2VecNetwork
    given = {"enc0_max_seq_len": "4", "enc0_vocab_size": "10", "enc0_network": "bilstm", "enc_dim": "6",
             "enc0_token_embedding_dim": "4", "tied_token_embedding_weight": "True"}
    net = Object2VecNetwork(network_config(O2V.validate(given), given, lambda line: None))
    assert net.encode_embedding(0) is net.encode_embedding(1)
    bad = {**given, "enc1_network": "hcnn", "enc1_vocab_size": "12", "enc1_max_seq_len": "4"}
    with pytest.raises(HyperparameterError, match="tied_token_embedding_weight=true needs one token embedding table"):
        network_config(O2V.validate(bad), bad, lambda line: None)
