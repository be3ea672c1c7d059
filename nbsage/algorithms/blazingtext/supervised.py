"""Text classification (mode=supervised): fastText's classifier (Joulin et al. 2016).

A sentence is the mean of the vectors of its words (seen at least min_count times) and of its
word n-grams up to word_ngrams, hashed into `buckets`; a linear layer and a softmax over the
labels follow. Trained with SGD, the learning rate decayed linearly to 0, examples shuffled
each epoch. With a validation channel, accuracy (precision at 1) is measured after every
epoch; early_stopping keeps the best epoch's weights and stops once accuracy has not improved
for `patience` epochs, but never before `min_epochs`.
"""
from __future__ import annotations

import time

import numpy as np

from nbsage.algorithms.blazingtext import checkpoints, evaluation
from nbsage.algorithms.blazingtext.corpus import Interner, classifier_vocabulary, read_labelled
from nbsage.algorithms.blazingtext.hashing import word_hashes
from nbsage.algorithms.blazingtext.model import ClassifierModel, classifier_rows
from nbsage.algorithms.blazingtext.training import SEED, Schedule, initial_weights, split_parts
from nbsage.errors import HyperparameterError


class _Encoded:
    """A channel as the classifier reads it: input rows and label ids per example (CSR)."""

    def __init__(self, ptr, rows, label_ptr, label_ids, num_words: int):
        self.ptr, self.rows = ptr, rows
        self.label_ptr, self.label_ids = label_ptr, label_ids
        self.num_words = num_words

    def __len__(self) -> int:
        return int(self.ptr.shape[0] - 1)


def _encode(examples, word_map, label_map, hashes, hps, v, bucket_ids) -> _Encoded:
    ids = word_map[examples.token_ids]
    ptr, rows = classifier_rows(ids, hashes[examples.token_ids], examples.sent_ptr,
                                hps["word_ngrams"], hps["buckets"], v, bucket_ids)
    labels = label_map[examples.label_ids].astype(np.int32)
    return _Encoded(ptr, rows, examples.label_ptr, labels, int(examples.num_tokens))


