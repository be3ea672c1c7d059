"""Seq2Seq: records and vocab files as SageMaker's tools write them, training jobs, checkpoints,
every encoder and attention type, the endpoint's three formats, and bad input.

One model is trained per module (numbers in English words -> French words, generated with
num2words) and shared by the inference tests; the other jobs are tiny and run in-process (the
contract tests, tests/contracts/test_algorithms.py, run Seq2Seq jobs through the runtime).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from nbsage import algorithms
from nbsage.errors import DataError, HyperparameterError, InvalidRequest, ValidationError
from nbsage.runtime.environment import TrainingEnvironment
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot

torch = pytest.importorskip("torch")
pytest.importorskip("num2words")

from nbsage.algorithms.seq2seq.preparation import prepare  # noqa: E402
from nbsage.algorithms.seq2seq.sample_data import number_pairs, reversal_pairs  # noqa: E402

SEQ2SEQ = algorithms.get("seq2seq")
RECORDIO = "application/x-recordio-protobuf"
TINY = {"max_num_epochs": "1", "rnn_num_hidden": "16", "num_embed_source": "8", "num_embed_target": "8",
        "batch_size": "16", "beam_size": "2"}


def make_root(path: Path, hps: dict, channels: dict, checkpoints: Path | None = None, instances: int = 1) -> JobRoot:
    """A job root with the channel folders copied in (channels: {name: folder})."""
    types = {"train": RECORDIO, "validation": RECORDIO, "vocab": "application/json"}
    request = {"TrainingJobName": "seq2seq-test",
               "AlgorithmSpecification": {"TrainingImage": "seq2seq", "TrainingInputMode": "File"},
               "HyperParameters": {k: str(v) for k, v in hps.items()},
               "InputDataConfig": [{"ChannelName": c, "ContentType": types[c]} for c in channels],
               "ResourceConfig": {"InstanceType": "local", "InstanceCount": instances}}
    if checkpoints is not None:
        request["CheckpointConfig"] = {"LocalPath": str(checkpoints)}
    root = write_job_configs(JobRoot(path), request)
    for name, folder in channels.items():
        shutil.copytree(folder, root.channel_dir(name), dirs_exist_ok=True)
    return root


def reversal_data(tmp_path: Path, n=60, **kw) -> dict:
    pairs = reversal_pairs(n, min_length=2, max_length=8, vocab=8, **kw)
    return prepare(pairs, pairs[:10], tmp_path / "data").channels()


def train_in_process(tmp_path: Path, hps: dict, channels: dict | None = None, **kw) -> JobRoot:
    root = make_root(tmp_path / "root", hps, channels or reversal_data(tmp_path), **kw)
    SEQ2SEQ.train(TrainingEnvironment(root))
    return root


@pytest.fixture(scope="module")
def numbers(tmp_path_factory):
    """A model trained on 400 numbers below 1000 (English -> French words), its 100 held-out pairs and data."""
    tmp = tmp_path_factory.mktemp("seq2seq-numbers")
    pairs = number_pairs(500, high=1000, seed=0)
    data = prepare(pairs[:400], pairs[400:], tmp / "data")
    hps = {"max_num_epochs": "5", "rnn_num_hidden": "48", "num_embed_source": "32", "num_embed_target": "32",
           "batch_size": "32", "learning_rate": "0.01", "beam_size": "3", "rnn_attention_type": "bilinear"}
    root = make_root(tmp / "root", hps, data.channels())
    SEQ2SEQ.train(TrainingEnvironment(root))
    return root.model_dir, pairs[400:], data


# ---- data as SageMaker's tools write it ----------------------------------------------------------
def _sdk_record_class():
    """The SDK's own aialgs Record (sagemaker/amazon/record_pb2.py), loaded without importing the SDK (slow)."""
    import importlib.util
    spec = importlib.util.find_spec("sagemaker")
    if spec is None:
        pytest.skip("the SageMaker Python SDK is not installed")
    path = Path(spec.origin).parent / "amazon" / "record_pb2.py"
    module_spec = importlib.util.spec_from_file_location("sdk_record_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.Record


def test_records_written_as_sagemakers_create_vocab_proto_writes_them_are_read(tmp_path):
    import struct
    from nbsage.algorithms.seq2seq.records import read_pairs
    Record = _sdk_record_class()
    path = tmp_path / "train.rec"
    with open(path, "wb") as f:
        for source, target in [([4, 5, 6], [7, 8]), ([9], [4, 4, 4, 4])]:
            record = Record()  # create_vocab_proto.py's list_to_record_bytes and write_recordio
            record.features["source"].int32_tensor.values.extend(source)
            record.features["target"].int32_tensor.values.extend(target)
            data = record.SerializeToString()
            f.write(struct.pack("I", 0xCED7230A) + struct.pack("I", len(data)) + data)
            f.write(bytes(((len(data) + 3) >> 2 << 2) - len(data)))
    pairs = read_pairs([path], (10, 10), (100, 100), "train", print)
    assert [s.tolist() for s in pairs.source] == [[4, 5, 6], [9]]
    assert [t.tolist() for t in pairs.target] == [[7, 8], [4, 4, 4, 4]]


def test_prepare_writes_the_vocab_layout_of_create_vocab_proto(tmp_path):
    prepared = prepare([("a b b", "x y"), ("b c", "y y z"), ("", "dropped")], [("b a d", "y x")], tmp_path)
    vocab = json.loads((tmp_path / "vocab" / "vocab.src.json").read_text())
    assert vocab == {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "b": 4, "c": 5, "a": 6}  # count, then reverse order
    assert json.loads((tmp_path / "vocab" / "vocab.trg.json").read_text())["y"] == 4
    assert prepared.counts == {"train": 2, "skipped": 1, "validation": 1}
    from nbsage.formats.recordio_protobuf import read_records
    first = read_records(tmp_path / "validation" / "val.rec")[0]
    assert list(first.features["source"].int32_tensor.values) == [4, 6, 1]  # unknown 'd' -> <unk>
    assert sorted(prepared.channels()) == ["train", "validation", "vocab"]


def test_the_cli_prepares_parallel_text_files(tmp_path, capsys):
    (tmp_path / "train.en").write_text("one two\nthree\n")
    (tmp_path / "train.fr").write_text("un deux\ntrois\n")
    from nbsage.cli import main
    assert main(["seq2seq-prepare", "--train-source", str(tmp_path / "train.en"), "--train-target",
                 str(tmp_path / "train.fr"), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "train" / "train.rec").exists()
    assert json.loads((tmp_path / "out" / "vocab" / "vocab.trg.json").read_text())["trois"] >= 4
    assert "2 training pairs (0 with an empty side skipped); vocabularies of 7 and 7 tokens" in capsys.readouterr().out


# ---- training ------------------------------------------------------------------------------------
def test_a_job_logs_sagemaker_metrics_and_leaves_the_model_files(tmp_path, capsys):
    # (the contract tests run a Seq2Seq job through `python -m nbsage.runtime train` and read its model.tar.gz)
    root = train_in_process(tmp_path, {**TINY, "max_num_epochs": "2", "bleu_sample_size": "-1"})
    out = capsys.readouterr().out
    assert re.search(r"Checkpoint \[1\]\tUpdates=\d+ Epoch=\d+ Train-perplexity=\S+ Validation-perplexity=\S+ "
                     r"Validation-accuracy=\S+ Validation-bleu=\S+", out)
    for definition in SEQ2SEQ.metric_definitions():
        assert re.search(definition["Regex"], out), definition["Name"]
    final = {m[0]: float(m[1]) for m in re.findall(r"^#metric (\S+)=(\S+)$", out, re.M)}
    assert {"validation:bleu", "validation:perplexity", "validation:accuracy"} <= set(final)
    assert "#progress step=2 total=2" in out
    assert sorted(p.name for p in root.model_dir.iterdir()) == ["config.json", "params.best", "vocab.src.json",
                                                               "vocab.trg.json"]


def test_the_model_translates_held_out_numbers(numbers):
    model_dir, held_out, _ = numbers
    handler = SEQ2SEQ.load(str(model_dir))
    from nbsage.algorithms.seq2seq.evaluation import bleu
    hyps = handler.translator.translate([s for s, _ in held_out])
    assert bleu(hyps, [t for _, t in held_out]) > 60  # about 90 on a quiet machine


def test_a_job_started_again_with_the_same_checkpoints_resumes_where_it_stopped(tmp_path, capsys):
    channels = reversal_data(tmp_path)
    checkpoints = tmp_path / "checkpoints"
    hps = {**TINY, "checkpoint_frequency_num_batches": "2", "max_num_batches": "4", "max_num_epochs": "10"}
    make = lambda name, extra: make_root(tmp_path / name, {**hps, **extra}, channels, checkpoints=checkpoints)  # noqa: E731
    SEQ2SEQ.train(TrainingEnvironment(make("first", {})))
    out = capsys.readouterr().out
    assert "Checkpoint [2]\tUpdates=4" in out and "Resuming" not in out
    assert sorted(p.name for p in checkpoints.iterdir()) == ["seq2seq-checkpoint-00000002.pt",
                                                             "seq2seq-checkpoint-00000004.pt"]
    SEQ2SEQ.train(TrainingEnvironment(make("second", {"max_num_batches": "8"})))
    out = capsys.readouterr().out
    assert "4 updates and 2 checkpoints done, continuing at epoch 1, batch 0" in out
    assert "Checkpoint [3]\tUpdates=6" in out and "Checkpoint [4]\tUpdates=8" in out and "Updates=2 " not in out


@pytest.mark.parametrize("hps", [
    {"rnn_attention_type": "mlp"}, {"rnn_attention_type": "dot", "rnn_cell_type": "gru"},
    {"rnn_attention_type": "fixed", "rnn_decoder_state_init": "avg", "num_layers_decoder": "2",
     "rnn_attention_in_upper_layers": "false"},
    {"encoder_type": "cnn", "cnn_num_hidden": "16", "num_layers_encoder": "2", "rnn_decoder_state_init": "zero"},
    {"num_layers_encoder": "3", "num_layers_decoder": "2", "rnn_residual_connections": "true",
     "optimizer_type": "sgd", "momentum": "0.9", "weight_init_type": "uniform", "weight_init_scale": "0.1",
     "bucketing_enabled": "false", "lr_scheduler_type": "fixed_rate_inv_sqrt_t", "training_metric": "accuracy"},
    {"optimizer_type": "rmsprop", "encoder_type": "cnn", "cnn_activation_type": "relu", "cnn_kernel_width_encoder": "4",
     "embed_dropout_source": "0.1", "rnn_decoder_hidden_dropout": "0.2", "lr_scheduler_type": "fixed_rate_inv_t"},
], ids=["mlp", "dot-gru", "fixed-avg", "cnn-zero", "deep-residual-sgd", "cnn-relu-rmsprop"])
def test_every_encoder_attention_and_optimizer_trains_and_translates(tmp_path, hps, capsys):
    root = train_in_process(tmp_path, {**TINY, "max_num_batches": "3", **hps})
    assert "Validation-perplexity=nan" not in capsys.readouterr().out
    handler = SEQ2SEQ.load(str(root.model_dir))
    body = json.dumps({"instances": [{"data": "w1 w2 w3", "configuration": {"attention_matrix": "true"}}]})
    prediction = json.loads(handler.invoke(body.encode(), "application/json", "application/json")[0])["predictions"][0]
    rows = prediction["matrix"]  # [target words][source words]
    assert len(rows) == len(prediction["target"].split()) and all(len(row) == 3 for row in rows)
    assert all(np.isfinite(row).all() and abs(sum(row) - 1) < 1e-4 for row in rows)


def test_early_stopping_keeps_the_best_checkpoint(tmp_path, capsys):
    # a learning rate too small to learn: validation perplexity wanders, checkpoint_threshold runs out
    train_in_process(tmp_path, {**TINY, "max_num_epochs": "50", "checkpoint_frequency_num_batches": "1",
                                "checkpoint_threshold": "2", "learning_rate": "1e-9", "optimized_metric": "accuracy"})
    out = capsys.readouterr().out
    assert "(checkpoint_threshold=2). Stopping training." in out
    values = [float(v) for v in re.findall(r"batch=\d+ validation accuracy <score>=(\S+)", out)]
    best = float(re.search(r"host=algo-1, validation accuracy <score>=(\S+)", out).group(1))
    assert best == max(values) and len(values) < 50


@pytest.mark.parametrize("cell, layers, upper", [("lstm", 3, True), ("gru", 2, False)])
def test_decoding_word_by_word_gives_the_training_decoders_outputs(cell, layers, upper):
    # input feeding: training's loop over the target and beam search's one-word steps are the same decoder
    from nbsage.algorithms.seq2seq.network import NetworkConfig, Seq2SeqNetwork, initialise
    torch.manual_seed(0)
    network = Seq2SeqNetwork(NetworkConfig(20, 25, cell_type=cell, num_layers_decoder=layers, rnn_num_hidden=16,
                                           num_embed_source=8, num_embed_target=8, attention_num_hidden=12,
                                           attention_in_upper_layers=upper, residual=True)).eval()
    initialise(network, "xavier", 2.34, "in")
    source, lengths = torch.randint(4, 20, (3, 6)), torch.tensor([6, 2, 4])
    source[1, 2:], source[2, 4:] = 0, 0
    target = torch.randint(4, 25, (3, 5))
    with torch.no_grad():
        memory = network.encode(source, lengths)
        state = network.initial_state(memory)
        whole, weights, _ = network.decode(target, memory, state)
        steps = []
        for t in range(target.shape[1]):
            logits, _, state = network.decode(target[:, t:t + 1], memory, state)
            steps.append(logits)
    assert torch.allclose(whole, torch.cat(steps, dim=1), atol=1e-5)
    assert float(weights[1, :, 2:].abs().max()) == 0.0  # no attention on padding


def test_batches_come_from_sockeyes_diagonal_buckets_each_one_full():
    from nbsage.algorithms.seq2seq.records import Pairs
    from nbsage.algorithms.seq2seq.training import Batches, parallel_buckets
    # target longer on average: the source steps shrink by the ratio; each side stops at its maximum
    assert parallel_buckets(25, 31, 10, 1.25) == [(8, 10), (16, 20), (24, 30), (25, 31)]
    assert parallel_buckets(20, 21, 10, 0.9) == [(10, 9), (20, 18), (20, 21)]
    pairs = reversal_pairs(70, min_length=2, max_length=19, vocab=8, seed=0)
    ids = lambda sentence: np.full(len(sentence.split()), 4)  # noqa: E731 (only the lengths matter)
    batches = Batches(Pairs([ids(s) for s, _ in pairs], [ids(t) for _, t in pairs]), 16, 10, True, "cpu")
    epoch = batches.epoch(0, 0)
    assert all(len(b) == 16 for b in epoch) and set(np.concatenate(epoch)) == set(range(70))
    assert all(len(set(batches.buckets[b])) == 1 for b in epoch)


def test_a_model_saved_before_input_feeding_loads_and_a_mismatched_one_is_named(tmp_path):
    from nbsage.algorithms.seq2seq.network import NetworkConfig, Seq2SeqNetwork
    from nbsage.algorithms.seq2seq.translator import CONFIG, Translator
    data = prepare([("a b", "b a"), ("c a", "a c")], [("a b", "b a")], tmp_path / "data")
    old = Seq2SeqNetwork(NetworkConfig(len(data.source_vocab), len(data.target_vocab), rnn_num_hidden=8,
                                       num_embed_source=4, num_embed_target=4, attention_num_hidden=8,
                                       input_feeding=False))
    settings = {"beam_size": 2, "max_seq_len_source": 10, "max_seq_len_target": 10, "hyperparameters": {}}
    Translator(old, data.source_vocab, data.target_vocab, settings).save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / CONFIG).read_text())
    for key in ("input_feeding", "attention_in_upper_layers"):
        del config["network"][key]
    (tmp_path / "model" / CONFIG).write_text(json.dumps({**config, "format_version": 1}))  # as nbsage wrote it then
    loaded = Translator.load(tmp_path / "model")
    assert loaded.network.config.input_feeding is False and len(loaded.translate(["a b"])) == 1
    (tmp_path / "model" / CONFIG).write_text(json.dumps({**config, "format_version": 2}))
    with pytest.raises(DataError, match=r"params.best does not match the network .*config.json describes"):
        Translator.load(tmp_path / "model")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_instance_type_trains_on_cuda(tmp_path, capsys):
    root = make_root(tmp_path / "gpu", {**TINY, "max_num_batches": "3"}, reversal_data(tmp_path))
    config = root.read_config("resourceconfig.json")
    root.write_config("resourceconfig.json", {**config, "current_instance_type": "ml.p3.2xlarge"})
    SEQ2SEQ.train(TrainingEnvironment(root))
    assert "Training on cuda" in capsys.readouterr().out


