"""The xgboost training callbacks that make a job look like SageMaker's: log lines, metrics, checkpoints.

`Reporter` prints each round's evaluation line as SageMaker's container logs it
(`[17]\\ttrain-rmse:1.23000\\tvalidation-rmse:1.45000`, the line SageMaker's metric regexes
scrape) and emits metrics and progress; `Checkpointer` saves `xgboost-checkpoint.<round>`.
This module imports xgboost: only training imports it.
"""
from __future__ import annotations

import time
from pathlib import Path

from nbsage.algorithms.xgboost.declaration import is_maximized
from nbsage.algorithms.xgboost.library import xgb
from nbsage.algorithms.xgboost.model import CHECKPOINTS_KEPT, save_checkpoint


class Reporter(xgb.callback.TrainingCallback):
    """Prints each round's evaluation line as SageMaker logs it, and emits metrics and progress."""

    def __init__(self, env, num_round: int, emit_metrics: bool = True, progress_offset: int = 0,
                 progress_total: int | None = None):
        super().__init__()
        self.env, self.num_round, self.emit_metrics = env, num_round, emit_metrics
        self.progress_offset, self.progress_total = progress_offset, progress_total or num_round
        self.model = None
        self.last_metric = None  # what early stopping watches when no metric is named
        self.start = 0

    def before_training(self, model):
        # xgboost counts epochs from 0 in every call, also when continuing a checkpoint
        self.start = model.num_boosted_rounds()
        return model

    def after_iteration(self, model, epoch, evals_log) -> bool:
        self.model = model
        epoch += self.start
        if evals_log:
            line = [f"[{epoch}]"]
            values = []
            for data, metrics in evals_log.items():
                for metric, history in metrics.items():
                    score = history[-1][0] if isinstance(history[-1], tuple) else history[-1]
                    line.append(f"{data}-{metric}:{score:.5f}")
                    values.append((f"{data}:{metric}", score))
                    self.last_metric = metric
            self.env.log("\t".join(line))
            if self.emit_metrics:
                for name, score in values:
                    self.env.metric(name, score, step=epoch)
        self.env.progress(self.progress_offset + epoch + 1, self.progress_total)
        return False


class Checkpointer(xgb.callback.TrainingCallback):
    """Saves xgboost-checkpoint.<round> after each round and keeps the newest few.

    A round's checkpoint is skipped while saving has taken more than 2% of the training time
    (large models, fast rounds), so checkpoints never slow training by more than that; the last
    round is always saved.
    """

    def __init__(self, directory: Path, num_round: int, keep: int = CHECKPOINTS_KEPT):
        super().__init__()
        self.directory, self.num_round, self.keep = Path(directory), num_round, keep
        self.started = time.perf_counter()
        self.spent = 0.0
        self.last_saved = None
        self.start = 0

    def before_training(self, model):
        self.start = model.num_boosted_rounds()
        return model

    def after_iteration(self, model, epoch, evals_log) -> bool:
        epoch += self.start
        last = epoch + 1 >= self.num_round
        if last or self.spent <= 0.02 * (time.perf_counter() - self.started):
            self.save(model, epoch)
        return False

    def after_training(self, model):
        rounds = model.num_boosted_rounds()
        if rounds and self.last_saved != rounds - 1:
            self.save(model, rounds - 1)
        return model

    def save(self, model, epoch: int) -> None:
        began = time.perf_counter()
        save_checkpoint(model, self.directory, epoch, self.keep)
        self.last_saved = epoch
        self.spent += time.perf_counter() - began


class Quiet:
    """The env of a host other than the master: its rounds' lines, metrics and progress would repeat the master's."""

    def __init__(self, env):
        self.env = env

    def log(self, message: str) -> None:
        pass

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def progress(self, step: int, total: int) -> None:
        pass


def early_stopping(env, hps: dict, params: dict, plan, has_validation: bool):
    """SageMaker's early stopping: on `validation`, the tuning or last eval metric, the best round kept."""
    rounds = hps.get("early_stopping_rounds")
    if not rounds:
        return None
    if not has_validation:
        env.log("early_stopping_rounds is ignored: there is no validation channel")
        return None
    metric = plan.early_stopping_metric
    env.log(f"Early stopping after {rounds} rounds without improvement of validation-"
            f"{metric or 'the default metric'}")
    return xgb.callback.EarlyStopping(
        rounds=rounds, metric_name=metric, data_name="validation",
        maximize=is_maximized(metric) if metric else None,
        save_best=params.get("booster") != "gblinear")  # gblinear models cannot be sliced
