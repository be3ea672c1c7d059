"""BlazingText: Word2Vec and text classification through the container contract.

Most tests train in this process on small generated corpora whose structure is known (see
`sample_data.topic_corpus`); one runs a real job through `python -m nbsage.runtime train` and one
kills a job and resumes it from its checkpoint.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from nbsage import algorithms
from nbsage.algorithms.blazingtext.evaluation import WORD_PAIRS, spearman
from nbsage.algorithms.blazingtext.model import read_vectors
from nbsage.algorithms.blazingtext.sample_data import topic_corpus
from nbsage.errors import DataError, HyperparameterError, InvalidRequest, UnsupportedContentType
from nbsage.runtime.environment import TrainingEnvironment
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot
from nbsage.runtime.metrics import MetricScraper, parse_progress

ALGORITHM = algorithms.get("blazingtext")
REPO = Path(__file__).resolve().parents[2]
JSON, JSONLINES = "application/json", "application/jsonlines"


# -- helpers ------------------------------------------------------------------------------------

class Job:
    """A finished job: its root, output, the metrics and progress it emitted."""

    def __init__(self, root: Path, returncode: int, stdout: str, stderr: str = ""):
        self.root = JobRoot(root)
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.metrics: dict[str, list] = {}
        self.progress = []
        scraper = MetricScraper()  # nbsage's own #metric lines; the regexes are tested apart
        for line in stdout.splitlines():
            for m in scraper.scrape(line):
                self.metrics.setdefault(m.name, []).append((m.step, m.value))
            p = parse_progress(line)
            if p:
                self.progress.append(p)

    def final(self, name: str) -> float:
        return self.metrics[name][-1][1]

    def handler(self):
        return ALGORITHM.load(self.root.model_dir)


def make_root(root: Path, hyperparameters: dict, content_type: str = "text/plain", **channels) -> JobRoot:
    """A job root; channels: name=text (one file) or name={"file name": text or bytes}."""
    request = {
        "AlgorithmSpecification": {"TrainingImage": "blazingtext", "TrainingInputMode": "File"},
        "HyperParameters": {k: str(v) for k, v in hyperparameters.items()},
        "InputDataConfig": [{"ChannelName": name, "ContentType": content_type} for name in channels],
    }
    write_job_configs(JobRoot(root), request)
    for name, data in channels.items():
        files = data if isinstance(data, dict) else {"data.txt": data}
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        for filename, content in files.items():
            path = folder / filename
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return JobRoot(root)


def train_in_process(root: Path, hyperparameters: dict, content_type: str = "text/plain", **channels) -> Job:
    make_root(root, hyperparameters, content_type, **channels)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        ALGORITHM.train(TrainingEnvironment(root))
    return Job(root, 0, out.getvalue())


def run_job(root: Path, hyperparameters: dict, **channels) -> Job:
    make_root(root, hyperparameters, **channels)
    proc = subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root)],
                          capture_output=True, text=True, cwd=REPO, timeout=180)
    return Job(root, proc.returncode, proc.stdout, proc.stderr)


def invoke(handler, payload, content_type=JSON, accept=None):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    out, ct = handler.invoke(body.encode() if isinstance(body, str) else body, content_type, accept)
    if ct == JSONLINES:
        return [json.loads(line) for line in out.decode().splitlines()], ct
    return json.loads(out), ct


def cosine(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


@pytest.fixture(scope="module")
def corpus():
    return topic_corpus(60_000, supers=4, topics_per_super=4, words_per_topic=8, seed=3, num_pairs=240)


def corpus_text(c) -> str:
    return "\n".join(c.sentences) + "\n"


def labelled(c, indices) -> str:
    return "".join(f"__label__super{c.supers[i]} {c.sentences[i]}\n" for i in indices)


def quality(vectors, c) -> float:
    """Spearman's rho of the vectors' cosine similarities against the corpus's known similarity."""
    sims = [cosine(vectors[a], vectors[b]) for a, b, _ in c.pairs]
    return spearman(sims, [s for _, _, s in c.pairs])


