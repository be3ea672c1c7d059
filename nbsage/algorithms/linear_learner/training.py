"""Linear Learner training: read, normalise, train all models at once, select, save.

Steps (SageMaker's "How linear learner works"): 1. statistics of a sample of the training data
scale the features (and the label, for regression); 2. `num_models` linear models with different
learning rates and regularisation are trained together by mini-batch SGD/Adam/RMSProp in one
weight tensor [features, models, outputs], each keeping its best epoch, with early stopping on
the validation channel (or on the training data); 3. the best model on the validation channel
(or a training sample) is kept and, for binary classification, its decision threshold is tuned
for binary_classifier_model_selection_criteria. The normalisation is folded into the saved
weights, so the model scores raw features.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbsage.algorithms.base import AUTO
from nbsage.algorithms.linear_learner import evaluation
from nbsage.algorithms.linear_learner.data import (
    Scaler, Split, check_labels, fit_scaler, normalise, read_channel, sample)
from nbsage.algorithms.linear_learner.declaration import ALGORITHM
from nbsage.algorithms.linear_learner.inference import LinearModel
from nbsage.algorithms.linear_learner.losses import make_loss, sigmoid
from nbsage.algorithms.linear_learner.optim import ParallelOptimizer
from nbsage.algorithms.linear_learner.settings import Settings, draw_models, fit_num_models, resolve
from nbsage.algorithms.log_lines import SageMakerLog
from nbsage.checkpoint_files import write_checkpoint
from nbsage.errors import HyperparameterError, NBSageError

SEED = 0
EARLY_STOPPING_SAMPLE = 10_000    # training records scored each epoch when there is no validation
SELECTION_SAMPLE = 200_000        # most records scored by every model (per epoch and at the end)
EVALUATION_ELEMENTS = 1 << 22     # scores held at once when evaluating many classes
SMALL_BATCH_WORK = 1 << 24        # multiply-adds per mini-batch below which BLAS uses one thread
CHECKPOINT_NAME = "linear-learner-checkpoint"


def _blas_limiter(work_per_batch: int):
    """A context that keeps BLAS on one thread for small mini-batches.

    OpenBLAS spreads even a 1000 x 50 x 32 product over every core; the hand-offs cost more than
    the product, and far more on a busy machine. Without threadpoolctl nothing is limited.
    """
    if work_per_batch >= SMALL_BATCH_WORK:
        return contextlib.nullcontext
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return contextlib.nullcontext
    controller = ThreadpoolController()
    return lambda: controller.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class _Run:
    """How long training runs: epochs, mini-batch size and the early-stopping rule."""
    epochs: int
    batch: int
    patience: int
    tolerance: float

    @classmethod
    def from_hps(cls, hps: dict) -> "_Run":
        return cls(int(hps.get("epochs", 15)), int(hps.get("mini_batch_size", 1000)),
                   int(hps.get("early_stopping_patience", 3)),
                   float(hps.get("early_stopping_tolerance", 0.001)))


class TrainingDiverged(NBSageError):
    """Every parallel model's loss overflowed."""


def train(env) -> None:
    started = time.time()
    log = SageMakerLog(env)
    hps = _configuration(env, log)
    settings = resolve(hps)
    train_raw, splits_raw = _read_channels(env, hps, settings, log)
    d = train_raw.num_features
    rng = np.random.default_rng(SEED)
    grid = _draw_models(settings, train_raw.labels.astype(np.float64), log)
    scaler, train_split, splits = _normalise_channels(train_raw, splits_raw, settings, hps, rng, log)
    del train_raw, splits_raw

    trainer = _Trainer(env, log, settings, hps, grid, scaler, d)
    model = _fit_and_select(trainer, train_split, splits, rng, log)
    if "validation" in splits:
        trainer.report("validation", splits["validation"], model)
    trainer.report_train_final(sample(train_split, SELECTION_SAMPLE, rng), model)
    if "test" in splits:
        trainer.report("test", splits["test"], model)
    else:
        log.info("Test data is not provided.")
    model.save(Path(env.model_dir))
    log.info(f"Saved the model to {env.model_dir}")
    env.log(log.total_time("Linear Learner", started))


