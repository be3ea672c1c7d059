"""XGBoost's `train(env)`: one host, several hosts through xgboost's collective, or k-fold mode.

What matches SageMaker's XGBoost container: early stopping on `validation` with the best round
kept; resuming from the newest `xgboost-checkpoint.<round>`; `save_model_on_termination`; the
model written as `xgboost-model`; an xgboost error reported as one line naming the problem.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

from nbsage.algorithms.xgboost import callbacks, data
from nbsage.algorithms.xgboost.declaration import ALGORITHM
from nbsage.algorithms.xgboost.evaluation import EvalPlan, shared_metric
from nbsage.algorithms.xgboost.library import xgb
from nbsage.algorithms.xgboost.model import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    latest_checkpoint,
    save_model,
    shared_checkpoint,
)
from nbsage.algorithms.xgboost.parameters import booster_params
from nbsage.errors import DataError, NBSageError, ValidationError


def train(env) -> None:
    """Train on env's channels and write env.model_dir/xgboost-model (k-fold: xgboost-model-<i>)."""
    hps = ALGORITHM.validate(env.hyperparameters)
    explicit = {ALGORITHM.hyperparameter(name).name for name in env.hyperparameters
                if not name.startswith(("_", "sagemaker_"))}
    content_types = data.channel_content_types(env)
    if len(env.hosts) > 1:
        train_on_hosts(env, hps, explicit, content_types)
        return
    csv_weights = bool(hps.get("csv_weights"))
    started = time.perf_counter()
    train_table = data.read_channel(env, "train", content_types["train"], csv_weights, hps=hps)
    val_table = None
    if "validation" in env.channels:
        val_table = data.read_channel(env, "validation", content_types["validation"], csv_weights,
                                      num_features=train_table.num_features, hps=hps)
    env.log(f"Train matrix has {train_table.num_rows} rows and {train_table.num_features} columns"
            + (f"; validation matrix has {val_table.num_rows} rows" if val_table is not None else "")
            + f" (read in {time.perf_counter() - started:.2f} s)")
    params, plan = _params_and_plan(env, hps, explicit)
    if "_kfold" in hps:
        from nbsage.algorithms.xgboost.kfold import train_kfold
        train_kfold(env, hps, params, plan, train_table, val_table)
        return
    evals = _evals(hps, params, train_table, val_table)
    del train_table, val_table
    booster = train_booster(env, hps, params, plan, evals)
    save_model(booster, Path(env.model_dir) / MODEL_NAME)


def _params_and_plan(env, hps: dict, explicit: set[str]) -> tuple[dict, EvalPlan]:
    params = booster_params(hps, explicit, env.device, log=env.log)
    plan = EvalPlan(hps)
    if plan.native:
        params["eval_metric"] = plan.native
    return params, plan


def _evals(hps: dict, params: dict, train_table, val_table) -> list:
    """xgboost.train's evals: the train DMatrix, then validation's when there is one."""
    nthread = hps.get("nthread", -1)
    evals = [(data.dmatrix(xgb, train_table, params, nthread), "train")]
    if val_table is not None:
        evals.append((data.dmatrix(xgb, val_table, params, nthread), "validation"))
    return evals


def train_booster(env, hps: dict, params: dict, plan: EvalPlan, evals: list, cluster=None):
    """xgboost.train with SageMaker's callbacks: log lines, checkpoints and resume, early stopping.

    With a `cluster` (several hosts, inside the collective) only the master reads and writes
    checkpoints and logs the rounds; the others get the master's checkpoint.
    """
    dtrain = evals[0][0]
    num_round = hps["num_round"]
    checkpoints = Path(env.checkpoints_dir)
    master = cluster is None or cluster.is_master
    if cluster is None:
        resume, done = latest_checkpoint(checkpoints, dtrain.num_col())
    else:
        resume, done = shared_checkpoint(checkpoints, dtrain.num_col(), cluster)
    if resume is not None:
        env.log(f"Resuming from checkpoint {checkpoints / f'{CHECKPOINT_NAME}.{done - 1}'}: "
                f"{done} of {num_round} rounds done")
    if done >= num_round:
        env.log(f"The checkpoint already holds {done} rounds; num_round is {num_round}: nothing left to train")
        return resume
    reporter = callbacks.Reporter(env if master else callbacks.Quiet(env), num_round)
    checkpointer = [callbacks.Checkpointer(checkpoints, num_round)] if master and env.checkpointing else []
    early_stopping = callbacks.early_stopping(env, hps, params, plan, has_validation=len(evals) > 1)
    try:
        booster = xgb.train(params, dtrain, num_boost_round=num_round - done, evals=evals,
                            callbacks=[reporter] + checkpointer + ([early_stopping] if early_stopping else []),
                            xgb_model=resume, custom_metric=plan.custom_metric, verbose_eval=False)
    except xgb.core.XGBoostError as e:
        raise training_error(e) from None
    except BaseException as e:
        # a stop (SIGTERM raises nbsage.runtime.train.Stopped) or an interrupt, not an error
        if (hps.get("save_model_on_termination") and master and reporter.model is not None
                and not isinstance(e, Exception)):
            save_model(reporter.model, Path(env.model_dir) / MODEL_NAME)
            env.log(f"Stopped: saved the model of {reporter.model.num_boosted_rounds()} rounds "
                    "(save_model_on_termination)")
        raise
    if early_stopping is not None and booster.attr("best_iteration") is not None:
        env.log(f"Best round: {booster.best_iteration} (validation-{plan.early_stopping_metric or reporter.last_metric}"
                f" {float(booster.best_score):.5f}); the saved model has {booster.num_boosted_rounds()} rounds")
    return booster