def vectors_of(job) -> dict:
    model = job.handler().model
    return {w: model.vectors[i] for i, w in enumerate(model.words)}


# -- declaration ----------------------------------------------------------------------------------

def test_declaration_validates_modes_and_rejects_invalid_combinations():
    hps = ALGORITHM.validate({"mode": "skipgram"})
    assert hps["vector_dim"] == 100 and hps["window_size"] == 5 and hps["buckets"] == 2_000_000
    assert ALGORITHM.validate({"mode": "supervised", "early_stopping": "True"})["early_stopping"] is True
    with pytest.raises(HyperparameterError, match="'mode' is required"):
        ALGORITHM.validate({})
    with pytest.raises(HyperparameterError, match="subwords.*batch_skipgram"):
        ALGORITHM.validate({"mode": "batch_skipgram", "subwords": "true"})
    with pytest.raises(HyperparameterError, match="min_char must not exceed max_char"):
        ALGORITHM.validate({"mode": "cbow", "min_char": 7, "max_char": 4})
    with pytest.raises(HyperparameterError, match="did you mean 'word_ngrams'"):
        ALGORITHM.validate({"mode": "supervised", "word_ngram": 2})
    with pytest.raises(HyperparameterError, match="sampling_threshold"):
        ALGORITHM.validate({"mode": "cbow", "sampling_threshold": 0})
    assert {m["Name"] for m in ALGORITHM.metric_definitions()} >= {"train:mean_rho", "validation:accuracy"}
    assert "supervised mode" in ALGORITHM.hyperparameter("word_ngrams").help
    assert "Word2Vec modes" in ALGORITHM.hyperparameter("window_size").help


# -- Word2Vec -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["skipgram", "cbow", "batch_skipgram"])
def test_word2vec_puts_related_words_nearer_than_unrelated(tmp_path, corpus, mode):
    job = train_in_process(tmp_path, {"mode": mode, "epochs": 10, "min_count": 2, "vector_dim": 32,
                                      "evaluation": "false"}, train=corpus_text(corpus))
    vectors = vectors_of(job)
    same_topic = [cosine(vectors[a], vectors[b]) for a, b, s in corpus.pairs if s == 2]
    unrelated = [cosine(vectors[a], vectors[b]) for a, b, s in corpus.pairs if s == 0]
    assert min(same_topic) > np.mean(unrelated)
    assert quality(vectors, corpus) > 0.8
    assert "##### Alpha:" in job.stdout and "Million Words/sec:" in job.stdout
    assert job.progress[-1] == (10, 10)


def test_word2vec_writes_vectors_in_word2vec_text_and_binary_formats(tmp_path, corpus):
    job = train_in_process(tmp_path, {"mode": "skipgram", "epochs": 1, "min_count": 2,
                                      "vector_dim": 16}, train=corpus_text(corpus))
    model_dir = job.root.model_dir
    lines = (model_dir / "vectors.txt").read_text().splitlines()
    count, dim = map(int, lines[0].split())
    assert dim == 16 and count == len(lines) - 1
    assert lines[1].split()[0] == "the"  # most frequent first
    assert all(len(line.split()) == 17 for line in lines[1:])
    text, binary = read_vectors(model_dir / "vectors.txt"), read_vectors(model_dir / "vectors.bin")
    assert binary.words == text.words
    np.testing.assert_allclose(binary.vectors, text.vectors, rtol=1e-4, atol=1e-6)
    raw = (model_dir / "vectors.bin").read_bytes()
    header, _, rest = raw.partition(b"\n")
    assert header == f"{count} 16".encode()
    word, _, rest = rest.partition(b" ")
    assert word == b"the" and np.allclose(struct.unpack("<16f", rest[:64]), text.vectors[0], atol=1e-5)
    gensim = pytest.importorskip("gensim.models")
    kv = gensim.KeyedVectors.load_word2vec_format(str(model_dir / "vectors.bin"), binary=True)
    assert kv.index_to_key[:5] == text.words[:5]
    kv_text = gensim.KeyedVectors.load_word2vec_format(str(model_dir / "vectors.txt"))
    np.testing.assert_allclose(kv_text["the"], text.vectors[0], rtol=1e-4)