def _configuration(env, log: SageMakerLog) -> dict:
    """The validated hyperparameters, logged as SageMaker does: defaults, the job's, merged."""
    defaults = {hp.name: hp.to_string(hp.default) for hp in ALGORITHM.hyperparameters
                if hp.default is not None}
    log.info(f"Reading default configuration: {json.dumps(defaults, sort_keys=True)}")
    log.info(f"Merging with provided configuration from "
             f"{env.root.config_dir / 'hyperparameters.json'}: {json.dumps(env.hyperparameters, sort_keys=True)}")
    hps = ALGORITHM.validate(env.hyperparameters)
    final = {**defaults, **{k: str(v) for k, v in env.hyperparameters.items()}}
    log.info(f"Final configuration: {json.dumps(final, sort_keys=True)}")
    ALGORITHM.check_channels({name: ch.content_type for name, ch in env.channels.items()})
    return hps


def _read_channels(env, hps: dict, settings: Settings, log: SageMakerLog):
    """(train, {validation, test}) as read, labels checked; feature_dim and num_models resolved
    from the train channel, and every resolved `auto` logged."""
    train_raw = read_channel(env, "train", None)
    d = train_raw.num_features
    if hps.get("feature_dim", AUTO) != AUTO and hps["feature_dim"] != d:
        raise HyperparameterError(
            f"hyperparameter 'feature_dim' = {hps['feature_dim']} does not match the train channel, "
            f"whose records have {d} features (the columns after the label); set feature_dim={d} "
            f"or leave it auto")
    if hps.get("feature_dim", AUTO) == AUTO:
        settings.resolved["feature_dim"] = (d, "read from the train channel")
    check_labels(env, "train", train_raw, settings)
    splits_raw = {}
    for name in ("validation", "test"):
        if name in env.channels:
            table = read_channel(env, name, d)
            check_labels(env, name, table, settings)
            splits_raw[name] = table
    note = fit_num_models(settings, d)
    for name, (value, why) in sorted(settings.resolved.items()):
        log.info(f"Hyperparameter {name}={hps.get(name, AUTO)} resolved to {value}"
                 + (f" ({why})" if why else ""))
    if note:
        log.info(note)
    return train_raw, splits_raw


def _draw_models(settings: Settings, y_train: np.ndarray, log: SageMakerLog):
    """The parallel models' settings; binary classifiers search around the class balance."""
    positive_ratio = 1.0
    if settings.predictor_type == "binary_classifier":
        positives = float(y_train.sum())
        positive_ratio = (len(y_train) - positives) / positives if positives else 1.0
        pw = settings.positive_example_weight_mult
        if pw in ("balanced", AUTO):
            log.info(f"positive_example_weight_mult={pw}: negatives/positives = {positive_ratio:.6g}"
                     + (" (the parallel models search around it)" if pw == AUTO else ""))
    return draw_models(settings, positive_ratio, np.random.default_rng(SEED + 4))


def _normalise_channels(train_raw, splits_raw: dict, settings: Settings, hps: dict, rng, log: SageMakerLog):
    """(scaler, train split, {validation, test} splits): statistics of a train sample scale
    every channel's features (and labels, for regression)."""
    y_train = train_raw.labels.astype(np.float64)
    scaler = fit_scaler(train_raw.features, y_train, settings, hps, rng, log)
    train_split = normalise("train", train_raw.features, y_train, scaler, settings)
    splits = {name: normalise(name, t.features, t.labels.astype(np.float64), scaler, settings)
              for name, t in splits_raw.items()}
    return scaler, train_split, splits