def train_on_hosts(env, hps: dict, explicit: set[str], content_types: dict[str, str]) -> None:
    """Distributed training on the job's hosts through xgboost's collective (Rabit).

    This is what SageMaker's XGBoost container does with several instances, and what xgboost.dask
    does on Dask workers: one process per host, each building a DMatrix from its own rows, the
    histograms allreduced every round, so all hosts grow the same trees. A ShardedByS3Key channel
    is already this host's share; a FullyReplicated one (every host holds all of it) is split by
    rows (SageMaker trains each host on all of it, which counts every row N times; the split gives
    the model one instance would train, N times faster): plain CSV by bytes, host i parsing only the
    lines that begin in its i-th equal part of the files, other content types host i taking rows
    i, i+N, ... of the whole channel. A host
    with no rows joins with an empty matrix. Evaluation metrics are xgboost's global values; the
    container-computed ones (accuracy, f1, ...) are row-weighted means of the hosts' values. The
    master (algo-1) logs the rounds, saves checkpoints and the model.
    """
    from nbsage.algorithms import distributed
    if "_kfold" in hps:
        raise ValidationError("hyperparameter '_kfold' (cross-validation) runs on one instance; "
                              "set instance_count=1 for k-fold training")
    cluster = distributed.cluster(env)
    csv_weights = bool(hps.get("csv_weights"))
    params, plan = _params_and_plan(env, hps, explicit)
    if plan.custom_metric is not None:
        plan.custom_metric = shared_metric(plan.custom_metric, plan.custom)
    env.log(f"Distributed training on {cluster.size} hosts {list(cluster.hosts)}; this is {cluster.current_host}")
    with distributed.xgboost_collective(cluster):
        started = time.perf_counter()
        train_table = data.host_share(env, "train", content_types["train"], csv_weights, None, cluster, hps)
        width = int(distributed.allreduce([train_table.num_features if train_table else 0], "max")[0])
        if not width:
            raise DataError("channel 'train' has no data files on any host")
        train_table = data.widen(train_table, width)
        val_table = None
        if "validation" in env.channels:
            val_table = data.widen(data.host_share(env, "validation", content_types["validation"], csv_weights,
                                                   width, cluster, hps), width)
        env.log(f"Train matrix has {train_table.num_rows} rows and {width} columns on {cluster.current_host}"
                + (f"; validation matrix has {val_table.num_rows} rows" if val_table is not None else "")
                + f" (read in {time.perf_counter() - started:.2f} s)")
        evals = _evals(hps, params, train_table, val_table)
        del train_table, val_table
        booster = train_booster(env, hps, params, plan, evals, cluster=cluster)
        if cluster.is_master:
            save_model(booster, Path(env.model_dir) / MODEL_NAME)


def training_error(e) -> NBSageError:
    """An xgboost error as one line that names the problem, without xgboost's stack trace."""
    text = str(e).split("Stack trace:")[0].strip()
    text = re.sub(r"^\[[0-9:]+\] \S+?:[0-9]+: ", "", text).strip()
    if "label" in text.lower():
        return DataError(f"XGBoost rejected the labels: {text}")
    return ValidationError(f"XGBoost rejected the training job: {text}")
