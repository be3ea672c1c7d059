"""The contract every built-in algorithm keeps, checked from its declaration (as scikit-learn's
`estimator_checks` run one battery over every estimator):

- it trains on tiny data of each content type its channels declare, through the real runtime
  (`python -m nbsage.runtime train --root ROOT`), and ends with a model.tar.gz that its own `load`
  reads back;
- it rejects an invalid value of every hyperparameter, generated from the hyperparameter's
  declaration (kind, range, choices), with a HyperparameterError naming it — checked through the
  declaration's `validate` (no job needed), and once per algorithm through the runtime.

A new algorithm gets these checks by being registered; the one thing it must add here is a tiny
training setup in TINY (hyperparameters for a one- or two-round job, and which sample data it reads).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nbsage import algorithms
from nbsage.algorithms.base import Hyperparameter
from nbsage.errors import HyperparameterError
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot

RUN_TIMEOUT = 600  # one tiny job, generous for a busy machine


# ---- sample data, one writer per kind of data; each writes a channel folder in a content type -------

def tabular_rows(folder: Path, content_type: str) -> None:
    """40 labelled rows of 3 features, two classes, label first."""
    from nbsage import formats
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    y[:2] = (0, 1)  # both classes, whatever the draw
    formats.write(x, folder / f"train{formats.format_for(content_type).suffix}", content_type, labels=y)


def time_series(folder: Path, content_type: str) -> None:
    """4 hourly series of 120 points with a daily season (JSON Lines records, or the same as Parquet)."""
    t = np.arange(120)
    records = [{"start": "2024-01-01 00:00:00",
                "target": [round(float(v), 3) for v in 10 * (i + 1) * (1.5 + np.sin(2 * np.pi * t / 24 + i))]}
               for i in range(4)]
    if content_type == "application/x-parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.table({"start": [r["start"] for r in records], "target": [r["target"] for r in records]}),
                       folder / "train.parquet")
    else:  # application/jsonlines, application/json: one JSON record per line
        (folder / "train.json").write_text("".join(json.dumps(r) + "\n" for r in records))


def labelled_sentences(folder: Path, content_type: str) -> None:
    """40 labelled sentences: '__label__x words' lines, or an augmented manifest (plain or RecordIO-wrapped)."""
    words = {0: "red green blue yellow".split(), 1: "cat dog bird fish".split()}
    rows = [(i % 2, " ".join(words[i % 2][(i + k) % 4] for k in range(5))) for i in range(40)]
    if content_type == "text/plain":
        (folder / "train.txt").write_text("".join(f"__label__{label} {text}\n" for label, text in rows))
        return
    records = [json.dumps({"source": text, "label": label}) for label, text in rows]
    if content_type == "application/x-recordio":
        from nbsage.formats.recordio_protobuf import frame
        (folder / "train.rec").write_bytes(b"".join(frame(r.encode()) for r in records))
    else:  # application/jsonlines: an augmented manifest
        (folder / "train.manifest").write_text("".join(r + "\n" for r in records))


def sentence_pairs(folder: Path, content_type: str) -> None:
    """Seq2Seq's channels: 40 reversal pairs as RecordIO-protobuf records, or (in the vocab channel) the vocab files."""
    from nbsage.algorithms.seq2seq.preparation import prepare
    from nbsage.algorithms.seq2seq.sample_data import reversal_pairs
    pairs = reversal_pairs(40, min_length=2, max_length=6, vocab=8)
    prepared = prepare(pairs, pairs[:8], folder / ".prepared")
    source = {"vocab": prepared.vocab, "validation": prepared.validation}.get(folder.name, prepared.train)
    for f in source.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    import shutil
    shutil.rmtree(folder / ".prepared")


def token_pairs(folder: Path, content_type: str) -> None:
    """40 labelled pairs of token-id sequences (Object2Vec's JSON Lines records)."""
    (folder / "train.json").write_text("".join(
        json.dumps({"label": i % 2, "in0": [i % 7, 1 + i % 3], "in1": [(i + i % 2) % 7]}) + "\n" for i in range(40)))


