"""Channels as SageMaker delivers them: File, FastFile and Pipe input modes, Gzip, ShardedByS3Key,
ShuffleConfig, and built-in algorithms that read every content type they declare and reject the
others before training."""
from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbsage.backends.pipe_feeder import PipeFeeder, write_objects
from nbsage.backends.staging import list_channel_objects, prepare_root, select_objects, stage_channel
from nbsage.errors import ChannelError
from nbsage.estimator import Estimator
from nbsage.formats import recordio_protobuf
from nbsage.inputs import ShuffleConfig, TrainingInput
from nbsage.runtime.environment import TrainingEnvironment
from nbsage.runtime.layout import JobRoot
from nbsage.session import Session
from support import wait_for


@pytest.fixture
def parts(tmp_path) -> Path:
    """A channel folder of 7 small CSV objects, one row each (the row says which object it is)."""
    folder = tmp_path / "parts"
    (folder / "sub").mkdir(parents=True)
    for i in range(7):
        where = folder / "sub" if i % 3 == 0 else folder
        (where / f"part-{i}.csv").write_text(f"{i},{i * 10}\n")
    (folder / ".hidden").write_text("not data")
    return folder


def rows(folder: Path) -> list[int]:
    return sorted(int(p.read_text().split(",")[0]) for p in folder.rglob("*.csv"))