def _fit_and_select(trainer: "_Trainer", train_split: Split, splits: dict, rng, log: SageMakerLog) -> LinearModel:
    """Train every parallel model, stopping early on validation (or a training sample), and
    choose the best on validation (or a training sample)."""
    has_validation = "validation" in splits
    if has_validation:
        es_split = sample(splits["validation"], SELECTION_SAMPLE, rng)
    else:
        log.info("Validation data is not provided: early stopping uses the training loss and the "
                 "final model is chosen on a sample of the training data.")
        es_split = sample(train_split, EARLY_STOPPING_SAMPLE, rng)
    selection = sample(splits["validation"] if has_validation else train_split, SELECTION_SAMPLE, rng)
    # models with too high a learning rate may overflow; they are excluded, not reported on stderr
    with np.errstate(over="ignore", invalid="ignore"):
        trainer.fit(train_split, es_split, has_validation)
        return trainer.select(selection, rng)


# -- training -----------------------------------------------------------------------------------

class _Trainer:
    def __init__(self, env, log: SageMakerLog, settings: Settings, hps: dict, grid, scaler: Scaler, d: int):
        self.env, self.log, self.settings, self.hps, self.grid, self.scaler = env, log, settings, hps, grid, scaler
        self.d = d
        self.m = settings.num_models
        self.k = settings.outputs
        self.loss = make_loss(settings.loss, hps, scaler.label_scale)      # normalised label units
        self.raw_loss = make_loss(settings.loss, hps, 1.0)                 # label units
        self.report_factor = scaler.label_scale ** self.loss.label_power   # normalised -> label units
        self.token = f"{self.loss.token}_objective"
        self.binary = settings.predictor_type == "binary_classifier"
        self.multiclass = settings.predictor_type == "multiclass_classifier"
        self.class_weight = None
        self.w = self._init_weights()
        self.b = np.full((self.m, self.k), float(hps.get("init_bias", 0.0)) if settings.use_bias else 0.0)
        self.best_w = self.w.copy()
        self.best_b = self.b.copy()
        self.best_value = np.full(self.m, -np.inf)
        self.best_epoch = np.zeros(self.m, dtype=np.int64)

    def _init_weights(self) -> np.ndarray:
        # model 0 draws from its own stream, so it starts the same whatever num_models is
        first, rest = np.random.default_rng(SEED + 1), np.random.default_rng(SEED + 2)
        shape0, shape_rest = (self.d, 1, self.k), (self.d, self.m - 1, self.k)
        if self.hps.get("init_method", "uniform") == "normal":
            sigma = float(self.hps.get("init_sigma", 0.01))
            parts = [first.normal(0.0, sigma, shape0), rest.normal(0.0, sigma, shape_rest)]
        else:
            s = float(self.hps.get("init_scale", 0.07))
            parts = [first.uniform(-s, s, shape0), rest.uniform(-s, s, shape_rest)]
        return np.concatenate(parts, axis=1)

    # sample weights: positives weigh positive_example_weight_mult, classes their balance weight
    def _train_weight(self, y):
        if self.binary:
            pw = self.grid.positive_example_weight_mult
            if np.all(pw == 1.0):
                return None
            return np.where(y[:, None] == 1, pw[None, :], 1.0)
        if self.class_weight is not None:
            return self.class_weight[y.astype(np.int64)]
        return None

    def _eval_weight(self, y):
        """Evaluation weighs every model the same way: with model 0's (the user's) weights."""
        if self.binary:
            pw0 = float(self.grid.positive_example_weight_mult[0])
            return None if pw0 == 1.0 else np.where(y == 1, pw0, 1.0)
        if self.class_weight is not None:
            return self.class_weight[y.astype(np.int64)]
        return None

    def scores(self, x, w=None, b=None) -> np.ndarray:
        w = self.w if w is None else w
        b = self.b if b is None else b
        # float32 data times float64 weights would miss BLAS: numpy's mixed-type matmul is a slow loop
        x = x.astype(np.float64, copy=False)
        z = x @ w.reshape(self.d, self.m * self.k) + b.reshape(-1)
        return z.reshape(len(x), self.m, self.k)

    def evaluate(self, split: Split, w=None, b=None):
        """(loss of each model [models] in normalised units, scores [n, models] for binary else None).

        Scores of many classes are computed a slice of records at a time, to bound memory.
        """
        weight = self._eval_weight(split.y)
        n = len(split.y)
        if self.binary:
            z = self.scores(split.x, w, b)
            return self.loss.value(z, split.y, weight), z[:, :, 0]
        rows = max(1, EVALUATION_ELEMENTS // (self.m * self.k))
        total = np.zeros(self.m)
        for start in range(0, n, rows):
            sl = slice(start, start + rows)
            z = self.scores(split.x[sl], w, b)
            part = self.loss.value(z, split.y[sl], None if weight is None else weight[sl])
            total += part * len(z)
        return total / n, None

    def _criterion(self, split: Split, z, loss_per_model, from_validation: bool):
        """Per-model value to maximise and its name: the selection criterion at each model's
        best threshold (binary, on validation data), else minus the loss."""
        s = self.settings
        if self.binary and s.criteria != "loss_function" and from_validation:
            value, _ = evaluation.tune_threshold(
                z, split.y, s.criteria, s.f_beta, float(self.hps.get("target_recall", 0.8)),
                float(self.hps.get("target_precision", 0.8)))
            name = f"sampled_{s.criteria}"
        else:
            value, name = -loss_per_model * self.report_factor, f"sampled_{self.token}"
        # a model whose scores overflowed (too high a learning rate) can never be the best
        return np.where(np.isfinite(loss_per_model), value, -np.inf), name

    def fit(self, train: Split, es: Split, has_validation: bool) -> None:
        """Train every model for up to `epochs`, resuming from a checkpoint of the same run."""
        s, log = self.settings, self.log
        n = len(train.y)
        self._balance_classes(train.y)
        run = _Run.from_hps(self.hps)
        opt = ParallelOptimizer(s, self.grid, self.w.shape)
        order_rng = np.random.default_rng(SEED + 3)
        # a checkpoint resumes a run with the same settings and data; epochs may grow in between
        fingerprint = json.dumps({"hyperparameters": {k: str(v) for k, v in sorted(self.hps.items())
                                                      if k != "epochs"},
                                  "records": n, "features": self.d})
        first_epoch, stale = self._resume(fingerprint, opt, order_rng)
        log.info(f"Training {self.m} model(s) on {n} records of {self.d} features for up to "
                 f"{run.epochs} epochs (mini_batch_size={run.batch}, optimizer={s.optimizer}, loss={s.loss})")
        if first_epoch >= run.epochs or (stale >= run.patience and first_epoch > 0):
            log.info("The checkpoint holds a finished training run: nothing left to train")
            return
        self._epochs(train, es, has_validation, run, opt, order_rng, fingerprint, first_epoch, stale)

    def _balance_classes(self, y) -> None:
        """balance_multiclass_weights: each class weighs n / (classes * its count)."""
        if not (self.multiclass and bool(self.hps.get("balance_multiclass_weights", False))):
            return
        counts = np.bincount(y.astype(np.int64), minlength=self.k).astype(np.float64)
        self.class_weight = np.where(counts > 0, len(y) / (self.k * np.maximum(counts, 1.0)), 0.0)
        self.log.info("balance_multiclass_weights=true: class weights "
                      + ", ".join(f"{c}: {w:.4g}" for c, w in enumerate(self.class_weight[:20]))
                      + (" ..." if self.k > 20 else ""))

    def _epochs(self, train: Split, es: Split, has_validation: bool, run: "_Run", opt, order_rng,
                fingerprint: str, first_epoch: int, stale: int) -> None:
        """The epochs from `first_epoch`: train, score, keep the best, checkpoint, stop early."""
        log, env, n = self.log, self.env, len(train.y)
        blas = _blas_limiter(min(run.batch, n) * self.d * self.m * self.k)
        for epoch in range(first_epoch, run.epochs):
            tick = time.time()
            order = order_rng.permutation(n)
            epoch_loss = np.zeros(self.m)
            with blas():
                self._epoch(train, order, run.batch, opt, epoch_loss)
            elapsed = max(time.time() - tick, 1e-9)
            train_loss = epoch_loss / n * self.report_factor
            log.quality(f"train {self.token}", "loss", train_loss[0], epoch)
            env.metric("train:objective_loss", float(train_loss[0]), step=epoch)
            stale = self._keep_best(es, has_validation, epoch, stale, run.tolerance)
            pct = int(round(100.0 * (epoch + 1) / run.epochs))
            log.info(f"#progress_metric: host={log.host}, completed {pct} % of epochs")
            env.progress(epoch + 1, run.epochs)
            log.info(f"#throughput_metric: host={log.host}, train throughput={n / elapsed!r} records/second")
            self._save_checkpoint(fingerprint, epoch, stale, opt, order_rng)
            if stale >= run.patience and epoch + 1 < run.epochs:
                log.info(f"Early stopping: no relative improvement above {run.tolerance:g} for "
                         f"{run.patience} epoch(s); stopping after epoch {epoch}")
                env.progress(run.epochs, run.epochs)
                break

    def _keep_best(self, es: Split, has_validation: bool, epoch: int, stale: int, tolerance: float) -> int:
        """Score the epoch on the early-stopping records; each model keeps its best epoch.
        Returns the epochs since any model last improved by more than the relative tolerance."""
        log = self.log
        es_loss, z_es = self.evaluate(es)
        if has_validation:
            log.quality(f"validation {self.token}", "loss", es_loss[0] * self.report_factor, epoch)
            self.env.metric("validation:objective_loss", float(es_loss[0] * self.report_factor), step=epoch)
        value, criteria_name = self._criterion(es, z_es, es_loss, has_validation)
        significant = (value - self.best_value) > tolerance * np.abs(self.best_value)
        significant |= self.best_value == -np.inf
        significant &= np.isfinite(value)
        improved = value > self.best_value
        if improved.any():
            self.best_value[improved] = value[improved]
            self.best_w[:, improved, :] = self.w[:, improved, :]
            self.best_b[improved] = self.b[improved]
            self.best_epoch[improved] = epoch
        current = float(value.max())
        shown = -current if criteria_name.endswith("_objective") else current
        log.info(f"#early_stopping_criteria_metric: host={log.host}, epoch={epoch}, "
                 f"criteria={criteria_name}, value={shown!r}")
        if significant.any():
            log.info(f"Epoch {epoch}: Loss improved. Updating best model"
                     + (f" ({int(significant.sum())} of {self.m} models improved)" if self.m > 1 else ""))
            return 0
        log.info(f"Epoch {epoch}: Loss has not improved for {stale + 1} epoch(s)")
        return stale + 1

    def _epoch(self, train: Split, order, batch: int, opt, epoch_loss) -> None:
        """One pass over the training records in mini-batches, all models at once."""
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            xb, yb = train.x[idx].astype(np.float64), train.y[idx]
            z = self.scores(xb)
            loss, dz = self.loss.value_and_grad(z, yb, self._train_weight(yb))
            epoch_loss += loss * len(idx)
            grad_w = (xb.T @ dz.reshape(len(idx), self.m * self.k)).reshape(self.d, self.m, self.k)
            opt.step(self.w, self.b, grad_w, dz.sum(axis=0))

    # -- checkpoints: the whole training state after each epoch, so a stopped job resumes --------

    def _checkpoint_paths(self):
        folder = Path(self.env.checkpoints_dir)
        return folder, folder / f"{CHECKPOINT_NAME}.npz", folder / f"{CHECKPOINT_NAME}.json"

    def _save_checkpoint(self, fingerprint: str, epoch: int, stale: int, opt, order_rng) -> None:
        folder, arrays_path, state_path = self._checkpoint_paths()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            arrays = {"w": self.w, "b": self.b, "best_w": self.best_w, "best_b": self.best_b,
                      "best_value": self.best_value, "best_epoch": self.best_epoch}
            arrays.update({f"state_w{i}": a for i, a in enumerate(opt.state_w)})
            arrays.update({f"state_b{i}": a for i, a in enumerate(opt.state_b)})
            write_checkpoint(arrays_path, lambda f: np.savez(f, **arrays))
            state = {"fingerprint": fingerprint, "epoch": epoch, "stale": stale, "updates": opt.t,
                     "order_rng": order_rng.bit_generator.state}
            write_checkpoint(state_path, json.dumps(state))
        except OSError as e:  # a full or read-only disk must not fail the training itself
            self.log.info(f"Could not write a checkpoint to {folder}: {e}")

    def _resume(self, fingerprint: str, opt, order_rng) -> tuple[int, int]:
        """(first epoch to train, stale epochs) after restoring a matching checkpoint, else (0, 0)."""
        folder, arrays_path, state_path = self._checkpoint_paths()
        if not (arrays_path.exists() and state_path.exists()):
            return 0, 0
        try:
            state = json.loads(state_path.read_text())
            if state.get("fingerprint") != fingerprint:
                self.log.info(f"Ignoring the checkpoint in {folder}: it was written for other "
                              "hyperparameters or data")
                return 0, 0
            with np.load(arrays_path) as arrays:
                restored = {k: arrays[k] for k in arrays.files}
            for name in ("w", "b", "best_w", "best_b", "best_value", "best_epoch"):
                if restored[name].shape != getattr(self, name).shape:
                    raise ValueError(f"{name} has shape {restored[name].shape}")
                setattr(self, name, restored[name].copy())
            opt.state_w = [restored[f"state_w{i}"].copy() for i in range(len(opt.state_w))]
            opt.state_b = [restored[f"state_b{i}"].copy() for i in range(len(opt.state_b))]
            opt.t = int(state["updates"])
            order_rng.bit_generator.state = state["order_rng"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.log.info(f"Ignoring the checkpoint in {folder}: it cannot be read ({e})")
            return 0, 0
        epoch = int(state["epoch"])
        self.log.info(f"Resuming from the checkpoint in {folder}: epochs 0..{epoch} are done")
        return epoch + 1, int(state["stale"])

    def select(self, selection: Split, rng) -> "LinearModel":
        """The best model on the selection records, with its threshold, folded to raw features."""
        s, log = self.settings, self.log
        loss, z = self.evaluate(selection, self.best_w, self.best_b)
        if not np.isfinite(loss).any():
            raise TrainingDiverged(
                "training diverged: the loss of every model became infinite or NaN; lower "
                "learning_rate (or leave it auto), or set normalize_data=true")
        threshold_z = np.zeros(self.m)
        if self.binary and s.criteria != "loss_function":
            calib = min(len(selection.y), s.num_calibration_samples)
            idx = np.arange(len(selection.y)) if calib == len(selection.y) else np.sort(
                rng.choice(len(selection.y), calib, replace=False))
            value, threshold_z = evaluation.tune_threshold(
                z[idx], selection.y[idx], s.criteria, s.f_beta,
                float(self.hps.get("target_recall", 0.8)), float(self.hps.get("target_precision", 0.8)))
        else:
            value = -loss
        value = np.where(np.isfinite(loss), value, -np.inf)
        best = int(np.argmax(value))  # ties go to the lowest index: model 0, the user's settings
        described = self.grid.describe(best, s.optimizer)
        if self.binary and s.positive_example_weight_mult == AUTO:
            described["positive_example_weight_mult"] = float(f"{self.grid.positive_example_weight_mult[best]:.6g}")
        log.info(f"Best model found for hyperparameters: {json.dumps(described)}")
        log.info(f"Model {best} of {self.m} selected (best epoch {int(self.best_epoch[best])})")
        self.chosen = (self.best_w[:, best, :].copy(), self.best_b[best].copy())
        w, b = self._fold(*self.chosen)
        threshold = None
        if self.binary:
            tz = float(threshold_z[best])
            threshold = float(sigmoid(tz)) if s.loss == "logistic" else tz
            log.info(f"Decision threshold for {s.criteria}: {threshold!r}"
                     + (" (probability)" if s.loss == "logistic" else " (margin)"))
        resolved = {k: v[0] for k, v in s.resolved.items()}
        return LinearModel(
            weights=w, bias=b, predictor_type=s.predictor_type, loss=s.loss,
            num_classes=self.k if self.multiclass else (2 if self.binary else 1),
            threshold=threshold,
            info={"selected_model": best, "best_epoch": int(self.best_epoch[best]),
                  "num_models": self.m, "model_hyperparameters": described,
                  "selection_criteria": s.criteria if self.binary else "loss_function",
                  "resolved_auto": resolved,
                  "hyperparameters": {k: v for k, v in self.hps.items() if not k.startswith("_")},
                  "scaler": {"feature_mean": self.scaler.mean.tolist(),
                             "feature_scale": self.scaler.scale.tolist(),
                             "label_mean": self.scaler.label_mean,
                             "label_scale": self.scaler.label_scale}})

    def _fold(self, w, b):
        """Weights on raw features and raw labels from the normalised ones."""
        sc = self.scaler
        w_raw = w / sc.scale[:, None]
        b_raw = b - sc.mean @ w_raw
        return w_raw * sc.label_scale, b_raw * sc.label_scale + sc.label_mean

    def _raw_scores(self, split: Split) -> np.ndarray:
        """Scores of the chosen model in label units: the saved model's on raw features."""
        w, b = self.chosen
        return (split.x.astype(np.float64) @ w + b) * self.scaler.label_scale + self.scaler.label_mean

    def report(self, split_name: str, split: Split, model: "LinearModel") -> None:
        """Final metrics of the chosen model on a labelled channel: log lines and env.metric."""
        s, log = self.settings, self.log
        z = self._raw_scores(split)
        y = split.y_raw
        zz = z[:, None, :]
        weight = self._eval_weight(y)
        objective = float(self.raw_loss.value(zz, y, weight)[0])
        values = [(self.token, "loss", "objective_loss", objective)]
        if self.binary:
            tz = model.threshold_margin()
            m = evaluation.binary_metrics(z[:, 0], y, tz, s.f_beta)
            beta_token = f"binary_f_{s.f_beta:.3f}"
            values += [("binary_classification_accuracy", "score", "binary_classification_accuracy",
                        m["binary_classification_accuracy"]),
                       (beta_token, "score", "binary_f_beta", m["binary_f_beta"]),
                       ("precision", "score", "precision", m["precision"]),
                       ("recall", "score", "recall", m["recall"]),
                       ("roc_auc_score", "score", "roc_auc_score", m["roc_auc_score"])]
        elif self.multiclass:
            top_k = int(self.hps.get("accuracy_top_k", 3))
            m = evaluation.multiclass_metrics(z, y, self.k, top_k, s.f_beta)
            values += [("multiclass_accuracy", "score", "multiclass_accuracy", m["multiclass_accuracy"]),
                       (f"multiclass_top_k_accuracy_{top_k}", "score", "multiclass_top_k_accuracy",
                        m["multiclass_top_k_accuracy"]),
                       ("dcg", "score", "dcg", m["dcg"]),
                       ("macro_recall", "score", "macro_recall", m["macro_recall"]),
                       ("macro_precision", "score", "macro_precision", m["macro_precision"]),
                       (f"macro_f_{s.f_beta:.3f}", "score", "macro_f_beta", m["macro_f_beta"])]
        else:
            m = evaluation.regression_metrics(z[:, 0], y)
            values += [("mse", "loss", "mse", m["mse"]), ("rmse", "loss", "rmse", m["rmse"]),
                       ("absolute_loss", "loss", "absolute_loss", m["absolute_loss"])]
        for token, _, _, value in values:
            if not math.isnan(value):
                log.info(f"#{split_name}_score ({log.host}) : ({token!r}, {value!r})")
        for token, kind, name, value in values:
            if math.isnan(value):
                continue
            log.quality(f"{split_name} {token}", kind, value)
            self.env.metric(f"{split_name}:{name}", value)
            if name == "objective_loss" and split_name == "validation":
                self.env.metric("validation:objective_loss:final", value)

    def report_train_final(self, split: Split, model: "LinearModel") -> None:
        z = self._raw_scores(split)[:, None, :]
        y = split.y_raw
        value = float(self.raw_loss.value(z, y, self._eval_weight(y))[0])
        self.log.quality(f"train {self.token}", "loss", value)
        self.env.metric("train:objective_loss:final", value)