def detection_images(folder: Path, content_type: str) -> None:
    """4 generated images with boxes: a .rec, or images with their JSON annotations beside them."""
    from nbsage.algorithms.object_detection import sample_data
    data = sample_data.make_dataset(4, 48, 2, seed=0)
    if content_type == "application/x-recordio":
        sample_data.write_recordio(data, folder.parent / ".recordio", "train")
        (folder / "train.rec").write_bytes((folder.parent / ".recordio" / "train.rec").read_bytes())
    elif content_type.startswith("image/") or content_type == "application/x-image":
        sample_data.write_json_annotations(data, folder, folder, num_classes=2,
                                           image_format="PNG" if content_type == "image/png" else "JPEG")
    # the annotation and model channels are left empty: the train channel carries the data


# algorithm -> (hyperparameters of a tiny one- or two-round job, the sample data it reads)
TINY = {
    "xgboost": ({"num_round": "2", "max_depth": "2", "objective": "binary:logistic"}, tabular_rows),
    "linear-learner": ({"predictor_type": "binary_classifier", "epochs": "1", "num_models": "1",
                        "mini_batch_size": "16"}, tabular_rows),
    "deepar": ({"time_freq": "H", "context_length": "24", "prediction_length": "12", "epochs": "1",
                "mini_batch_size": "16", "num_cells": "8", "num_layers": "1", "num_eval_samples": "10"},
               time_series),
    "blazingtext": ({"mode": "supervised", "epochs": "1", "min_count": "1", "vector_dim": "8",
                     "buckets": "1000"}, labelled_sentences),
    "seq2seq": ({"max_num_epochs": "1", "rnn_num_hidden": "8", "num_embed_source": "8", "num_embed_target": "8",
                 "batch_size": "16", "beam_size": "2"}, sentence_pairs),
    "object2vec": ({"enc0_max_seq_len": "4", "enc0_vocab_size": "8", "enc_dim": "4", "enc0_token_embedding_dim": "4",
                    "mlp_dim": "4", "epochs": "1"}, token_pairs),
    "object-detection": ({"num_classes": "2", "num_training_samples": "4", "epochs": "1", "mini_batch_size": "4",
                          "_small_image_shape": "48", "_network_width": "0.125"}, detection_images),
}


def tiny(name: str) -> tuple[dict, object]:
    assert name in TINY, (f"the built-in algorithm {name!r} has no tiny training setup: add its hyperparameters "
                          f"and sample data to TINY in {__file__}")
    return TINY[name]


def content_types(name: str) -> list[str]:
    """Every content type the algorithm's channels declare, in declaration order."""
    seen: list[str] = []
    for channel in algorithms.get(name).channels:
        seen += [ct for ct in channel.content_types if ct not in seen]
    return seen


# ---- invalid values from a declaration -----------------------------------------------------------

def invalid_values(hp: Hyperparameter) -> list:
    """Values `hp` must reject, from its kind, range and choices.

    Where the declaration generates them itself (`Hyperparameter.invalid_values`, from its kind object)
    those are used; otherwise they are made here from the declaration's fields, as the strings of
    hyperparameters.json.
    """
    own = getattr(hp, "invalid_values", None)
    if callable(own):
        return list(own())
    kind = str(hp.kind)
    accepted_words = {"auto"} if hp.allow_auto else set()
    accepted_words |= {str(w) for w in hp.extra_values}
    values: list[str] = []
    if kind in ("int", "float"):
        values.append("not-a-number")
        bounds = hp.range
        if bounds is not None and bounds.low is not None:
            values.append(_number(bounds.low - 1 if bounds.low_inclusive else bounds.low, kind))
        if bounds is not None and bounds.high is not None:
            values.append(_number(bounds.high + 1 if bounds.high_inclusive else bounds.high, kind))
        if kind == "int":
            fraction = (bounds.low if bounds is not None and bounds.low is not None else 0) + 1.5
            if bounds is None or fraction in bounds:
                values.append(str(fraction))
        if hp.choices:
            values.append(_number(max(hp.choices) + 1, kind))
    elif kind == "bool":
        values.append("maybe")
    elif kind in ("str", "list") and hp.choices:
        values.append("no-such-choice")
    elif kind == "list":
        values.append("[1, 2")  # a JSON list that does not parse
    elif kind == "json":
        values.append("{not json")
    return [v for v in dict.fromkeys(values) if v not in accepted_words]


def _number(value: float, kind: str) -> str:
    return str(int(value)) if kind == "int" and float(value).is_integer() else repr(float(value))