def test_unknown_words_get_subword_vectors_with_subwords_and_zeros_without(tmp_path, corpus):
    job = train_in_process(tmp_path / "sub", {"mode": "skipgram", "subwords": "true", "epochs": 5,
                                              "min_count": 2, "vector_dim": 32, "buckets": 50_000},
                           train=corpus_text(corpus))
    handler = job.handler()
    topic = 0
    unseen = corpus.stems[topic] + "izes"      # a new inflection of topic 0's stem
    assert unseen not in handler.model.index
    result, _ = invoke(handler, {"instances": [unseen, corpus.stems[topic] + "ing", "qqqq"]})
    assert [r["word"] for r in result] == [unseen, corpus.stems[topic] + "ing", "qqqq"]
    assert all(len(r["vector"]) == 32 for r in result)
    oov = np.array(result[0]["vector"])
    assert np.linalg.norm(oov) > 0
    own = [w for w, (_, t) in corpus.word_topic.items() if t == topic]
    other = [w for w, (_, t) in corpus.word_topic.items() if t != topic]
    vectors = vectors_of(job)
    assert np.mean([cosine(oov, vectors[w]) for w in own]) > np.mean([cosine(oov, vectors[w]) for w in other]) + 0.2
    # meta and bucket rows are in model.bin: a fresh load answers the same
    again, _ = invoke(ALGORITHM.load(job.root.model_dir), {"instances": [unseen]})
    np.testing.assert_allclose(again[0]["vector"], result[0]["vector"], rtol=1e-6)

    plain = train_in_process(tmp_path / "plain", {"mode": "cbow", "epochs": 1, "min_count": 2,
                                                  "vector_dim": 8}, train=corpus_text(corpus))
    result, _ = invoke(plain.handler(), {"instances": [unseen, "the"]})
    assert result[0] == {"vector": [0.0] * 8, "word": unseen}
    assert np.linalg.norm(result[1]["vector"]) > 0


def _pair_corpus(sentences: int = 6000, seed: int = 0) -> str:
    """Sentences about a few topics built from words of the built-in evaluation pairs."""
    groups = [["cat", "dog", "tiger", "lion", "horse", "cow"],
              ["king", "queen", "man", "woman", "boy", "girl", "father", "mother", "son", "daughter"],
              ["apple", "orange", "bread", "butter", "tea", "coffee", "food", "fruit", "potato", "cabbage"],
              ["array", "matrix", "vector", "tensor", "list", "row", "column", "integer", "float", "string"],
              ["mean", "average", "median", "variance", "deviation", "covariance", "probability"],
              ["file", "directory", "path", "folder", "read", "write", "load", "save"],
              ["car", "train", "plane", "airport"],
              ["day", "night", "morning", "evening", "week", "month", "year"],
              ["computer", "software", "keyboard", "gpu", "cpu", "thread", "process"],
              ["plot", "figure", "axes", "chart", "color", "colormap", "pixel", "image", "marker", "title"]]
    filler = "the of and to a in is that for it".split()
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(sentences):
        g = groups[rng.integers(len(groups))]
        words = [g[rng.integers(len(g))] if rng.random() < 0.6 else filler[rng.integers(len(filler))]
                 for _ in range(rng.integers(6, 14))]
        lines.append(" ".join(words))
    return "\n".join(lines) + "\n"


def test_evaluation_reports_mean_rho_on_the_built_in_word_pairs(tmp_path):
    job = train_in_process(tmp_path, {"mode": "skipgram", "epochs": 5, "min_count": 1,
                                      "vector_dim": 32}, train=_pair_corpus())
    match = re.search(r"^#mean_rho: (\S+)$", job.stdout, re.M)
    assert match and float(match.group(1)) > 0.3
    assert job.final("train:mean_rho") == pytest.approx(float(match.group(1)), abs=1e-4)
    report = json.loads((job.root.model_dir / "eval.json").read_text())
    assert report["mean_rho"] == pytest.approx(float(match.group(1)), abs=1e-4)
    assert report["builtin-word-pairs"]["pairs_found"] >= 20
    assert report["builtin-word-pairs"]["pairs_found"] + report["builtin-word-pairs"]["not_found"] == len(WORD_PAIRS)


