"""Word2Vec training (cbow, skipgram, batch_skipgram): corpus -> vectors.txt, vectors.bin, model.bin.

Skip-gram and CBOW with negative sampling (Mikolov et al. 2013) as fastText trains them: the
vocabulary is the words seen at least min_count times; frequent words are subsampled with
sampling_threshold; each word's context is a window of 1..window_size words on each side
(drawn per word); negatives come from the unigram distribution raised to 0.75. With
subwords=true a word's input vector is the mean of its own row and the rows of its character
n-grams (min_char..max_char, hashed into buckets), so a word never seen gets a vector from its
n-grams. batch_skipgram shares one set of negatives across the context words of a center word
(Ji et al. 2016). The evaluation (evaluation=true) scores the vectors on the built-in word-pair
list and writes eval.json.

Several hosts (instance_count > 1, batch_skipgram only, as on SageMaker) train one model: every
host has the same vocabulary (with FullyReplicated data each reads all of it; with
ShardedByS3Key each reads its files and the hosts add up their word counts), starts from the
same weights and trains on its share of the sentences (FullyReplicated: sentences rank, rank + N,
...). The learning rate decays over the words of all hosts, and after each slice of an epoch
the hosts add up their changes to the weights (`_HostUpdates`, torch.distributed over gloo
through `nbsage.algorithms.distributed`). Every host logs its progress; the first host reports
the loss over all hosts, checkpoints (the others resume from its checkpoint), saves the model
and evaluates it.

`train` is the loop; `_read` reads the corpus and agrees on the vocabulary with the other hosts,
`_input_rows` lays out the subword rows, `_checkpoint` and `_resume` go on from a checkpoint,
`_engine` makes the kernel, `_epoch` is one pass over this host's sentences, and `_write_model`
saves the vectors.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from nbsage.algorithms import distributed
from nbsage.algorithms.blazingtext import checkpoints, evaluation, hashing
from nbsage.algorithms.blazingtext.corpus import Corpus, read_word2vec
from nbsage.algorithms.blazingtext.declaration import MODE_CODES
from nbsage.algorithms.blazingtext.model import WordVectors, mean_rows
from nbsage.algorithms.blazingtext.training import SEED, Schedule, initial_weights, split_parts

EVAL_FILE = "eval.json"
# several hosts combine their updates every max(SYNC_MIN_WORDS, SYNC_WORDS_PER_ROW * rows)
# words that each trains
SYNC_MIN_WORDS = 5_000
SYNC_WORDS_PER_ROW = 20


def subword_table(words: list[str], min_char: int, max_char: int, buckets: int):
    """Input rows of each word (CSR): its own row, then its character n-gram rows.

    N-gram buckets are renumbered to the rows after the vocabulary, keeping only buckets some
    word uses: returns (ptr, rows, bucket_ids) with bucket_ids[i] the bucket of row V + i.
    """
    v = len(words)
    ptr, buckets_of = hashing.subword_rows(words, min_char, max_char, buckets, 0)
    bucket_ids = np.unique(buckets_of)
    ngram_rows = v + np.searchsorted(bucket_ids, buckets_of)
    rows = np.empty(v + ngram_rows.shape[0], dtype=np.int64)
    own = ptr[:-1] + np.arange(v)
    is_ngram = np.ones(rows.shape[0], dtype=bool)
    is_ngram[own] = False
    rows[own] = np.arange(v)
    rows[is_ngram] = ngram_rows
    return (ptr + np.arange(v + 1)).astype(np.int64), rows, bucket_ids.astype(np.int64)


def train(env, hps: dict, choice, log, cluster=None) -> None:
    cluster = cluster or distributed.cluster(env)
    multi, master = cluster.distributed, cluster.is_master
    text = _read(env, hps, cluster, log)
    vocab = text.corpus.vocab
    rows = _input_rows(vocab.words, hps, log)
    epochs = hps["epochs"]
    checkpointer, resumed = _checkpoint(env, hps, text, cluster, log)
    start_epoch = int(resumed[0]["epochs_done"]) if resumed is not None else 0
    threads = choice.threads if choice.name == "numba" else 1
    # hosts draw different samples, and after a resume other ones than before it
    seed = SEED + 1 + (7919 * cluster.rank + start_epoch if multi else 0)
    engine = _engine(choice, hps, text.corpus, rows, threads, seed, log)
    parts = split_parts(text.corpus.sent_ptr, threads)
    if resumed is not None:
        _resume(env, engine, resumed, cluster, epochs, log)
    schedule = _schedule(hps, text.words_per_epoch, rows.count, cluster, log)
    combine = _HostUpdates(engine) if multi else None
    try:
        for epoch in range(start_epoch, epochs):
            _epoch(engine, schedule, parts, combine, epoch, epochs)
            loss = _epoch_loss(engine, cluster, epoch, epochs, log)
            if master:
                log(f"Epoch {epoch + 1}/{epochs}: loss {loss:.4f}")
                env.metric("train:loss", loss, step=epoch + 1)
                checkpointer.after_epoch({"epochs_done": epoch + 1}, lambda: _arrays(engine),
                                         force=epoch == epochs - 1)
                env.progress(epoch + 1, epochs)
    finally:
        engine.close()
    _log_finished(schedule, cluster, log)
    if not master:
        return  # the first host saves the model the hosts trained together
    model = _write_model(env, hps, engine, vocab.words, rows, log)
    if hps["evaluation"]:
        evaluate(env, model, log)


@dataclass
class _Text:
    """The train channel as this host trains on it."""
    corpus: Corpus        # this host's sentences, and the vocabulary of all hosts
    digest: str           # of the vocabulary: the same on every host
    words_per_epoch: int  # over all hosts


def _read(env, hps: dict, cluster, log) -> _Text:
    """Read the train channel and build the vocabulary, the same on every host; with several
    hosts, check that they agree and keep this host's share of the sentences."""
    multi = cluster.distributed
    corpus, sharded = _read_corpus(env, hps, cluster, log)
    digest = checkpoints.vocabulary_digest(corpus.vocab.words)
    if multi:
        if len(set(distributed.gather_objects(digest))) > 1:
            raise distributed.DistributedError(
                f"host {cluster.current_host} built another vocabulary than the other hosts: with "
                f"FullyReplicated data every host must see the same files in the train channel")
        if not sharded:
            corpus = corpus.share(cluster.rank, cluster.size)
    words_per_epoch = distributed.agree(corpus.num_words, "sum")
    if multi:
        log(f"Distributed training on {cluster.size} hosts (rank {cluster.rank}): "
            f"{corpus.num_sentences} sentences, {corpus.num_words} words on this host of "
            f"{words_per_epoch} words over all hosts")
    return _Text(corpus, digest, words_per_epoch)


