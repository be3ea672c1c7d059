"""BlazingText across instances: batch_skipgram trains one model on several hosts, as on SageMaker.

The jobs run on the local place (one runtime process per host) on a small generated corpus whose
word similarities are known (`sample_data.topic_corpus`); the vectors' quality is Spearman's rho
of their cosine similarities against that truth, as in test_blazingtext.py.
"""
from __future__ import annotations

import contextlib
import io
import re
import tarfile
from pathlib import Path

import fsspec
import numpy as np
import pytest

from nbsage import algorithms
from nbsage.algorithms.blazingtext import checkpoints
from nbsage.algorithms.blazingtext.evaluation import spearman
from nbsage.algorithms.blazingtext.sample_data import topic_corpus
from nbsage.errors import HyperparameterError
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.runtime.environment import TrainingEnvironment
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot
from nbsage.session import Session

ALGORITHM = algorithms.get("blazingtext")
HPS = {"mode": "batch_skipgram", "epochs": "10", "min_count": "2", "vector_dim": "32", "evaluation": "false"}
ARTIFACTS = {"vectors.txt", "vectors.bin", "model.bin"}


@pytest.fixture(scope="module")
def corpus():
    return topic_corpus(60_000, supers=4, topics_per_super=4, words_per_topic=8, seed=3, num_pairs=240)


def quality(vectors: dict, c) -> float:
    """Spearman's rho of the vectors' cosine similarities against the corpus's known similarity."""
    def cosine(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    return spearman([cosine(vectors[a], vectors[b]) for a, b, _ in c.pairs], [s for _, _, s in c.pairs])


def write_files(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def fit(hps: dict, folder: Path, instance_count: int, distribution: str | None = None, **estimator_args):
    """A finished job on the local place: (its description, its log lines, its model folder)."""
    session = Session.default()
    est = Estimator("blazingtext", hps, instance_count=instance_count, sagemaker_session=session,
                    **estimator_args)
    job = est.fit({"train": TrainingInput(str(folder), content_type="text/plain", distribution=distribution)},
                  wait=False)
    desc = job.wait_quietly(timeout=240)
    logs = job.logs()
    assert desc["TrainingJobStatus"] == "Completed", (desc.get("FailureReason"), "\n".join(logs[-40:]))
    model_dir = folder.parent / f"model-{job.name}"
    with fsspec.open(desc["ModelArtifacts"]["S3ModelArtifacts"], "rb") as f, tarfile.open(fileobj=f) as tar:
        assert ARTIFACTS <= set(tar.getnames())
        tar.extractall(model_dir)
    desc["metrics"] = session.store.get_metrics(job.name)
    return desc, logs, model_dir


def vectors_in(model_dir: Path) -> dict:
    model = ALGORITHM.load(model_dir).model
    return {w: model.vectors[i] for i, w in enumerate(model.words)}


def host_lines(logs: list[str], host: str, pattern: str) -> list[re.Match]:
    return [m for line in logs if line.startswith(f"[{host}] ") and (m := re.search(pattern, line))]


SHARE = r"Distributed training on 2 hosts \(rank (\d)\): (\d+) sentences, (\d+) words on this host of (\d+) words"


def test_two_instances_train_batch_skipgram_together_as_well_as_one(tmp_path, corpus):
    folder = write_files(tmp_path / "train", {"data.txt": "\n".join(corpus.sentences) + "\n"})
    _, _, one_dir = fit(HPS, folder, 1)
    one = quality(vectors_in(one_dir), corpus)

    desc, logs, two_dir = fit(HPS, folder, 2)
    two = quality(vectors_in(two_dir), corpus)
    assert two > 0.85 and two > one - 0.05, (one, two)
    # FullyReplicated: each host trained on its half of the sentences, the schedule on all words
    shares = {host: host_lines(logs, host, SHARE) for host in ("algo-1", "algo-2")}
    assert all(len(found) == 1 for found in shares.values()), shares
    (m1,), (m2,) = shares.values()
    assert (m1.group(1), m2.group(1)) == ("0", "1")
    assert int(m1.group(2)) + int(m2.group(2)) == len(corpus.sentences)
    assert int(m1.group(3)) + int(m2.group(3)) == int(m1.group(4)) == int(m2.group(4))
    for host in ("algo-1", "algo-2"):
        assert host_lines(logs, host, r"##### Alpha: 0\.0000  Progress: 100\.00%"), host
        assert len(host_lines(logs, host, r"Epoch \d+/10: loss on this host's share")) == 10
    # the master reports the loss over both hosts and writes the model; algo-2 writes none
    losses = [m for m in desc["metrics"] if m["name"] == "train:loss"]
    assert [int(m["step"]) for m in losses] == list(range(1, 11))
    assert host_lines(logs, "algo-1", r"Wrote vectors\.txt") and not host_lines(logs, "algo-2", r"Wrote vectors")


def test_a_sharded_channel_counts_words_over_all_hosts(tmp_path, corpus):
    # "rareword" is in each file once: with min_count=2 it is a word only if the hosts add up counts
    half = len(corpus.sentences) // 2
    files = {"part-a.txt": "\n".join(corpus.sentences[:half] + ["rareword " + corpus.sentences[0]]) + "\n",
             "part-b.txt": "\n".join(corpus.sentences[half:] + ["rareword " + corpus.sentences[1]]) + "\n"}
    folder = write_files(tmp_path / "train", files)
    _, logs, model_dir = fit(HPS, folder, 2, distribution="ShardedByS3Key")
    vectors = vectors_in(model_dir)
    assert "rareword" in vectors
    assert quality(vectors, corpus) > 0.85
    for host in ("algo-1", "algo-2"):
        assert host_lines(logs, host, r"Number of words: \d+ \(counted across 2 hosts\)"), host
    (m1,), (m2,) = (host_lines(logs, host, SHARE) for host in ("algo-1", "algo-2"))
    assert int(m1.group(2)) == half + 1 and int(m2.group(2)) == len(corpus.sentences) - half + 1


def test_two_instances_resume_from_the_masters_checkpoint(tmp_path, corpus):
    text = "\n".join(corpus.sentences) + "\n"
    hps = {**HPS, "epochs": "6"}
    # a checkpoint of this problem after 3 of 6 epochs, written by a job on one host
    root = JobRoot(tmp_path / "first")
    write_job_configs(root, {"AlgorithmSpecification": {"TrainingImage": "blazingtext", "TrainingInputMode": "File"},
                             "HyperParameters": hps,
                             "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/plain"}]})
    write_files(tmp_path / "first" / "input" / "data" / "train", {"data.txt": text})
    with contextlib.redirect_stdout(io.StringIO()):
        ALGORITHM.train(TrainingEnvironment(root.path))
    saved = root.path / "checkpoints"
    key = checkpoints.fingerprint(ALGORITHM.validate(hps), *_facts(root))
    state, arrays = checkpoints.load(saved, key, print)
    uri = tmp_path / "checkpoints"
    checkpoints.save(uri, key, {**state, "epochs_done": 3}, arrays)

    folder = write_files(tmp_path / "train", {"data.txt": text})
    desc, logs, model_dir = fit(hps, folder, 2, checkpoint_s3_uri=str(uri))
    assert host_lines(logs, "algo-1", r"Resuming from the checkpoint in \S+: 3 of 6 epochs done")
    assert host_lines(logs, "algo-2", r"Resuming from the first host's checkpoint: 3 of 6 epochs done")
    losses = [m for m in desc["metrics"] if m["name"] == "train:loss"]
    assert [int(m["step"]) for m in losses] == [4, 5, 6]
    assert quality(vectors_in(model_dir), corpus) > 0.85