# ---- inference -------------------------------------------------------------------------------------
def test_json_request_is_answered_in_the_spec_shape(numbers):
    model_dir, held_out, _ = numbers
    handler = SEQ2SEQ.load(str(model_dir))
    request = {"instances": [{"data": held_out[0][0]},
                             {"data": held_out[1][0], "configuration": {"attention_matrix": "true"}}]}
    body, ctype = handler.invoke(json.dumps(request).encode(), "application/json", None)
    answer = json.loads(body)
    assert ctype == "application/json" and len(answer["predictions"]) == 2
    assert set(answer["predictions"][0]) == {"target"}
    second = answer["predictions"][1]
    assert np.array(second["matrix"]).shape == (len(second["target"].split()), len(held_out[1][0].split()))
    greedy = json.loads(handler.invoke(json.dumps({"instances": [{"data": held_out[0][0]}],
                                                    "configuration": {"beam_size": 1}}).encode(),
                                       "application/json", None)[0])
    assert isinstance(greedy["predictions"][0]["target"], str)


def test_recordio_and_jsonlines_requests(numbers):
    model_dir, held_out, data = numbers
    handler = SEQ2SEQ.load(str(model_dir))
    from nbsage.algorithms.seq2seq.records import encode_pair
    from nbsage.formats.recordio_protobuf import frame, read_records
    sources = [data.source_vocab.encode(s) for s, _ in held_out[:3]]
    body = b"".join(frame(encode_pair(s, [])) for s in sources)
    answer, ctype = handler.invoke(body, RECORDIO, RECORDIO)
    records = read_records(answer)
    assert ctype == RECORDIO and len(records) == 3
    as_json = json.loads(handler.invoke(json.dumps({"instances": [{"data": s} for s, _ in held_out[:3]]}).encode(),
                                        "application/json", None)[0])["predictions"]
    for record, prediction in zip(records, as_json):
        assert data.target_vocab.decode(record.features["target"].int32_tensor.values) == prediction["target"]
    lines = "".join(json.dumps({"source": s}) + "\n" for s, _ in held_out[:2]).encode()
    out = handler.invoke(lines, "application/jsonlines", "application/jsonlines")[0].decode().splitlines()
    assert [json.loads(line)["target"] for line in out] == [p["target"] for p in as_json[:2]]