def _read_corpus(env, hps: dict, cluster, log) -> tuple[Corpus, bool]:
    """(corpus, sharded): ShardedByS3Key: each host read its own files, and the hosts add up
    their word counts; FullyReplicated: every host read all of it and trains on its share."""
    channel = env.channels.get("train")
    content_type = channel.content_type if channel is not None else ""
    sharded = cluster.distributed and channel is not None and channel.distribution == "ShardedByS3Key"
    read_here: list[int] = []

    def counts_over_hosts(tokens, counts):
        read_here.append(int(counts.sum()))
        return _counts_over_hosts(tokens, counts)

    read_started = time.perf_counter()
    corpus = read_word2vec(env.channel_files("train"), content_type, hps["min_count"],
                           counts_over_hosts=counts_over_hosts if sharded else None)
    read = read_here[0] if sharded else corpus.vocab.total_tokens
    log(f"Read {read / 1e6:.2f}M words in {time.perf_counter() - read_started:.2f} s")
    log(f"Number of words: {len(corpus.vocab)}"
        + (f" (counted across {cluster.size} hosts)" if sharded else ""))
    return corpus, sharded


@dataclass
class _InputRows:
    """The input rows of each word (CSR): its own, then its character n-grams' (subwords)."""
    subwords: bool
    ptr: np.ndarray
    ids: np.ndarray
    bucket_ids: np.ndarray  # bucket_ids[i]: the n-gram bucket of input row len(words) + i

    @property
    def count(self) -> int:
        return self.ptr.shape[0] - 1 + self.bucket_ids.shape[0]


