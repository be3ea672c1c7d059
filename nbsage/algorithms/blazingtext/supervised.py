"""Text classification (mode=supervised): fastText's classifier (Joulin et al. 2016).

A sentence is the mean of the vectors of its words (seen at least min_count times) and of its
word n-grams up to word_ngrams, hashed into `buckets`; a linear layer and a softmax over the
labels follow. Trained with SGD, the learning rate decayed linearly to 0, examples shuffled
each epoch. With a validation channel, accuracy (precision at 1) is measured after every
epoch; early_stopping keeps the best epoch's weights and stops once accuracy has not improved
for `patience` epochs, but never before `min_epochs`.

`train` is the loop; `classifier_data.load` reads the channels, `_build_model` and `_engine`
make the model and the kernel that trains it, `_resume` goes on from a checkpoint, `_epoch` is
one pass over the examples and `_BestEpoch` watches validation accuracy for early stopping.
"""
from __future__ import annotations

import time

import numpy as np

from nbsage.algorithms.blazingtext import checkpoints, classifier_data, evaluation
from nbsage.algorithms.blazingtext.classifier_data import ClassifierData, Encoded
from nbsage.algorithms.blazingtext.model import ClassifierModel
from nbsage.algorithms.blazingtext.training import SEED, Schedule, initial_weights, split_parts


def train(env, hps: dict, choice, log) -> None:
    data = classifier_data.load(env, hps, log)
    model = _build_model(data, hps)
    threads = choice.threads if choice.name == "numba" else 1
    engine = _engine(choice, data.train, model, threads)
    epochs = hps["epochs"]
    key = checkpoints.fingerprint(hps, data.num_words, data.num_labels, data.train.num_words,
                                  checkpoints.vocabulary_digest(data.vocab.words + data.vocab.labels))
    best = _BestEpoch(hps, log)
    checkpointer = checkpoints.Checkpointer(env.checkpoints_dir, key, log)
    start_epoch = _resume(env, checkpointer, engine, best, epochs, log)
    schedule = Schedule(log, hps["learning_rate"], epochs, data.train.num_words)
    try:
        for epoch in range(start_epoch, epochs):
            loss = _epoch(engine, schedule, data.train, epoch, epochs, threads)
            log(f"Epoch {epoch + 1}/{epochs}: loss {loss:.4f}")
            env.metric("train:loss", loss, step=epoch + 1)
            if data.validation is not None:
                model.w_in, model.w_out = engine.weights()
                best.after_epoch(env, epoch, _accuracy(model, data.validation), engine)
            checkpointer.after_epoch(best.state(epoch, epochs), lambda: best.arrays(engine),
                                     force=best.stopped_early or epoch == epochs - 1)
            env.progress(epoch + 1, epochs)
            if best.stopped_early:
                log(f"Early stopping after epoch {epoch + 1}: no improvement for {hps['patience']} "
                    f"epochs (patience); keeping the weights of epoch {best.best['epoch']}")
                env.progress(epochs, epochs)
                break
    finally:
        engine.close()
    elapsed = time.perf_counter() - schedule.started
    log("Training finished.")
    log(f"Average throughput in Million words/sec: {schedule.rate() / 1e6:.2f}")
    log(f"Total training time in seconds: {elapsed:.2f}")
    _write_model(env, model, best.weights if best.weights is not None else engine.weights(), data, log)


def _build_model(data: ClassifierData, hps: dict) -> ClassifierModel:
    """The model with fastText's initial weights: input rows uniform, output rows zero."""
    rows = data.num_words + data.bucket_ids.shape[0]
    dim = hps["vector_dim"]
    w_in = np.zeros((rows + 1, dim), dtype=np.float32)   # the last row: buckets training never saw
    w_in[:rows] = initial_weights(rows, dim)
    w_out = np.zeros((data.num_labels, dim), dtype=np.float32)
    return ClassifierModel(data.vocab.words, data.vocab.labels, w_in, w_out, data.bucket_ids,
                           hps["word_ngrams"], hps["buckets"], {"min_count": hps["min_count"]})


def _engine(choice, train: Encoded, model: ClassifierModel, threads: int):
    """The kernel that trains the model's weights in place: numba's hogwild threads or PyTorch."""
    args = (train.ptr, train.rows, train.label_ptr, train.label_ids, model.w_in, model.w_out,
            threads, SEED + 1)
    if choice.name == "numba":
        from nbsage.algorithms.blazingtext.kernels import NumbaClassifier
        return NumbaClassifier(*args)
    from nbsage.algorithms.blazingtext.torch_kernels import TorchClassifier
    return TorchClassifier(*args, device=choice.device)