# ---- bad input ---------------------------------------------------------------------------------------
def test_records_longer_than_max_seq_len_are_truncated_with_a_warning(tmp_path, capsys):
    train_in_process(tmp_path, {**TINY, "max_seq_len_source": "3", "max_seq_len_target": "4", "max_num_batches": "1"})
    out = capsys.readouterr().out
    assert re.search(r"WARNING: channel 'train': \d+ source and \d+ target sequences were longer than "
                     r"max_seq_len_source/max_seq_len_target and were truncated \(the first: channel 'train', "
                     r"train.rec, record \d+, source of \d+ tokens cut to 3\)", out)


def test_a_token_id_outside_the_vocabulary_names_the_record(tmp_path):
    channels = reversal_data(tmp_path)
    from nbsage.algorithms.seq2seq.records import write_pairs
    write_pairs(Path(channels["train"]) / "train.rec", [([4, 5], [6]), ([4, 99], [5])])
    with pytest.raises(DataError, match=r"channel 'train', train.rec, record 1: source\[1\] = 99 is outside the "
                                        r"vocabulary; token ids must be from 0 to 11 \(vocab.src.json has 12 entries\)"):
        train_in_process(tmp_path, TINY, channels)


@pytest.mark.parametrize("content, rule", [
    ('["<pad>", "<unk>"]', "found a JSON list"),
    ('{"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": "four"}', "token 'a' has id \"four\""),
    ('{"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": 3}', "share id 3"),
    ('{"<unk>": 1, "<s>": 2, "</s>": 3, "a": 0}', "'<pad>' has id null, expected 0"),
    ("not json", "not valid JSON"),
])
def test_a_vocab_file_that_is_not_an_object_of_token_ids_is_refused(tmp_path, content, rule):
    channels = reversal_data(tmp_path)
    (Path(channels["vocab"]) / "vocab.trg.json").write_text(content)
    with pytest.raises(DataError, match=r"vocab\.trg\.json: .*" + re.escape(rule)):
        train_in_process(tmp_path, TINY, channels)