def train(env, hps: dict, choice, log) -> None:
    read_started = time.perf_counter()
    tokens = Interner()
    train_set = read_labelled(env.channel_files("train"), env.channels["train"].content_type,
                              "train", tokens)
    val_set = None
    if "validation" in env.channels:
        val_set = read_labelled(env.channel_files("validation"), env.channels["validation"].content_type,
                                "validation", tokens)
    if hps["early_stopping"] and val_set is None:
        raise HyperparameterError(
            "hyperparameter 'early_stopping' = true needs a validation channel: early stopping "
            "watches validation accuracy; add a 'validation' channel or set early_stopping=false",
            name="early_stopping")
    vocab, word_map, label_map = classifier_vocabulary(train_set, hps["min_count"], tokens)
    v, dim, n_labels = len(vocab), hps["vector_dim"], len(vocab.labels)
    log(f"Read {train_set.num_tokens / 1e6:.2f}M words in {time.perf_counter() - read_started:.2f} s")
    log(f"Number of words: {v}")
    log(f"Number of labels: {n_labels}")
    if n_labels < 2:
        log(f"Only one label ({vocab.labels[0]}) in the train channel: every prediction will be it")

    hashes = word_hashes(tokens.strings())
    train_enc = _encode(train_set, word_map, label_map, hashes, hps, v, None)
    # keep only the buckets some training sentence uses, renumbered after the words
    is_bucket = train_enc.rows >= v
    bucket_ids = np.unique(train_enc.rows[is_bucket] - v).astype(np.int64)
    train_enc.rows[is_bucket] = v + np.searchsorted(bucket_ids, train_enc.rows[is_bucket] - v)
    if hps["word_ngrams"] > 1:
        log(f"Word n-grams up to {hps['word_ngrams']}: {bucket_ids.shape[0]} buckets in use "
            f"(of {hps['buckets']})")
    val_enc = None
    if val_set is not None:
        val_enc = _encode(val_set, word_map, label_map, hashes, hps, v, bucket_ids)
        unseen = int((val_enc.label_ids < 0).sum())
        if unseen:
            log(f"{unseen} validation labels never occur in the train channel; "
                f"those lines can only count as errors")
    del train_set, val_set

    rows = v + bucket_ids.shape[0]
    w_in = np.zeros((rows + 1, dim), dtype=np.float32)   # the last row: buckets training never saw
    w_in[:rows] = initial_weights(rows, dim)
    w_out = np.zeros((n_labels, dim), dtype=np.float32)
    model = ClassifierModel(vocab.words, vocab.labels, w_in, w_out, bucket_ids, hps["word_ngrams"],
                            hps["buckets"], {"min_count": hps["min_count"]})

    threads = choice.threads if choice.name == "numba" else 1
    args = (train_enc.ptr, train_enc.rows, train_enc.label_ptr, train_enc.label_ids, w_in, w_out,
            threads, SEED + 1)
    if choice.name == "numba":
        from nbsage.algorithms.blazingtext.kernels import NumbaClassifier
        engine = NumbaClassifier(*args)
    else:
        from nbsage.algorithms.blazingtext.torch_kernels import TorchClassifier
        engine = TorchClassifier(*args, device=choice.device)

    epochs, n = hps["epochs"], len(train_enc)
    key = checkpoints.fingerprint(hps, v, n_labels, train_enc.num_words,
                                  checkpoints.vocabulary_digest(vocab.words + vocab.labels))
    best = {"accuracy": -1.0, "epoch": 0}
    best_weights = None
    start_epoch = 0
    checkpointer = checkpoints.Checkpointer(env.checkpoints_dir, key, log)
    resumed = checkpointer.load()
    if resumed is not None:
        state, arrays = resumed
        engine.set_weights(arrays["w_in"], arrays["w_out"])
        if arrays["seeds"].shape == engine.stats.seeds.shape:  # same engine and threads
            engine.stats.seeds[:] = arrays["seeds"]
        start_epoch = int(state["epochs_done"])
        best = state["best"]
        if "best_w_in" in arrays:
            best_weights = (arrays["best_w_in"], arrays["best_w_out"])
        log(f"Resuming from the checkpoint in {env.checkpoints_dir}: {start_epoch} of {epochs} "
            f"epochs done")

    schedule = Schedule(log, hps["learning_rate"], epochs, train_enc.num_words)
    example_words = np.diff(train_enc.ptr)
    stopped_early = False
    try:
        for epoch in range(start_epoch, epochs):
            order = np.random.default_rng(SEED + 1000 + epoch).permutation(n).astype(np.int64)
            cum = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(example_words[order], out=cum[1:])
            parts = split_parts(cum, threads)
            for s in range(schedule.slices):
                starts, stops = schedule.bounds(parts, s)
                before = int(engine.stats.words_done.sum())
                engine.run(order, starts, stops, schedule.alpha(epoch, s), schedule.alpha(epoch, s + 1))
                schedule.words_done += int(engine.stats.words_done.sum()) - before
                schedule.report(epoch, s, force=(epoch == epochs - 1 and s == schedule.slices - 1))
            loss = engine.stats.take_loss()
            log(f"Epoch {epoch + 1}/{epochs}: loss {loss:.4f}")
            env.metric("train:loss", loss, step=epoch + 1)
            if val_enc is not None:
                model.w_in, model.w_out = engine.weights()
                acc = _accuracy(model, val_enc)
                log(f"Validation accuracy: {acc:.6f}")
                env.metric("validation:accuracy", acc, step=epoch + 1)
                if acc > best["accuracy"]:
                    best = {"accuracy": acc, "epoch": epoch + 1}
                    if hps["early_stopping"]:
                        log("Validation accuracy improved! Storing best weights...")
                        best_weights = tuple(np.array(a, copy=True) for a in engine.weights())
                elif hps["early_stopping"]:
                    waited = epoch + 1 - best["epoch"]
                    log(f"Validation accuracy has not improved for {waited} epoch(s) "
                        f"(best {best['accuracy']:.6f} after epoch {best['epoch']})")
                    if epoch + 1 >= hps["min_epochs"] and waited >= hps["patience"]:
                        stopped_early = True
            def arrays():
                w_in_now, w_out_now = engine.weights()
                out = {"w_in": w_in_now, "w_out": w_out_now, "seeds": engine.stats.seeds}
                if best_weights is not None:
                    out.update(best_w_in=best_weights[0], best_w_out=best_weights[1])
                return out
            checkpointer.after_epoch({"epochs_done": epochs if stopped_early else epoch + 1, "best": best},
                                     arrays, force=stopped_early or epoch == epochs - 1)
            env.progress(epoch + 1, epochs)
            if stopped_early:
                log(f"Early stopping after epoch {epoch + 1}: no improvement for {hps['patience']} "
                    f"epochs (patience); keeping the weights of epoch {best['epoch']}")
                env.progress(epochs, epochs)
                break
    finally:
        engine.close()
    elapsed = time.perf_counter() - schedule.started
    log("Training finished.")
    log(f"Average throughput in Million words/sec: {schedule.rate() / 1e6:.2f}")
    log(f"Total training time in seconds: {elapsed:.2f}")

    w_in, w_out = best_weights if best_weights is not None else engine.weights()
    model.w_in, model.w_out = np.ascontiguousarray(w_in), np.ascontiguousarray(w_out)
    train_acc = _accuracy(model, train_enc)
    log(f"#train_accuracy: {train_acc:.4f}")
    log(f"Number of train examples: {len(train_enc)}")
    env.metric("train:accuracy", train_acc)
    if val_enc is not None:
        val_acc = _accuracy(model, val_enc)
        log(f"#validation_accuracy: {val_acc:.4f}")
        log(f"Number of validation examples: {len(val_enc)}")
        env.metric("validation:accuracy", val_acc)
    model.save(env.model_dir)
    log(f"Wrote model.bin ({v} words, {bucket_ids.shape[0]} n-gram buckets, {n_labels} labels, "
        f"dimension {dim}) to {env.model_dir}")


def _accuracy(model: ClassifierModel, data: _Encoded, chunk: int = 50_000) -> float:
    """Precision at 1 over the examples, scored in chunks to bound memory."""
    n = len(data)
    hits = 0.0
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        ptr = data.ptr[a:b + 1] - data.ptr[a]
        rows = data.rows[data.ptr[a]:data.ptr[b]]
        probs = model.probabilities(ptr, rows)
        lptr = data.label_ptr[a:b + 1] - data.label_ptr[a]
        lids = data.label_ids[data.label_ptr[a]:data.label_ptr[b]]
        hits += evaluation.accuracy(probs, lptr, lids) * (b - a)
    return hits / n if n else float("nan")