def request_for(uri: str, **channel) -> dict:
    mode = channel.pop("InputMode", "File")
    ch = {"ChannelName": "train", "InputMode": mode,
          "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                          "S3DataDistributionType": channel.pop("distribution", "FullyReplicated")}}}
    ch.update(channel)
    return {"TrainingJobName": "job", "AlgorithmSpecification": {"TrainingInputMode": mode},
            "HyperParameters": {}, "InputDataConfig": [ch], "OutputDataConfig": {"S3OutputPath": "/tmp"},
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": "local"}}


def read_fifo(path: Path, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    with open(path, "rb") as f:
        return f.read()


# ---- File mode: gzip, sharding, shuffle -----------------------------------------------------------
def test_file_mode_copies_every_object_and_skips_hidden_files(parts, tmp_path):
    assert stage_channel(str(parts), tmp_path / "dest", "train") == 7
    assert rows(tmp_path / "dest") == list(range(7))
    assert (tmp_path / "dest" / "sub" / "part-3.csv").is_file()
    assert not (tmp_path / "dest" / ".hidden").exists()


def test_gzip_channel_is_decompressed_in_file_mode_and_loses_its_gz_suffix(tmp_path):
    src = tmp_path / "gz"
    src.mkdir()
    with gzip.open(src / "train.csv.gz", "wt") as f:
        f.write("1,2\n3,4\n")
    stage_channel(str(src), tmp_path / "dest", "train", compression="Gzip")
    assert (tmp_path / "dest" / "train.csv").read_text() == "1,2\n3,4\n"
    assert not (tmp_path / "dest" / "train.csv.gz").exists()


def test_gzip_channel_holding_plain_data_fails_naming_the_object(tmp_path):
    src = tmp_path / "plain"
    src.mkdir()
    (src / "train.csv").write_text("1,2\n")
    with pytest.raises(ChannelError, match=r"CompressionType is Gzip, and .*train\.csv is not gzip data"):
        stage_channel(str(src), tmp_path / "dest", "train", compression="Gzip")


def test_sharded_by_s3_key_gives_two_hosts_disjoint_shards_that_cover_the_channel(parts, tmp_path):
    for host in (0, 1):
        stage_channel(str(parts), tmp_path / f"host{host}", "train", distribution="ShardedByS3Key",
                      host_index=host, host_count=2)
    shard0, shard1 = rows(tmp_path / "host0"), rows(tmp_path / "host1")
    assert not set(shard0) & set(shard1)
    assert sorted(shard0 + shard1) == list(range(7))
    # host i gets objects i, i+2, ... of the sorted keys: part-1, part-2, part-4, part-5, sub/part-0, ...
    assert shard0 == [0, 1, 4, 6]


def test_fully_replicated_gives_every_host_every_object(parts, tmp_path):
    for host in (0, 1):
        stage_channel(str(parts), tmp_path / f"host{host}", "train", host_index=host, host_count=2)
        assert rows(tmp_path / f"host{host}") == list(range(7))


def test_shuffle_config_seed_shuffles_before_sharding_reproducibly(parts):
    objects = list_channel_objects(str(parts), "train")
    plain = [o.key for o in select_objects(objects, "ShardedByS3Key", 0, 2)]
    shuffled = [o.key for o in select_objects(objects, "ShardedByS3Key", 0, 2, shuffle_seed=7)]
    again = [o.key for o in select_objects(objects, "ShardedByS3Key", 0, 2, shuffle_seed=7)]
    other_host = [o.key for o in select_objects(objects, "ShardedByS3Key", 1, 2, shuffle_seed=7)]
    assert shuffled == again
    assert shuffled != plain
    assert sorted(shuffled + other_host) == sorted(o.key for o in objects)
    epoch1 = [o.key for o in select_objects(objects, "FullyReplicated", 0, 1, shuffle_seed=7, epoch=1)]
    assert epoch1 != [o.key for o in select_objects(objects, "FullyReplicated", 0, 1, shuffle_seed=7)]


def test_prepare_root_stages_the_shard_of_the_host_it_prepares(parts, tmp_path):
    request = request_for(str(parts), distribution="ShardedByS3Key", ShuffleConfig={"Seed": 3})
    request["ResourceConfig"]["InstanceCount"] = 2
    got = []
    for host in (0, 1):
        root = prepare_root(JobRoot(tmp_path / f"root{host}"), request, host_index=host)
        assert json.loads((root.config_dir / "resourceconfig.json").read_text())["current_host"] == f"algo-{host + 1}"
        got.append(rows(root.channel_dir("train")))
    assert not set(got[0]) & set(got[1]) and sorted(got[0] + got[1]) == list(range(7))


def test_training_input_rejects_unknown_distribution_with_a_suggestion():
    with pytest.raises(ChannelError, match="did you mean 'ShardedByS3Key'"):
        TrainingInput("s3://b/p", distribution="ShardedByS3key")
    with pytest.raises(ChannelError, match="File and Pipe"):
        TrainingInput("s3://b/p", compression="Gzip", input_mode="FastFile")
    assert TrainingInput("s3://b/p", shuffle_config=ShuffleConfig(5)).config("s3://b/p")["ShuffleConfig"] == {"Seed": 5}


# ---- FastFile ---------------------------------------------------------------------------------------
def test_fastfile_local_channel_is_links_to_the_source_files_not_copies(parts, tmp_path):
    stage_channel(str(parts), tmp_path / "dest", "train", input_mode="FastFile")
    link = tmp_path / "dest" / "part-1.csv"
    assert link.is_symlink() and link.resolve() == (parts / "part-1.csv").resolve()
    assert rows(tmp_path / "dest") == list(range(7))


def test_fastfile_remote_channel_is_fetched_once_into_a_read_only_cache(tmp_path):
    import fsspec
    fs = fsspec.filesystem("memory")
    fs.pipe({"/ff/data/a.csv": b"1,2\n", "/ff/data/b.csv": b"3,4\n"})
    cache = tmp_path / "cache"
    stage_channel("memory://ff/data", tmp_path / "dest", "train", input_mode="FastFile", cache_dir=cache)
    target = (tmp_path / "dest" / "a.csv").resolve()
    assert target.is_relative_to(cache) and target.read_text() == "1,2\n"
    assert not os.stat(target).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    before = os.stat(target).st_mtime_ns
    stage_channel("memory://ff/data", tmp_path / "dest2", "train", input_mode="FastFile", cache_dir=cache)
    assert (tmp_path / "dest2" / "a.csv").resolve() == target and os.stat(target).st_mtime_ns == before
    fs.pipe({"/ff/data/a.csv": b"5,6\n"})  # a changed object is fetched again
    stage_channel("memory://ff/data", tmp_path / "dest3", "train", input_mode="FastFile", cache_dir=cache)
    assert (tmp_path / "dest3" / "a.csv").read_text() == "5,6\n"
    fs.rm("/ff", recursive=True)


# ---- Pipe ---------------------------------------------------------------------------------------------
def test_pipe_feeder_writes_each_epoch_gunzipped_into_its_own_fifo(tmp_path):
    src = tmp_path / "gz"
    src.mkdir()
    for name, text in (("a.csv.gz", "1,2\n"), ("b.csv.gz", "3,4\n")):
        with gzip.open(src / name, "wt") as f:
            f.write(text)
    request = request_for(str(src), InputMode="Pipe", CompressionType="Gzip")
    root = prepare_root(JobRoot(tmp_path / "root"), request)
    assert not root.channel_dir("train").exists()  # Pipe mode stages nothing
    with PipeFeeder(root, request):
        assert read_fifo(root.data_dir / "train_0") == b"1,2\n3,4\n"
        assert read_fifo(root.data_dir / "train_1") == b"1,2\n3,4\n"
        assert not (root.data_dir / "train_0").exists()  # a finished epoch's FIFO is removed
    assert not list(root.data_dir.glob("train_*"))


def test_pipe_reader_that_closes_early_gets_the_next_epoch_whole(tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    (src / "big.csv").write_bytes(b"1,2\n" * 300_000)  # larger than a pipe buffer
    request = request_for(str(src), InputMode="Pipe")
    root = prepare_root(JobRoot(tmp_path / "root"), request)
    with PipeFeeder(root, request):
        read_fifo(root.data_dir / "train_0", timeout=10)
        path = root.data_dir / "train_1"
        wait_for(path.exists, 30, f"{path} to appear")
        with open(path, "rb") as f:
            assert f.read(4) == b"1,2\n"  # and close early
        assert len(read_fifo(root.data_dir / "train_2")) == 1_200_000


def test_record_wrapper_recordio_wraps_each_object_as_one_record(tmp_path):
    src = tmp_path / "objs"
    src.mkdir()
    (src / "a.bin").write_bytes(b"first object")
    (src / "b.bin").write_bytes(b"second")
    out = io.BytesIO()
    write_objects(out, list_channel_objects(str(src), "train"), "train", record_wrapper="RecordIO")
    out.seek(0)
    assert list(recordio_protobuf.iter_payloads(out)) == [b"first object", b"second"]


def test_environment_reads_pipe_epochs_and_spools_a_pipe_channel_for_algorithms(tmp_path):
    src = tmp_path / "csv"
    src.mkdir()
    (src / "a.csv").write_text("1,2\n")
    (src / "b.csv").write_text("3,4\n")
    request = request_for(str(src), InputMode="Pipe", ContentType="text/csv")
    root = prepare_root(JobRoot(tmp_path / "root"), request)
    with PipeFeeder(root, request):
        env = TrainingEnvironment(root)
        files = env.channel_files("train")
        assert [p.read_text() for p in files] == ["1,2\n3,4\n"]
        assert env.channel_files("train") == files  # spooled once
        with env.open_channel("train") as stream:  # epoch 1
            assert stream.read() == b"1,2\n3,4\n"
        epochs = env.pipe_epochs("train")
        path = next(epochs)
        assert path.name == "train_2"
        assert read_fifo(path) == b"1,2\n3,4\n"


def test_environment_open_channel_concatenates_a_file_mode_channel(parts, tmp_path):
    root = prepare_root(JobRoot(tmp_path / "root"), request_for(str(parts)))
    with TrainingEnvironment(root).open_channel("train") as stream:
        assert sorted(int(line.split(b",")[0]) for line in stream.read().splitlines()) == list(range(7))


PIPE_SCRIPT = """
import json, os, sys
parent = os.path.dirname(os.environ["SM_CHANNEL_TRAIN"])
epochs = []
for epoch in range(2):
    with open(os.path.join(parent, f"train_{epoch}"), "rb") as f:
        epochs.append(f.read().decode())
print("inputdataconfig", json.dumps(json.load(open(os.environ["SM_INPUT_CONFIG_DIR"] + "/inputdataconfig.json"))))
with open(os.path.join(os.environ["SM_MODEL_DIR"], "epochs.json"), "w") as f:
    json.dump(epochs, f)
"""


def model_file(job, name: str) -> bytes:
    with tarfile.open(job.model_data) as tar:
        return tar.extractfile(name).read()


def test_script_reads_pipe_fifos_epoch_by_epoch_in_a_real_job(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(PIPE_SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    with gzip.open(data / "a.csv.gz", "wt") as f:
        f.write("1,2\n")
    with gzip.open(data / "b.csv.gz", "wt") as f:
        f.write("3,4\n")
    est = Estimator(entry_point="train.py", source_dir=str(src), input_mode="Pipe")
    job = est.fit({"train": TrainingInput(str(data), compression="Gzip", content_type="text/csv")}, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    assert json.loads(model_file(job, "epochs.json")) == ["1,2\n3,4\n", "1,2\n3,4\n"]
    logged = next(line for line in job.logs() if line.startswith("inputdataconfig"))
    cfg = json.loads(logged.split(" ", 1)[1])["train"]
    assert cfg["TrainingInputMode"] == "Pipe" and cfg["CompressionType"] == "Gzip"
    root = Session.default().jobs_dir / job.name / "opt_ml"
    assert not list((root / "input" / "data").glob("train_*"))  # the feeder cleaned up


# ---- content types of the built-in algorithms ----------------------------------------------------------
def test_algorithm_given_a_content_type_it_cannot_read_fails_before_training(tmp_path):
    data = tmp_path / "x.csv"
    data.write_text("1,2\n")
    est = Estimator("xgboost", {"num_round": 2})
    with pytest.raises(ChannelError, match=r"XGBoost cannot read content type 'image/png'; it accepts .*text/csv"):
        est.fit({"train": TrainingInput(str(data), content_type="image/png")}, logs=False)
    assert Session.default().list_training_jobs() == []


@pytest.mark.parametrize("name", __import__("nbsage.algorithms", fromlist=["names"]).names())
def test_every_algorithm_rejects_an_unreadable_content_type_naming_the_accepted_ones(name):
    from nbsage import algorithms
    algorithm = algorithms.get(name)
    channel = algorithm.channels[0]
    with pytest.raises(ChannelError) as info:
        algorithm.check_channels({channel.name: "image/x-never"})
    assert all(ct in str(info.value) for ct in channel.content_types)


# content types the spec lists for the built-ins whose channels read labelled tables
SPEC_CONTENT_TYPES = {
    "xgboost": ("text/libsvm", "text/csv", "application/x-parquet", "application/x-recordio-protobuf"),
    "linear-learner": ("text/csv", "application/x-recordio-protobuf"),
}


@pytest.mark.parametrize("name", sorted(SPEC_CONTENT_TYPES))
def test_tabular_builtins_declare_every_content_type_the_spec_lists(name):
    from nbsage import algorithms
    for channel in algorithms.get(name).channels:
        assert set(SPEC_CONTENT_TYPES[name]) <= set(channel.content_types), channel.name


def separable(n: int = 240, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.float32)


@pytest.mark.parametrize("input_mode", ["File", "Pipe"])
def test_linear_learner_trains_on_recordio_protobuf_in_file_and_pipe_mode(input_mode):
    x, y = separable()
    est = Estimator("linear-learner", {"predictor_type": "binary_classifier", "epochs": 3}, input_mode=input_mode)
    job = est.fit({"train": TrainingInput((x, y), content_type="application/x-recordio-protobuf"),
                   "validation": TrainingInput((x[:60], y[:60]), content_type="application/x-recordio-protobuf")},
                  logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    assert job.final_metrics()["validation:binary_classification_accuracy"] > 0.9


def train_in_process(tmp_path: Path, algorithm: str, hyperparameters: dict, input_mode: str, **channels) -> JobRoot:
    """Stage a job root as the local place does and run the algorithm here, feeding Pipe channels."""
    from nbsage import algorithms
    from nbsage.inputs import channel_request
    request = request_for("unused")
    request["AlgorithmSpecification"] = {"TrainingInputMode": input_mode, "TrainingImage": algorithm}
    request["HyperParameters"] = {k: str(v) for k, v in hyperparameters.items()}
    request["InputDataConfig"] = [channel_request(name, ti, tmp_path / "staging") for name, ti in channels.items()]
    root = prepare_root(JobRoot(tmp_path / "root"), request)
    with PipeFeeder(root, request):
        algorithms.get(algorithm).train(TrainingEnvironment(root))
    return root


@pytest.mark.parametrize("content_type,input_mode", [
    ("text/csv", "File"), ("text/libsvm", "File"), ("application/x-parquet", "File"),
    ("application/x-recordio-protobuf", "File"), ("text/csv", "Pipe"), ("application/x-recordio-protobuf", "Pipe")])
def test_xgboost_trains_on_every_declared_content_type_and_in_pipe_mode(tmp_path, content_type, input_mode):
    import xgboost
    x, y = separable()
    frame = pd.DataFrame(np.column_stack([y, x]))
    root = train_in_process(tmp_path, "xgboost", {"num_round": 5, "objective": "binary:logistic"}, input_mode,
                            train=TrainingInput(frame, content_type=content_type),
                            validation=TrainingInput(frame.iloc[:60], content_type=content_type))
    if input_mode == "Pipe":
        assert not root.channel_dir("train").exists() and (root.input_dir / "pipe-spool" / "validation").is_dir()
    booster = xgboost.Booster()
    booster.load_model(bytearray((root.model_dir / "xgboost-model").read_bytes()))
    accuracy = ((booster.predict(xgboost.DMatrix(x)) > 0.5) == y).mean()
    assert accuracy > 0.9


def test_augmented_manifest_in_pipe_mode_streams_each_lines_attribute_names_as_records(tmp_path):
    manifest = tmp_path / "train.manifest"
    manifest.write_text('{"source": "a b c", "label": 1, "other": "x"}\n{"source": "d e", "label": 0}\n')
    request = request_for(str(manifest), InputMode="Pipe", RecordWrapperType="RecordIO")
    s3 = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    s3.update(S3DataType="AugmentedManifestFile", AttributeNames=["source", "label"])
    root = prepare_root(JobRoot(tmp_path / "root"), request)
    with PipeFeeder(root, request):
        stream = read_fifo(root.data_dir / "train_0")
    payloads = [json.loads(p) for p in recordio_protobuf.iter_payloads(io.BytesIO(stream))]
    assert payloads == ["a b c", 1, "d e", 0]  # each line's AttributeNames in order, "other" left out


def test_augmented_manifest_needs_attribute_names():
    from nbsage.errors import ChannelError
    from nbsage.inputs import TrainingInput
    with pytest.raises(ChannelError, match="AugmentedManifestFile' needs attribute_names"):
        TrainingInput("s3://bucket/train.manifest", s3_data_type="AugmentedManifestFile", input_mode="Pipe")
    ti = TrainingInput("s3://bucket/train.manifest", s3_data_type="AugmentedManifestFile",
                       attribute_names=["source", "label"], input_mode="Pipe", record_wrapping="RecordIO")
    assert ti.config("s3://bucket/train.manifest")["DataSource"]["S3DataSource"]["AttributeNames"] == ["source", "label"]