def _input_rows(words: list[str], hps: dict, log) -> _InputRows:
    v = len(words)
    if bool(hps["subwords"]) and hps["mode"] != "batch_skipgram":
        ptr, ids, bucket_ids = subword_table(words, hps["min_char"], hps["max_char"], hps["buckets"])
        log(f"Subwords: {bucket_ids.shape[0]} character n-gram buckets in use "
            f"(of {hps['buckets']}), n-grams of {hps['min_char']} to {hps['max_char']} characters")
        return _InputRows(True, ptr, ids, bucket_ids)
    return _InputRows(False, np.arange(v + 1, dtype=np.int64), np.arange(v, dtype=np.int64),
                      np.zeros(0, dtype=np.int64))


def _checkpoint(env, hps: dict, text: _Text, cluster, log):
    """(checkpointer, (state, arrays) or None): the master's checkpoint, on every host, so
    that all hosts go on from the same weights."""
    vocab = text.corpus.vocab
    key = checkpoints.fingerprint(hps, len(vocab), vocab.total_tokens, text.digest)
    checkpointer = checkpoints.Checkpointer(env.checkpoints_dir, key, log)
    resumed = checkpointer.load() if cluster.is_master else None
    if cluster.distributed:
        resumed = distributed.broadcast_object(resumed)
    return checkpointer, resumed


def _engine(choice, hps: dict, corpus: Corpus, rows: _InputRows, threads: int, seed: int, log):
    """The kernel that trains the weights, which start as fastText starts them (the same on
    every host): numba's hogwild threads or PyTorch."""
    mode, vocab = hps["mode"], corpus.vocab
    w_in = initial_weights(rows.count, hps["vector_dim"])
    w_out = np.zeros((len(vocab), hps["vector_dim"]), dtype=np.float32)
    keep = vocab.keep_probabilities(hps["sampling_threshold"])
    table = vocab.negative_table()
    if mode == "batch_skipgram" and choice.name == "torch":
        log("batch_skipgram runs as skipgram on the PyTorch engine (negatives are drawn per batch)")
    args = (MODE_CODES[mode], corpus.words, corpus.sent_ptr, keep, table, w_in, w_out, rows.ptr,
            rows.ids, hps["window_size"], hps["negative_samples"], hps["batch_size"], threads, seed)
    if choice.name == "numba":
        from nbsage.algorithms.blazingtext.kernels import NumbaWord2Vec
        return NumbaWord2Vec(*args)
    from nbsage.algorithms.blazingtext.torch_kernels import TorchWord2Vec
    return TorchWord2Vec(*args, device=choice.device)


def _resume(env, engine, resumed: tuple[dict, dict], cluster, epochs: int, log) -> None:
    """The checkpoint's weights into the engine (and, on one host, its random state)."""
    state, arrays = resumed
    engine.set_weights(arrays["w_in"], arrays["w_out"])
    same_engine_and_threads = arrays["seeds"].shape == engine.stats.seeds.shape
    if not cluster.distributed and same_engine_and_threads:
        engine.stats.seeds[:] = arrays["seeds"]
    where = f"the checkpoint in {env.checkpoints_dir}" if cluster.is_master else "the first host's checkpoint"
    log(f"Resuming from {where}: {int(state['epochs_done'])} of {epochs} epochs done")