def invalid_cases() -> list:
    cases = []
    for name in algorithms.names():
        for hp in algorithms.get(name).hyperparameters:
            cases += [pytest.param(name, hp.name, value, id=f"{name}-{hp.name}={value!r}") for value in invalid_values(hp)]
    return cases


def test_the_invalid_value_generator_covers_every_kind_with_a_rule():
    """Every declared hyperparameter with a kind, range or choices that rules values out gets a value."""
    for name in algorithms.names():
        for hp in algorithms.get(name).hyperparameters:
            if str(hp.kind) != "str" or hp.choices:
                assert invalid_values(hp), f"{name}: no invalid value generated for {hp.name} ({hp.kind})"


@pytest.mark.parametrize("name", algorithms.names())
def test_the_tiny_setup_and_every_declared_default_validate(name):
    declaration = algorithms.get(name)
    hyperparameters, _ = tiny(name)
    declaration.validate(dict(hyperparameters))
    for hp in declaration.hyperparameters:
        if hp.default is not None and hp.name not in hyperparameters:
            declaration.validate({**hyperparameters, hp.name: hp.to_string(hp.default)})


@pytest.mark.parametrize("name, hyperparameter, value", invalid_cases())
def test_an_invalid_value_of_every_hyperparameter_is_rejected_naming_it(name, hyperparameter, value):
    declaration = algorithms.get(name)
    hyperparameters, _ = tiny(name)
    with pytest.raises(HyperparameterError) as error:
        declaration.validate({**hyperparameters, hyperparameter: value})
    assert repr(hyperparameter) in str(error.value), str(error.value)
    assert getattr(error.value, "hyperparameter", hyperparameter) == hyperparameter


# ---- training through the runtime ----------------------------------------------------------------

def job_root(path: Path, name: str, content_type: str, hyperparameters: dict) -> JobRoot:
    """A job root as a place stages it, with sample data in every required channel and in the first
    channel that declares content_type (a channel that does not declare it gets its own default type)."""
    declaration = algorithms.get(name)
    _, write_sample = tiny(name)
    declaring = next(c for c in declaration.channels if content_type in c.content_types)
    channels = {c.name: (content_type if content_type in c.content_types else c.default_content_type)
                for c in declaration.channels if c.required or c is declaring}
    request = {
        "TrainingJobName": f"contract-{name}",
        "AlgorithmSpecification": {"TrainingImage": name, "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters,
        "InputDataConfig": [{"ChannelName": channel, "ContentType": ct} for channel, ct in channels.items()],
        "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": RUN_TIMEOUT},
    }
    root = write_job_configs(JobRoot(path), request)
    for channel, ct in channels.items():
        root.channel_dir(channel).mkdir(parents=True, exist_ok=True)
        write_sample(root.channel_dir(channel), ct)
    return root


def run_train(root: JobRoot) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=str(root.path),
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def training_cases() -> list:
    return [pytest.param(name, ct, id=f"{name}-{ct}") for name in algorithms.names() for ct in content_types(name)]


@pytest.mark.parametrize("name, content_type", training_cases())
def test_every_algorithm_trains_on_each_declared_content_type_and_its_model_loads(tmp_path, name, content_type):
    hyperparameters, _ = tiny(name)
    root = job_root(tmp_path / "opt_ml", name, content_type, hyperparameters)
    result = run_train(root)
    assert result.returncode == 0, (root.failure_reason() if root.failure_file.exists() else "",
                                    result.stdout[-3000:], result.stderr[-3000:])
    assert root.success_file.exists() and root.model_archive.exists()
    unpacked = tmp_path / "model"
    with tarfile.open(root.model_archive) as tar:
        assert tar.getnames(), "model.tar.gz is empty"
        tar.extractall(unpacked)
    assert algorithms.get(name).load(str(unpacked)) is not None


@pytest.mark.parametrize("name", algorithms.names())
def test_the_runtime_fails_a_job_with_an_invalid_hyperparameter_naming_it(tmp_path, name):
    declaration = algorithms.get(name)
    hyperparameters, _ = tiny(name)
    hp, value = next((hp, values[0]) for hp in declaration.hyperparameters if (values := invalid_values(hp)))
    root = job_root(tmp_path / "opt_ml", name, declaration.channels[0].default_content_type,
                    {**hyperparameters, hp.name: str(value)})
    result = run_train(root)
    assert result.returncode != 0
    reason = root.failure_reason()
    assert repr(hp.name) in reason, reason
    assert not root.model_archive.exists()