def test_inference_errors_name_the_instance_and_rule(numbers):
    model_dir, _, _ = numbers
    handler = SEQ2SEQ.load(str(model_dir))

    def ask(doc, content_type="application/json"):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return handler.invoke(body, content_type, None)

    with pytest.raises(InvalidRequest, match=r"has no 'instances' \(found 'data'\)"):
        ask({"data": "one"})
    with pytest.raises(InvalidRequest, match=r"instances\[1\]: expected \{\"data\": \"source sentence\"\}"):
        ask({"instances": [{"data": "one"}, {"text": "two"}]})
    with pytest.raises(InvalidRequest, match=r"instances\[0\]: 'attention' is not a Seq2Seq inference setting"):
        ask({"instances": [{"data": "one", "configuration": {"attention": "true"}}]})
    with pytest.raises(InvalidRequest, match=r"attention_matrix = \"yes\" is not valid"):
        ask({"instances": [{"data": "one"}], "configuration": {"attention_matrix": "yes"}})
    from nbsage.algorithms.seq2seq.records import encode_pair
    from nbsage.formats.recordio_protobuf import frame
    with pytest.raises(InvalidRequest, match=r"record 1: source\[0\] = 100000 is outside the vocabulary"):
        ask(frame(encode_pair([4], [])) + frame(encode_pair([100000], [])), RECORDIO)
    assert json.loads(ask({"instances": [{"data": "one"}]})[0])["predictions"]  # still answers


def test_hyperparameter_rules_across_values():
    with pytest.raises(HyperparameterError, match="'rnn_num_hidden' = 15 .* expected an even number"):
        SEQ2SEQ.validate({"rnn_num_hidden": "15"})
    with pytest.raises(HyperparameterError, match="'decoder_type' = 'cnn' is not supported"):
        SEQ2SEQ.validate({"decoder_type": "cnn"})
    assert SEQ2SEQ.validate({"rnn_num_hidden": "64"})["rnn_attention_num_hidden"] == 64
    assert SEQ2SEQ.validate({"encoder_type": "cnn", "rnn_num_hidden": "15"})["rnn_num_hidden"] == 15


def test_more_than_one_instance_is_refused_as_sagemaker_does(tmp_path):
    root = make_root(tmp_path / "two", TINY, reversal_data(tmp_path), instances=2)
    with pytest.raises(ValidationError, match="Seq2Seq trains on a single instance.*InstanceCount 2"):
        SEQ2SEQ.train(TrainingEnvironment(root))