def test_evaluation_is_skipped_with_a_log_line_when_no_pairs_are_in_the_vocabulary(tmp_path, corpus):
    job = train_in_process(tmp_path, {"mode": "cbow", "epochs": 1, "min_count": 2, "vector_dim": 8},
                           train=corpus_text(corpus))
    assert "Evaluation skipped: only 0 of" in job.stdout
    assert "train:mean_rho" not in job.metrics
    assert not (job.root.model_dir / "eval.json").exists()


# -- supervised -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier_job(tmp_path_factory, corpus):
    n = len(corpus.sentences)
    job = train_in_process(tmp_path_factory.mktemp("supervised"),
                           {"mode": "supervised", "epochs": 5, "min_count": 1, "vector_dim": 32,
                            "buckets": 100_000},
                           train=labelled(corpus, range(0, int(n * 0.8))),
                           validation=labelled(corpus, range(int(n * 0.8), n)))
    return job


def test_supervised_reaches_high_accuracy_and_logs_like_blazingtext(classifier_job):
    job = classifier_job
    assert job.final("validation:accuracy") > 0.95
    assert job.final("train:accuracy") > 0.95
    out = job.stdout
    for line in (r"^##### Alpha: \d\.\d{4}  Progress: \d+\.\d{2}%  Million Words/sec: \d+\.\d+ #####$",
                 r"^Validation accuracy: 0\.\d+$", r"^Training finished\.$",
                 r"^Average throughput in Million words/sec: \S+$",
                 r"^Total training time in seconds: \S+$", r"^#train_accuracy: [01]\.\d+$",
                 r"^Number of train examples: \d+$", r"^#validation_accuracy: [01]\.\d+$",
                 r"^Number of validation examples: \d+$"):
        assert re.search(line, out, re.M), line
    steps = [s for s, _ in job.metrics["validation:accuracy"] if s is not None]
    assert steps == [1, 2, 3, 4, 5]
    assert (job.root.model_dir / "model.bin").exists()


def test_supervised_endpoint_answers_labels_and_probabilities_in_blazingtext_shape(classifier_job, corpus):
    handler = classifier_job.handler()
    texts = corpus.sentences[:3]
    result, ct = invoke(handler, {"instances": texts, "configuration": {"k": 2}})
    assert ct == JSON and len(result) == 3
    for r, i in zip(result, range(3)):
        assert set(r) == {"label", "prob"} and len(r["label"]) == 2 and len(r["prob"]) == 2
        assert r["prob"][0] >= r["prob"][1] and 0.99 >= r["prob"][1] >= 0
        assert r["label"][0] == f"__label__super{corpus.supers[i]}"
    single, _ = invoke(handler, {"instances": texts[:1]})
    assert len(single[0]["label"]) == 1 and single[0]["label"] == result[0]["label"][:1]
    every, _ = invoke(handler, {"instances": texts[:1], "configuration": {"k": 100}})
    assert len(every[0]["label"]) == 4 and sum(every[0]["prob"]) == pytest.approx(1.0, abs=1e-4)
    # batch transform: JSON Lines in, JSON Lines out, k per line; Accept cannot change that
    body = "\n".join(json.dumps({"source": t, "k": k}) for t, k in zip(texts, (1, 2, 3)))
    lines, ct = invoke(handler, body, JSONLINES, accept=JSON)
    assert ct == JSONLINES and [len(line["label"]) for line in lines] == [1, 2, 3]
    assert lines[1] == result[1]


def test_bad_requests_say_what_is_expected(classifier_job):
    handler = classifier_job.handler()
    with pytest.raises(InvalidRequest, match="has no 'instances'"):
        invoke(handler, {"texts": ["a"]})
    with pytest.raises(InvalidRequest, match=r"instances\[1\]: expected a text"):
        invoke(handler, {"instances": ["fine", 3]})
    with pytest.raises(InvalidRequest, match="k must be a positive whole number"):
        invoke(handler, {"instances": ["a"], "configuration": {"k": 0}})
    with pytest.raises(InvalidRequest, match="line 2 is not valid JSON"):
        invoke(handler, '{"source": "a"}\n{oops', JSONLINES)
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        invoke(handler, "{", JSON)
    with pytest.raises(UnsupportedContentType):
        invoke(handler, "a,b", "text/csv")