def _facts(root: JobRoot) -> tuple:
    """The data facts the checkpoint's fingerprint holds: vocabulary size, tokens, vocabulary digest."""
    from nbsage.algorithms.blazingtext.corpus import read_word2vec
    files = sorted((root.path / "input" / "data" / "train").iterdir())
    vocab = read_word2vec(files, "text/plain", int(HPS["min_count"])).vocab
    return len(vocab), vocab.total_tokens, checkpoints.vocabulary_digest(vocab.words)


@pytest.mark.parametrize("mode", ["skipgram", "cbow", "supervised"])
def test_other_modes_on_several_instances_are_refused_naming_the_mode_and_batch_skipgram(tmp_path, mode):
    root = JobRoot(tmp_path)
    write_job_configs(root, {"AlgorithmSpecification": {"TrainingImage": "blazingtext", "TrainingInputMode": "File"},
                             "HyperParameters": {"mode": mode},
                             "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/plain"}],
                             "ResourceConfig": {"InstanceType": "local", "InstanceCount": 2}})
    write_files(tmp_path / "input" / "data" / "train", {"data.txt": "__label__a some words here\n"})
    with pytest.raises(HyperparameterError, match=rf"'mode' = '{mode}' trains on a single instance.*"
                                                  r"instance_count=2.*mode=batch_skipgram"):
        ALGORITHM.train(TrainingEnvironment(root.path))


def test_two_dask_workers_train_batch_skipgram_together(tmp_path, corpus):
    """The same distributed training on the dask place: one host per Dask worker."""
    pytest.importorskip("distributed")
    import logging

    from distributed import LocalCluster
    folder = write_files(tmp_path / "train", {"data.txt": "\n".join(corpus.sentences) + "\n"})
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster:
        desc, logs, model_dir = fit(HPS, folder, 2, backend="dask", scheduler=cluster.scheduler_address)
    assert quality(vectors_in(model_dir), corpus) > 0.85
    (m1,), (m2,) = (host_lines(logs, host, SHARE) for host in ("algo-1", "algo-2"))
    assert int(m1.group(2)) + int(m2.group(2)) == len(corpus.sentences)
    assert [int(m["step"]) for m in desc["metrics"] if m["name"] == "train:loss"] == list(range(1, 11))
