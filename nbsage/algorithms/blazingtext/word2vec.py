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
"""
from __future__ import annotations

import json
import time

import numpy as np

from nbsage.algorithms.blazingtext import checkpoints, evaluation, hashing
from nbsage.algorithms.blazingtext.corpus import read_word2vec
from nbsage.algorithms.blazingtext.declaration import MODE_CODES
from nbsage.algorithms.blazingtext.model import WordVectors, mean_rows
from nbsage.algorithms.blazingtext.training import SEED, Schedule, initial_weights, split_parts

EVAL_FILE = "eval.json"


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


def train(env, hps: dict, choice, log) -> None:
    mode = hps["mode"]
    files = env.channel_files("train")
    content_type = env.channels["train"].content_type if "train" in env.channels else ""
    read_started = time.perf_counter()
    corpus = read_word2vec(files, content_type, hps["min_count"])
    vocab = corpus.vocab
    v, dim = len(vocab), hps["vector_dim"]
    log(f"Read {vocab.total_tokens / 1e6:.2f}M words in {time.perf_counter() - read_started:.2f} s")
    log(f"Number of words: {v}")

    subwords = bool(hps["subwords"]) and mode != "batch_skipgram"
    if subwords:
        sub_ptr, sub_ids, bucket_ids = subword_table(vocab.words, hps["min_char"], hps["max_char"],
                                                     hps["buckets"])
        log(f"Subwords: {bucket_ids.shape[0]} character n-gram buckets in use "
            f"(of {hps['buckets']}), n-grams of {hps['min_char']} to {hps['max_char']} characters")
    else:
        sub_ptr, sub_ids = np.arange(v + 1, dtype=np.int64), np.arange(v, dtype=np.int64)
        bucket_ids = np.zeros(0, dtype=np.int64)
    rows = v + bucket_ids.shape[0]
    w_in = initial_weights(rows, dim)
    w_out = np.zeros((v, dim), dtype=np.float32)
    keep = vocab.keep_probabilities(hps["sampling_threshold"])
    table = vocab.negative_table()

    threads = choice.threads if choice.name == "numba" else 1
    if mode == "batch_skipgram" and choice.name == "torch":
        log("batch_skipgram runs as skipgram on the PyTorch engine (negatives are drawn per batch)")
    parts = split_parts(corpus.sent_ptr, threads)
    args = (MODE_CODES[mode], corpus.words, corpus.sent_ptr, keep, table, w_in, w_out, sub_ptr,
            sub_ids, hps["window_size"], hps["negative_samples"], hps["batch_size"], threads, SEED + 1)
    if choice.name == "numba":
        from nbsage.algorithms.blazingtext.kernels import NumbaWord2Vec
        engine = NumbaWord2Vec(*args)
    else:
        from nbsage.algorithms.blazingtext.torch_kernels import TorchWord2Vec
        engine = TorchWord2Vec(*args, device=choice.device)

    epochs = hps["epochs"]
    key = checkpoints.fingerprint(hps, v, vocab.total_tokens, checkpoints.vocabulary_digest(vocab.words))
    start_epoch = 0
    checkpointer = checkpoints.Checkpointer(env.checkpoints_dir, key, log)
    resumed = checkpointer.load()
    if resumed is not None:
        state, arrays = resumed
        engine.set_weights(arrays["w_in"], arrays["w_out"])
        if arrays["seeds"].shape == engine.stats.seeds.shape:  # same engine and threads
            engine.stats.seeds[:] = arrays["seeds"]
        start_epoch = int(state["epochs_done"])
        log(f"Resuming from the checkpoint in {env.checkpoints_dir}: {start_epoch} of {epochs} "
            f"epochs done")

    schedule = Schedule(log, hps["learning_rate"], epochs, corpus.num_words)
    try:
        for epoch in range(start_epoch, epochs):
            for s in range(schedule.slices):
                starts, stops = schedule.bounds(parts, s)
                before = int(engine.stats.words_done.sum())
                engine.run(starts, stops, schedule.alpha(epoch, s), schedule.alpha(epoch, s + 1))
                schedule.words_done += int(engine.stats.words_done.sum()) - before
                schedule.report(epoch, s, force=(epoch == epochs - 1 and s == schedule.slices - 1))
            loss = engine.stats.take_loss()
            log(f"Epoch {epoch + 1}/{epochs}: loss {loss:.4f}")
            env.metric("train:loss", loss, step=epoch + 1)
            checkpointer.after_epoch({"epochs_done": epoch + 1}, lambda: _arrays(engine),
                                     force=epoch == epochs - 1)
            env.progress(epoch + 1, epochs)
    finally:
        engine.close()
    elapsed = time.perf_counter() - schedule.started
    log("Training finished.")
    log(f"Average throughput in Million words/sec: {schedule.rate() / 1e6:.2f}")
    log(f"Total training time in seconds: {elapsed:.2f}")

    w_in, _ = engine.weights()
    vectors = mean_rows(sub_ptr, sub_ids, w_in) if subwords else np.ascontiguousarray(w_in[:v])
    model = WordVectors(vocab.words, vectors, subwords, hps["min_char"], hps["max_char"],
                        hps["buckets"], bucket_ids, np.ascontiguousarray(w_in[v:]) if subwords else None,
                        {"mode": mode})
    model.save(env.model_dir)
    log(f"Wrote vectors.txt, vectors.bin and model.bin ({v} words x {dim}) to {env.model_dir}")
    if hps["evaluation"]:
        evaluate(env, model, log)


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