def test_early_stopping_stops_after_patience_and_keeps_the_best_weights(tmp_path, corpus):
    n = len(corpus.sentences)
    job = train_in_process(tmp_path, {"mode": "supervised", "epochs": 30, "early_stopping": "true",
                                      "min_epochs": 2, "patience": 2, "min_count": 1,
                                      "vector_dim": 16, "buckets": 50_000},
                           train=labelled(corpus, range(0, 3000)),
                           validation=labelled(corpus, range(3000, n)))
    out = job.stdout
    assert "Validation accuracy improved! Storing best weights..." in out
    match = re.search(r"Early stopping after epoch (\d+): .*keeping the weights of epoch (\d+)", out)
    assert match, out[-2000:]
    stopped, best = int(match.group(1)), int(match.group(2))
    assert 2 <= stopped < 30 and stopped - best >= 2
    per_epoch = {s: v for s, v in job.metrics["validation:accuracy"] if s is not None}
    assert max(per_epoch) == stopped
    assert job.final("validation:accuracy") == pytest.approx(per_epoch[best], abs=1e-4)
    assert job.progress[-1] == (30, 30)


def test_early_stopping_without_a_validation_channel_is_an_error(tmp_path, corpus):
    with pytest.raises(HyperparameterError, match="early_stopping.*needs a validation channel"):
        train_in_process(tmp_path, {"mode": "supervised", "early_stopping": "true"},
                         train=labelled(corpus, range(100)))


def test_augmented_manifest_plain_and_recordio_wrapped(tmp_path, corpus):
    from nbsage.formats.recordio_protobuf import frame
    records = [{"source": corpus.sentences[i], "label": int(corpus.supers[i]) if i % 3 else [int(corpus.supers[i])]}
               for i in range(3000)]
    manifest = "".join(json.dumps(r) + "\n" for r in records)
    job = train_in_process(tmp_path / "jsonl", {"mode": "supervised", "min_count": 1, "vector_dim": 16,
                                                "buckets": 50_000, "epochs": 5},
                           content_type=JSONLINES, train={"train.manifest": manifest},
                           validation={"val.manifest": manifest})
    assert job.final("validation:accuracy") > 0.9
    assert set(job.handler().model.labels) == {f"__label__{s}" for s in range(4)}
    wrapped = b"".join(frame(json.dumps(r).encode()) for r in records)
    job = train_in_process(tmp_path / "recordio", {"mode": "supervised", "min_count": 1,
                                                   "vector_dim": 16, "buckets": 50_000, "epochs": 5},
                           content_type="application/x-recordio", train={"train.rec": wrapped})
    assert job.final("train:accuracy") > 0.9


# -- bad input ------------------------------------------------------------------------------------

def test_an_empty_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"channel 'train' is empty \(no words in data\.txt\): word2vec"):
        train_in_process(tmp_path / "w2v", {"mode": "skipgram"}, train="\n   \n")
    with pytest.raises(DataError, match=r"channel 'train' is empty.*supervised mode needs lines"):
        train_in_process(tmp_path / "sup", {"mode": "supervised"}, train="")
    with pytest.raises(DataError, match="no word occurs at least min_count=5 times"):
        train_in_process(tmp_path / "rare", {"mode": "cbow"}, train="every word here is new\n")