def _resume(env, checkpointer, engine, best: "_BestEpoch", epochs: int, log) -> int:
    """The first epoch to train: after the checkpoint's epochs, whose weights the engine takes."""
    resumed = checkpointer.load()
    if resumed is None:
        return 0
    state, arrays = resumed
    engine.set_weights(arrays["w_in"], arrays["w_out"])
    if arrays["seeds"].shape == engine.stats.seeds.shape:  # same engine and threads
        engine.stats.seeds[:] = arrays["seeds"]
    start_epoch = int(state["epochs_done"])
    best.best = state["best"]
    if "best_w_in" in arrays:
        best.weights = (arrays["best_w_in"], arrays["best_w_out"])
    log(f"Resuming from the checkpoint in {env.checkpoints_dir}: {start_epoch} of {epochs} "
        f"epochs done")
    return start_epoch


def _epoch(engine, schedule: Schedule, train: Encoded, epoch: int, epochs: int, threads: int) -> float:
    """One pass over the examples in a new random order, in the schedule's slices: the loss."""
    n = len(train)
    order = np.random.default_rng(SEED + 1000 + epoch).permutation(n).astype(np.int64)
    cum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.diff(train.ptr)[order], out=cum[1:])
    parts = split_parts(cum, threads)
    for s in range(schedule.slices):
        starts, stops = schedule.bounds(parts, s)
        before = int(engine.stats.words_done.sum())
        engine.run(order, starts, stops, schedule.alpha(epoch, s), schedule.alpha(epoch, s + 1))
        schedule.words_done += int(engine.stats.words_done.sum()) - before
        schedule.report(epoch, s, force=(epoch == epochs - 1 and s == schedule.slices - 1))
    return engine.stats.take_loss()


class _BestEpoch:
    """Validation accuracy after each epoch: the best so far, its weights (with early_stopping)
    and whether to stop (no improvement for `patience` epochs, and at least `min_epochs` done)."""

    def __init__(self, hps: dict, log):
        self.hps, self.log = hps, log
        self.best = {"accuracy": -1.0, "epoch": 0}
        self.weights: tuple | None = None
        self.stopped_early = False

    def after_epoch(self, env, epoch: int, acc: float, engine) -> None:
        log, hps = self.log, self.hps
        log(f"Validation accuracy: {acc:.6f}")
        env.metric("validation:accuracy", acc, step=epoch + 1)
        if acc > self.best["accuracy"]:
            self.best = {"accuracy": acc, "epoch": epoch + 1}
            if hps["early_stopping"]:
                log("Validation accuracy improved! Storing best weights...")
                self.weights = tuple(np.array(a, copy=True) for a in engine.weights())
        elif hps["early_stopping"]:
            waited = epoch + 1 - self.best["epoch"]
            log(f"Validation accuracy has not improved for {waited} epoch(s) "
                f"(best {self.best['accuracy']:.6f} after epoch {self.best['epoch']})")
            if epoch + 1 >= hps["min_epochs"] and waited >= hps["patience"]:
                self.stopped_early = True

    def state(self, epoch: int, epochs: int) -> dict:
        """The checkpoint's state after `epoch`: a stopped run counts as finished."""
        return {"epochs_done": epochs if self.stopped_early else epoch + 1, "best": self.best}

    def arrays(self, engine) -> dict:
        w_in, w_out = engine.weights()
        out = {"w_in": w_in, "w_out": w_out, "seeds": engine.stats.seeds}
        if self.weights is not None:
            out.update(best_w_in=self.weights[0], best_w_out=self.weights[1])
        return out


def _write_model(env, model: ClassifierModel, weights, data: ClassifierData, log) -> None:
    """Final accuracy on train (and validation) with the kept weights; model.bin written."""
    w_in, w_out = weights
    model.w_in, model.w_out = np.ascontiguousarray(w_in), np.ascontiguousarray(w_out)
    train_acc = _accuracy(model, data.train)
    log(f"#train_accuracy: {train_acc:.4f}")
    log(f"Number of train examples: {len(data.train)}")
    env.metric("train:accuracy", train_acc)
    if data.validation is not None:
        val_acc = _accuracy(model, data.validation)
        log(f"#validation_accuracy: {val_acc:.4f}")
        log(f"Number of validation examples: {len(data.validation)}")
        env.metric("validation:accuracy", val_acc)
    model.save(env.model_dir)
    log(f"Wrote model.bin ({data.num_words} words, {data.bucket_ids.shape[0]} n-gram buckets, "
        f"{data.num_labels} labels, dimension {model.w_in.shape[1]}) to {env.model_dir}")


def _accuracy(model: ClassifierModel, data: Encoded, chunk: int = 50_000) -> float:
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