def _schedule(hps: dict, words_per_epoch: int, rows: int, cluster, log) -> Schedule:
    schedule = Schedule(log, hps["learning_rate"], hps["epochs"], words_per_epoch)
    if cluster.distributed:
        # the hosts combine their updates after every slice: often enough that they do not drift
        # apart, seldom enough that combining (~20 passes over both matrices) costs little
        interval = max(SYNC_MIN_WORDS, SYNC_WORDS_PER_ROW * rows)
        schedule.slices = max(schedule.slices, min(10_000, words_per_epoch // cluster.size // interval))
        log(f"The hosts combine their updates {schedule.slices} times an epoch")
    return schedule


def _epoch(engine, schedule: Schedule, parts, combine, epoch: int, epochs: int) -> None:
    """One pass over this host's sentences, in the schedule's slices (hosts combine after each)."""
    for s in range(schedule.slices):
        starts, stops = schedule.bounds(parts, s)
        before = int(engine.stats.words_done.sum())
        engine.run(starts, stops, schedule.alpha(epoch, s), schedule.alpha(epoch, s + 1))
        schedule.words_done += int(engine.stats.words_done.sum()) - before
        if combine is not None:
            combine()
        schedule.report(epoch, s, force=(epoch == epochs - 1 and s == schedule.slices - 1))


def _epoch_loss(engine, cluster, epoch: int, epochs: int, log) -> float:
    """The epoch's loss: this host's, or with several hosts the mean over all of them."""
    count = int(engine.stats.loss_count.sum())
    loss = engine.stats.take_loss()
    if cluster.distributed:
        log(f"Epoch {epoch + 1}/{epochs}: loss on this host's share {loss:.4f}")
        loss = distributed.mean(loss if count else 0.0, weight=count)
    return loss


def _log_finished(schedule: Schedule, cluster, log) -> None:
    elapsed = time.perf_counter() - schedule.started
    words_done = distributed.agree(schedule.words_done, "sum")
    log("Training finished.")
    log(f"Average throughput in Million words/sec: {words_done / max(elapsed, 1e-9) / 1e6:.2f}"
        + (f" (all {cluster.size} hosts)" if cluster.distributed else ""))
    log(f"Total training time in seconds: {elapsed:.2f}")


def _write_model(env, hps: dict, engine, words: list[str], rows: _InputRows, log) -> WordVectors:
    """vectors.txt, vectors.bin and model.bin: a word's vector is the mean of its input rows."""
    v = len(words)
    w_in, _ = engine.weights()
    vectors = mean_rows(rows.ptr, rows.ids, w_in) if rows.subwords else np.ascontiguousarray(w_in[:v])
    model = WordVectors(words, vectors, rows.subwords, hps["min_char"], hps["max_char"],
                        hps["buckets"], rows.bucket_ids,
                        np.ascontiguousarray(w_in[v:]) if rows.subwords else None, {"mode": hps["mode"]})
    model.save(env.model_dir)
    log(f"Wrote vectors.txt, vectors.bin and model.bin ({v} words x {hps['vector_dim']}) to {env.model_dir}")
    return model


def _counts_over_hosts(tokens: list[str], counts: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Every host's tokens with their counts summed over the hosts, in the same order everywhere
    (first appearance on algo-1, then on algo-2, ...)."""
    total: dict[str, int] = {}
    for part in distributed.gather_objects(dict(zip(tokens, counts.tolist()))):
        for token, count in part.items():
            total[token] = total.get(token, 0) + count
    return list(total), np.fromiter(total.values(), dtype=np.int64, count=len(total))


class _HostUpdates:
    """Adds up what the hosts learned since the last call, so that all go on from one model.

    Each host's change to the weights is added to the shared weights, as hogwild threads add
    theirs on one host: every update counts in full, and the learning rate schedule (decayed over
    the words of all hosts) stays fastText's. Averaging the hosts' weights instead would divide
    every update by the number of hosts, and leave the vectors undertrained.
    """

    def __init__(self, engine):
        self.engine = engine
        self.shared = [np.array(w, dtype=np.float32, copy=True) for w in engine.weights()]

    def __call__(self) -> None:
        changes = [np.asarray(w) - s for w, s in zip(self.engine.weights(), self.shared)]
        distributed.reduce_arrays(changes, "sum")
        for s, c in zip(self.shared, changes):
            s += c
        self.engine.set_weights(*self.shared)


def _arrays(engine) -> dict:
    w_in, w_out = engine.weights()
    return {"w_in": w_in, "w_out": w_out, "seeds": engine.stats.seeds}


def evaluate(env, model: WordVectors, log) -> dict | None:
    """train:mean_rho on the built-in word pairs; eval.json beside the vectors."""
    result = evaluation.word_similarity(model)
    if result["spearmans_rho"] is None:
        log(f"Evaluation skipped: only {result['pairs_found']} of {len(evaluation.WORD_PAIRS)} "
            f"built-in word pairs are in the vocabulary (at least {evaluation.MIN_PAIRS} needed)")
        return None
    rho = result["spearmans_rho"]
    report = {"builtin-word-pairs": result, "mean_rho": rho}
    (env.model_dir / EVAL_FILE).write_text(json.dumps(report, indent=2))
    log(f"Evaluation on {result['pairs_found']} built-in word pairs: Spearman's rho {rho:.4f} "
        f"({result['not_found']} pairs not in the vocabulary)")
    log(f"#mean_rho: {rho:.4f}")
    env.metric("train:mean_rho", rho)
    return report