def test_a_line_without_a_label_names_the_file_line_and_rule(tmp_path):
    text = "__label__a good words here\n\n__label__b other words\nthis line forgot its label\n"
    with pytest.raises(DataError) as err:
        train_in_process(tmp_path / "nolabel", {"mode": "supervised"}, train={"part-1.txt": text})
    message = str(err.value)
    assert message.startswith("part-1.txt line 4: no label;")
    assert "'__label__<name>'" in message and "this line forgot its label" in message
    with pytest.raises(DataError, match=r"part-2.txt line 1: empty label '__label__'"):
        train_in_process(tmp_path / "empty", {"mode": "supervised"}, train={"part-2.txt": "__label__ x y\n"})
    with pytest.raises(DataError, match=r"train.manifest line 2: augmented-manifest record has no \"source\""):
        train_in_process(tmp_path / "manifest", {"mode": "supervised"}, content_type=JSONLINES,
                         train={"train.manifest": '{"source": "a b", "label": 1}\n{"text": "c", "label": 0}\n'})


# -- the PyTorch engine (the GPU path), run on the CPU ---------------------------------------------

def test_torch_engine_trains_word2vec_and_the_classifier(tmp_path, corpus):
    job = train_in_process(tmp_path / "w2v", {"mode": "cbow", "subwords": "true", "epochs": 10,
                                              "min_count": 2, "vector_dim": 32, "buckets": 50_000,
                                              "_engine": "torch"}, train=corpus_text(corpus))
    assert "with the torch engine" in job.stdout
    assert quality(vectors_of(job), corpus) > 0.8
    n = len(corpus.sentences)
    job = train_in_process(tmp_path / "sup", {"mode": "supervised", "epochs": 5, "min_count": 1,
                                              "vector_dim": 16, "buckets": 50_000, "_engine": "torch"},
                           train=labelled(corpus, range(0, int(n * 0.8))),
                           validation=labelled(corpus, range(int(n * 0.8), n)))
    assert job.final("validation:accuracy") > 0.9


# -- real jobs ------------------------------------------------------------------------------------

def test_a_job_through_the_runtime_packs_the_model_and_its_log_feeds_the_metric_definitions(tmp_path, corpus):
    n = len(corpus.sentences)
    job = run_job(tmp_path, {"mode": "supervised", "epochs": 10, "min_count": 1, "vector_dim": 16,
                             "buckets": 50_000},
                  train=labelled(corpus, range(0, 2000)), validation=labelled(corpus, range(2000, n)))
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    with tarfile.open(job.root.model_archive) as tar:
        assert "model.bin" in tar.getnames()
    definitions = {d["Name"]: re.compile(d["Regex"]) for d in ALGORITHM.metric_definitions()}
    scraped = [float(m.group(1)) for line in job.stdout.splitlines()
               if (m := definitions["validation:accuracy"].search(line))]
    assert len(scraped) == 1 and scraped[0] > 0.9


def test_a_killed_job_resumes_from_its_last_checkpointed_epoch(tmp_path):
    big = topic_corpus(300_000, supers=4, topics_per_super=4, words_per_topic=8, seed=7)
    train = labelled(big, range(len(big.sentences)))
    root = tmp_path / "job"
    hps = {"mode": "supervised", "epochs": 60, "min_count": 1, "vector_dim": 16, "buckets": 20_000}
    make_root(root, hps, train=train)
    checkpoint = root / "checkpoints" / "blazingtext-checkpoint.bin"
    proc = subprocess.Popen([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.time() + 90
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert checkpoint.exists(), "no checkpoint was written"
    os.kill(proc.pid, signal.SIGKILL)
    first_output = proc.communicate(timeout=30)[0].decode()
    done = max(int(m) for m in re.findall(r"#progress step=(\d+) total=60", first_output))
    assert 1 <= done < 60
    job = run_job(root, hps, train=train)
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    match = re.search(r"Resuming from the checkpoint in \S+: (\d+) of 60 epochs done", job.stdout)
    # the checkpoint of an epoch is saved just before its progress line: the kill may fall between
    assert match and 1 <= int(match.group(1)) <= done + 1
    assert job.progress[0][0] == int(match.group(1)) + 1 and job.progress[-1] == (60, 60)
    assert job.final("train:accuracy") > 0.9
    # a job with other hyperparameters does not resume from it
    other = train_in_process(root, {**hps, "epochs": 1}, train=train)
    assert "written for other hyperparameters or data; starting from scratch" in other.stdout
