"""XGBoost in SageMaker's built-in algorithm mode: the declaration, `train(env)` and `load(model_dir)`.

What matches SageMaker's XGBoost container (sagemaker-xgboost-container, algorithm mode): the
hyperparameter names, ranges and cross-parameter rules; the channels (train, validation) and their
content types; the evaluation log lines `[17]\\ttrain-rmse:1.23000\\tvalidation-rmse:1.45000` that
SageMaker's metric regexes scrape; the container-computed metrics (accuracy, f1, r2, ...); early
stopping on `validation` with the best round kept; checkpoints `xgboost-checkpoint.<round>`;
k-fold mode (`_kfold`); the artifact `xgboost-model` (native UBJSON, loadable with
`xgboost.Booster().load_model(path)`); and the inference content types and response shapes.

xgboost, numpy and scipy are imported inside `train`/`load`, so reading the declaration (forms,
CLI help) stays fast.
"""
from __future__ import annotations

import importlib.abc
import json
import os
import re
import sys
import time
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from nbsage.algorithms.base import (
    Algorithm,
    Channel,
    Hyperparameter,
    Metric,
    Range,
    at_least,
    closed,
    greater_than,
    normalize_content_type,
    open_interval,
)
from nbsage.errors import (
    ChannelError,
    DataError,
    HyperparameterError,
    InvalidRequest,
    NBSageError,
    ValidationError,
)
from nbsage.runtime.inference import InferenceHandler

MODEL_NAME = "xgboost-model"
CHECKPOINT_NAME = "xgboost-checkpoint"
CHECKPOINTS_KEPT = 5
# SageMaker's checkpoint uploader ignores files with this suffix: our half-written checkpoints
_TEMP_SUFFIX = ".sagemaker-ignore"
_CHECKPOINT_FILE = re.compile(rf"^{re.escape(CHECKPOINT_NAME)}\.([0-9]+)$")

OBJECTIVES = (
    "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson", "multi:softmax",
    "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear", "reg:squarederror",
    "reg:logistic", "reg:gamma", "reg:pseudohubererror", "reg:squaredlogerror", "reg:absoluteerror",
    "reg:tweedie", "survival:aft", "survival:cox",
)
MAXIMIZE_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
    "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
)
MINIMIZE_METRICS = (
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
    "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse",
    "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik",
)
EVAL_METRICS = MAXIMIZE_METRICS + MINIMIZE_METRICS
# computed by the container (here with numpy) because xgboost has no native metric of that name
CONTAINER_METRICS = (
    "accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "mse", "r2", "precision",
    "precision_macro", "precision_micro", "recall", "recall_macro", "recall_micro",
)
_THRESHOLD_METRICS = ("error", "ndcg", "map")
_TREE_UPDATERS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_skmaker",
                  "sync", "refresh", "prune", "grow_quantile_histmaker")
_GROW_UPDATERS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_skmaker",
                  "grow_quantile_histmaker")
_LINEAR_UPDATERS = ("shotgun", "coord_descent")
_REMOVED_UPDATERS = {"distcol": "grow_colmaker", "grow_skmaker": "grow_histmaker",
                     "grow_local_histmaker": "grow_histmaker"}

# SageMaker hyperparameters that xgboost >= 2 no longer reads: accepted, logged, not passed on
_RETIRED = {
    "dsplit": "xgboost no longer splits data by column",
    "sketch_eps": "xgboost >= 1.6 sizes the approx sketch with max_bin",
    "lambda_bias": "xgboost >= 1.0 has no separate bias regulariser for gblinear",
    "deterministic_histogram": "histograms are always deterministic in xgboost >= 1.6",
    "single_precision_histogram": "xgboost >= 2.0 always uses double precision histograms",
    "prob_buffer_row": "xgboost >= 1.6 has no GPU page buffer setting",
}
# read by this module, never passed to xgboost.train's params
_CONTAINER_ONLY = {"num_round", "csv_weights", "early_stopping_rounds", "save_model_on_termination",
                   "use_dask_gpu_training", "eval_metric", "tree_method", "predictor", "objective"}

HP = Hyperparameter
_UNIT = Range(0, 1, low_inclusive=False)  # (0, 1]

HYPERPARAMETERS = (
    HP("num_round", "int", "Number of boosting rounds.", required=True, range=at_least(1)),
    HP("num_class", "int", "Number of classes; required by multi:softmax and multi:softprob, rejected otherwise.",
       range=at_least(2)),
    HP("objective", "str", "Learning task and its loss.", default="reg:squarederror", choices=OBJECTIVES),
    HP("eval_metric", "list", "Evaluation metrics, comma-separated; error@t, ndcg@n and map@n take a "
       "threshold. Default by objective: rmse for regression, logloss for binary, mlogloss for multi, map for rank.",
       choices=EVAL_METRICS),
    HP("early_stopping_rounds", "int", "Stop when the last validation metric has not improved for this many "
       "rounds; the best round's model is saved. Needs a validation channel.", range=at_least(1)),
    HP("csv_weights", "int", "1: text/csv rows are label,weight,features... (the second column is the instance weight).",
       default=0, range=closed(0, 1)),
    HP("booster", "str", "Booster: trees (gbtree), linear (gblinear) or trees with dropout (dart).",
       default="gbtree", choices=("gbtree", "gblinear", "dart")),
    HP("verbosity", "int", "xgboost's own messages: 0 silent, 1 warnings, 2 info, 3 debug.",
       default=1, range=closed(0, 3), advanced=True),
    HP("nthread", "int", "Threads used to build the matrices and train; default all cores.", range=at_least(1),
       advanced=True),
    HP("eta", "float", "Learning rate: shrinkage of each new tree's weights.", default=0.3, range=closed(0, 1),
       aliases=("learning_rate",)),
    HP("gamma", "float", "Minimum loss reduction required to split a leaf.", default=0.0, range=at_least(0),
       aliases=("min_split_loss",)),
    HP("max_depth", "int", "Maximum tree depth; 0 means no limit (lossguide growth only).", default=6,
       range=at_least(0)),
    HP("min_child_weight", "float", "Minimum sum of instance weight (hessian) in a child.", default=1.0,
       range=at_least(0)),
    HP("max_delta_step", "float", "Maximum step of each leaf's output; 0 means no constraint.", default=0.0,
       range=at_least(0), advanced=True),
    HP("subsample", "float", "Fraction of rows sampled for each tree.", default=1.0, range=_UNIT),
    HP("colsample_bytree", "float", "Fraction of columns sampled for each tree.", default=1.0, range=_UNIT),
    HP("colsample_bylevel", "float", "Fraction of columns sampled for each depth level.", default=1.0, range=_UNIT),
    HP("colsample_bynode", "float", "Fraction of columns sampled for each split.", default=1.0, range=_UNIT),
    HP("lambda", "float", "L2 regularisation of leaf weights.", default=1.0, range=at_least(0),
       aliases=("reg_lambda",)),
    HP("alpha", "float", "L1 regularisation of leaf weights.", default=0.0, range=at_least(0),
       aliases=("reg_alpha",)),
    HP("tree_method", "str", "Tree construction: auto (hist in xgboost >= 2), exact, approx, hist, or gpu_hist "
       "(hist on the GPU).", default="auto", choices=("auto", "exact", "approx", "hist", "gpu_hist")),
    HP("sketch_eps", "float", "Approx sketch accuracy (SageMaker 1.x; xgboost >= 1.6 uses max_bin instead).",
       default=0.03, range=open_interval(0, 1), advanced=True),
    HP("scale_pos_weight", "float", "Weight of positive examples, for unbalanced classes (sum(neg)/sum(pos)).",
       default=1.0, range=greater_than(0)),
    HP("updater", "list", "Tree updaters to run, comma-separated (one grow plugin; gblinear: shotgun or "
       "coord_descent; process_type=update: refresh and/or prune). Default: chosen by tree_method.",
       choices=_TREE_UPDATERS + _LINEAR_UPDATERS, advanced=True),
    HP("dsplit", "str", "Distributed data split (SageMaker 1.x; ignored by xgboost >= 1.6).", default="row",
       choices=("row", "col"), advanced=True),
    HP("refresh_leaf", "int", "With the refresh updater: 1 updates leaf values and node statistics, 0 only statistics.",
       default=1, range=closed(0, 1), advanced=True),
    HP("process_type", "str", "default builds new trees; update refreshes the trees of an existing model.",
       default="default", choices=("default", "update"), advanced=True),
    HP("grow_policy", "str", "depthwise splits nodes closest to the root first; lossguide the highest loss change.",
       default="depthwise", choices=("depthwise", "lossguide")),
    HP("max_leaves", "int", "Maximum leaves per tree; 0 means no limit.", default=0, range=at_least(0)),
    HP("max_bin", "int", "Maximum histogram bins per feature (hist, approx).", default=256, range=at_least(0)),
    HP("predictor", "str", "Prediction device (SageMaker 1.x; gpu_predictor selects the GPU in xgboost >= 2).",
       default="auto", choices=("auto", "cpu_predictor", "gpu_predictor"), advanced=True),
    HP("monotone_constraints", "list", "One of -1, 0, 1 per feature, e.g. (0,1,-1); needs tree_method exact or hist.",
       advanced=True),
    HP("interaction_constraints", "json", "Feature index groups allowed to interact, e.g. [[0,1],[2,3,4]]; needs "
       "tree_method exact, hist or approx.", advanced=True),
    HP("sample_type", "str", "dart: how dropped trees are chosen.", default="uniform",
       choices=("uniform", "weighted"), advanced=True),
    HP("normalize_type", "str", "dart: how new and dropped trees are weighted.", default="tree",
       choices=("tree", "forest"), advanced=True),
    HP("rate_drop", "float", "dart: fraction of trees dropped each round.", default=0.0, range=closed(0, 1),
       advanced=True),
    HP("one_drop", "int", "dart: 1 always drops at least one tree.", default=0, range=closed(0, 1), advanced=True),
    HP("skip_drop", "float", "dart: probability of skipping dropout in a round.", default=0.0, range=closed(0, 1),
       advanced=True),
    HP("lambda_bias", "float", "gblinear bias L2 regularisation (SageMaker 1.x; ignored by xgboost >= 1.0).",
       default=0.0, range=closed(0, 1), advanced=True),
    HP("tweedie_variance_power", "float", "reg:tweedie: variance power, near 1 Poisson-like, near 2 gamma-like.",
       default=1.5, range=open_interval(1, 2), advanced=True),
    HP("base_score", "float", "Initial prediction of every row; default estimated from the labels "
       "(xgboost >= 2; SageMaker's 1.x containers used 0.5).", range=at_least(0), advanced=True),
    HP("seed", "int", "Random seed.", default=0, range=open_interval(-2**31, 2**31 - 1)),
    HP("num_parallel_tree", "int", "Trees built per round (>1 gives a boosted random forest).", default=1,
       range=at_least(1), advanced=True),
    HP("save_model_on_termination", "bool", "Save the model trained so far when the job is stopped (SIGTERM).",
       default=False, advanced=True),
    HP("aft_loss_distribution", "str", "survival:aft: distribution of the error term.", default="normal",
       choices=("normal", "logistic", "extreme"), advanced=True),
    HP("aft_loss_distribution_scale", "float", "survival:aft: scale of the error distribution.", default=1.0,
       range=at_least(0), advanced=True),
    HP("deterministic_histogram", "bool", "GPU histogram determinism (SageMaker 1.x; always on in xgboost >= 1.6).",
       default=True, advanced=True),
    HP("single_precision_histogram", "bool", "Single precision GPU histograms (SageMaker 1.x; ignored by "
       "xgboost >= 2).", default=False, advanced=True),
    HP("sampling_method", "str", "Row sampling with subsample: uniform, or gradient_based (GPU only).",
       default="uniform", choices=("uniform", "gradient_based"), advanced=True),
    HP("prob_buffer_row", "float", "GPU external-memory page buffer (SageMaker 1.x; ignored by xgboost >= 1.6).",
       range=greater_than(1), advanced=True),
    HP("use_dask_gpu_training", "bool", "SageMaker's multi-GPU Dask path; here training uses one device.",
       default=False, advanced=True),
    HP("_kfold", "int", "k-fold cross-validation mode: train k models on train+validation, save "
       "xgboost-model-0..k-1 and out-of-fold predictions.", range=at_least(2), advanced=True),
    HP("_num_cv_round", "int", "k-fold mode: how many times the k-fold split is repeated.", range=at_least(1),
       advanced=True),
    HP("_tuning_objective_metric", "str", "Set by hyperparameter tuning: the metric it optimises, e.g. "
       "validation:auc; added to eval_metric and used for early stopping.",
       choices=tuple(f"{split}:{m}" for split in ("validation", "train") for m in EVAL_METRICS), advanced=True),
)
_BY_NAME = {hp.name: hp for hp in HYPERPARAMETERS}


def _metric_base(metric: str) -> str:
    return metric.split("@")[0].strip()


def is_maximized(metric: str) -> bool:
    """Whether a larger value of an eval metric (e.g. 'auc', 'ndcg@5') is better."""
    return _metric_base(metric) in MAXIMIZE_METRICS


def check(hps: dict) -> None:
    """Rules that span several hyperparameters, as the SageMaker container enforces them."""
    for name in ("_kfold", "_num_cv_round", "_tuning_objective_metric"):
        if name in hps and isinstance(hps[name], str):
            hps[name] = _BY_NAME[name].parse(hps[name])
    objective = hps.get("objective", "reg:squarederror")
    multi = objective in ("multi:softmax", "multi:softprob")
    if multi and "num_class" not in hps:
        raise HyperparameterError(
            f"hyperparameter 'num_class' is required when objective is {objective!r}: "
            "the number of classes, an integer >= 2 (labels are 0 .. num_class-1)")
    if not multi and "num_class" in hps:
        raise HyperparameterError(
            f"hyperparameter 'num_class' applies only to objective 'multi:softmax' or 'multi:softprob', "
            f"and objective is {objective!r}; remove num_class or choose a multi: objective")
    metrics = list(hps.get("eval_metric") or [])
    tuning = hps.get("_tuning_objective_metric")
    if tuning:
        metrics.append(tuning.split(":", 1)[1])
    for metric in metrics:
        base, at, threshold = str(metric).partition("@")
        if at:
            if base not in _THRESHOLD_METRICS:
                raise HyperparameterError(
                    f"hyperparameter 'eval_metric': {metric!r} is not accepted; only "
                    f"{', '.join(_THRESHOLD_METRICS)} take a threshold (e.g. error@0.7, ndcg@5)")
            try:
                float(threshold)
            except ValueError:
                raise HyperparameterError(
                    f"hyperparameter 'eval_metric': the threshold in {metric!r} is not a number; "
                    f"write {base}@t with a number t") from None
        if base == "auc" and not objective.startswith(("binary:", "rank:")):
            raise HyperparameterError(
                f"eval_metric 'auc' applies only to binary: and rank: objectives, and objective is {objective!r}")
        if base == "aft-nloglik" and objective != "survival:aft":
            raise HyperparameterError(
                f"eval_metric 'aft-nloglik' applies only to objective 'survival:aft', and objective is {objective!r}")
    tree_method = hps.get("tree_method", "auto")
    constraints = hps.get("monotone_constraints")
    if constraints is not None:
        if tree_method not in ("exact", "hist", "gpu_hist"):
            raise HyperparameterError(
                f"hyperparameter 'monotone_constraints' needs tree_method 'exact' or 'hist', and tree_method "
                f"is {tree_method!r}")
        if any(c not in (-1, 0, 1) or isinstance(c, bool) for c in constraints):
            raise HyperparameterError(
                f"hyperparameter 'monotone_constraints' = {constraints!r} is not valid; expected one of -1, 0, 1 "
                "per feature, e.g. (0,1,-1)")
    interactions = hps.get("interaction_constraints")
    if interactions is not None:
        if tree_method not in ("exact", "hist", "approx", "gpu_hist"):
            raise HyperparameterError(
                f"hyperparameter 'interaction_constraints' needs tree_method 'exact', 'hist' or 'approx', and "
                f"tree_method is {tree_method!r}")
        if not (isinstance(interactions, list) and all(
                isinstance(group, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                for i in group) for group in interactions)):
            raise HyperparameterError(
                f"hyperparameter 'interaction_constraints' = {interactions!r} is not valid; expected a list of "
                "lists of feature indices, e.g. [[0,1],[2,3,4]]")
    _check_updater(hps)


def _check_updater(hps: dict) -> None:
    updaters = hps.get("updater")
    if not updaters:
        return
    if hps.get("booster") == "gblinear":
        if not (len(updaters) == 1 and updaters[0] in _LINEAR_UPDATERS):
            raise HyperparameterError(
                f"hyperparameter 'updater' = {','.join(updaters)!r} is not valid with booster 'gblinear'; "
                "expected exactly one of shotgun, coord_descent")
        return
    if hps.get("process_type") == "update":
        if not all(u in ("refresh", "prune") for u in updaters):
            raise HyperparameterError(
                f"hyperparameter 'updater' = {','.join(updaters)!r} is not valid with process_type 'update'; "
                "expected refresh and/or prune")
        return
    wrong = [u for u in updaters if u not in _TREE_UPDATERS]
    if wrong:
        raise HyperparameterError(
            f"hyperparameter 'updater': {wrong[0]!r} is a gblinear updater; tree boosters take "
            f"{', '.join(_TREE_UPDATERS)}")
    grow = [u for u in updaters if u in _GROW_UPDATERS]
    if len(grow) > 1:
        raise HyperparameterError(
            f"hyperparameter 'updater' names {len(grow)} tree grow plugins ({', '.join(grow)}); choose one")
    removed = [u for u in updaters if u in _REMOVED_UPDATERS]
    if removed:
        raise HyperparameterError(
            f"hyperparameter 'updater': {removed[0]!r} was removed from xgboost; use "
            f"{_REMOVED_UPDATERS[removed[0]]!r} instead")


def _metric_regex(split: str, metric: str) -> str:
    # CloudWatch shows the TAB of xgboost's log line as #011; nbsage's logs hold the TAB itself
    return rf".*\[[0-9]+\].*(?:#011|\t){split}-{re.escape(metric)}:(\S+)"


METRICS = tuple(
    Metric(f"{split}:{m}", "Maximize" if m in MAXIMIZE_METRICS else "Minimize", _metric_regex(split, m),
           f"{m} on the {split} channel, each round")
    for split in ("validation", "train") for m in EVAL_METRICS)

# the first is SageMaker's default; File or Pipe mode for each (Pipe channels are read whole
# through env.channel_files)
CONTENT_TYPES = ("text/libsvm", "text/csv", "application/x-parquet", "application/x-recordio-protobuf")
CHANNELS = (
    Channel("train", CONTENT_TYPES, required=True,
            help="Labelled rows: label first (text/csv, application/x-parquet), label[:weight] (text/libsvm), "
                 "or label['values'] (application/x-recordio-protobuf)."),
    Channel("validation", CONTENT_TYPES,
            help="Labelled rows in the train channel's format: evaluation metrics and early stopping."),
)


# ----------------------------------------------------------------------------------------------
# training


class _WithoutScikitLearn(importlib.abc.MetaPathFinder):
    """Makes `import sklearn` fail, so that xgboost.compat falls back to its own base classes."""

    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("scikit-learn is not loaded with xgboost in an nbsage job process")
        return None


def import_xgboost():
    """`import xgboost`; in a job's or model server's own process, without scikit-learn.

    xgboost imports scikit-learn (and pandas through it) only for its XGBClassifier wrappers,
    which training and serving never use: 80% of xgboost's import time, and so most of a small
    job's fixed overhead. The shortcut applies only to `python -m nbsage.runtime ...` processes,
    never to a kernel or a user's process, where XGBClassifier must keep working; scikit-learn
    itself stays importable afterwards (k-fold mode uses it).
    """
    if "xgboost" in sys.modules:
        return sys.modules["xgboost"]
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None or spec.name != "nbsage.runtime.__main__" or "sklearn" in sys.modules:
        import xgboost
        return xgboost
    finder = _WithoutScikitLearn()
    sys.meta_path.insert(0, finder)
    try:
        import xgboost
    finally:
        sys.meta_path.remove(finder)
    return xgboost


def train(env) -> None:
    """Train on env's channels and write env.model_dir/xgboost-model (k-fold: xgboost-model-<i>)."""
    hps = ALGORITHM.validate(env.hyperparameters)
    explicit = {ALGORITHM.hyperparameter(name).name for name in env.hyperparameters
                if not name.startswith(("_", "sagemaker_"))}
    content_types = _channel_content_types(env)
    xgb = import_xgboost()

    if len(env.hosts) > 1:
        _train_on_hosts(env, xgb, hps, explicit, content_types)
        return
    csv_weights = bool(hps.get("csv_weights"))
    started = time.perf_counter()
    train_table = _read_channel(env, "train", content_types["train"], csv_weights)
    val_table = None
    if "validation" in env.channels:
        val_table = _read_channel(env, "validation", content_types["validation"], csv_weights,
                                  num_features=train_table.num_features)
    env.log(f"Train matrix has {train_table.num_rows} rows and {train_table.num_features} columns"
            + (f"; validation matrix has {val_table.num_rows} rows" if val_table is not None else "")
            + f" (read in {time.perf_counter() - started:.2f} s)")

    params = booster_params(hps, explicit, env.device, log=env.log)
    plan = _EvalPlan(hps)
    if plan.native:
        params["eval_metric"] = plan.native
    if "_kfold" in hps:
        _train_kfold(env, xgb, hps, params, plan, train_table, val_table)
        return
    nthread = hps.get("nthread", -1)
    evals = [(_dmatrix(xgb, train_table, params, nthread), "train")]
    if val_table is not None:
        evals.append((_dmatrix(xgb, val_table, params, nthread), "validation"))
    del train_table, val_table
    booster = _train_booster(env, xgb, hps, params, plan, evals)
    save_model(booster, Path(env.model_dir) / MODEL_NAME)


def _train_booster(env, xgb, hps: dict, params: dict, plan: "_EvalPlan", evals: list, cluster=None):
    """xgboost.train with SageMaker's callbacks: log lines, checkpoints and resume, early stopping.

    With a `cluster` (several hosts, inside the collective) only the master reads and writes
    checkpoints and logs the rounds; the others get the master's checkpoint.
    """
    dtrain = evals[0][0]
    num_round = hps["num_round"]
    checkpoints = Path(env.checkpoints_dir)
    master = cluster is None or cluster.is_master
    if cluster is None:
        resume, done = _latest_checkpoint(xgb, checkpoints, dtrain.num_col())
    else:
        resume, done = _shared_checkpoint(xgb, checkpoints, dtrain.num_col(), cluster)
    if resume is not None:
        env.log(f"Resuming from checkpoint {checkpoints / f'{CHECKPOINT_NAME}.{done - 1}'}: "
                f"{done} of {num_round} rounds done")
    if done >= num_round:
        env.log(f"The checkpoint already holds {done} rounds; num_round is {num_round}: nothing left to train")
        return resume
    reporter = _callbacks().Reporter(env if master else _Quiet(env), num_round)
    checkpointer = [_callbacks().Checkpointer(checkpoints, num_round)] if master and env.checkpointing else []
    callbacks = [reporter] + checkpointer
    early_stopping = _early_stopping(xgb, env, hps, params, plan, has_validation=len(evals) > 1)
    if early_stopping is not None:
        callbacks.append(early_stopping)
    try:
        booster = xgb.train(params, dtrain, num_boost_round=num_round - done, evals=evals,
                            callbacks=callbacks, xgb_model=resume, custom_metric=plan.custom_metric,
                            verbose_eval=False)
    except xgb.core.XGBoostError as e:
        raise _training_error(e) from None
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


class _Quiet:
    """A host other than the master: its rounds' lines, metrics and progress would repeat the master's."""

    def __init__(self, env):
        self.env = env

    def log(self, message: str) -> None:
        pass

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def progress(self, step: int, total: int) -> None:
        pass


def _train_on_hosts(env, xgb, hps: dict, explicit: set[str], content_types: dict[str, str]) -> None:
    """Distributed training on the job's hosts through xgboost's collective (Rabit).

    This is what SageMaker's XGBoost container does with several instances, and what xgboost.dask
    does on Dask workers: one process per host, each building a DMatrix from its own rows, the
    histograms allreduced every round, so all hosts grow the same trees. A ShardedByS3Key channel
    is already this host's share; a FullyReplicated one (every host holds all of it) is split by
    rows, host i taking rows i, i+N, ... (SageMaker trains each host on all of it, which counts
    every row N times; the split gives the model one instance would train, N times faster). A host
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
    params = booster_params(hps, explicit, env.device, log=env.log)
    plan = _EvalPlan(hps)
    if plan.native:
        params["eval_metric"] = plan.native
    if plan.custom_metric is not None:
        plan.custom_metric = _shared_metric(plan.custom_metric, plan.custom)
    env.log(f"Distributed training on {cluster.size} hosts {list(cluster.hosts)}; this is {cluster.current_host}")
    with distributed.xgboost_collective(cluster):
        started = time.perf_counter()
        train_table = _host_share(env, "train", content_types["train"], csv_weights, None, cluster)
        width = int(distributed.allreduce([train_table.num_features if train_table else 0], "max")[0])
        if not width:
            raise DataError("channel 'train' has no data files on any host")
        train_table = _widen(train_table, width)
        val_table = None
        if "validation" in env.channels:
            val_table = _widen(_host_share(env, "validation", content_types["validation"], csv_weights, width,
                                           cluster), width)
        env.log(f"Train matrix has {train_table.num_rows} rows and {width} columns on {cluster.current_host}"
                + (f"; validation matrix has {val_table.num_rows} rows" if val_table is not None else "")
                + f" (read in {time.perf_counter() - started:.2f} s)")
        nthread = hps.get("nthread", -1)
        evals = [(_dmatrix(xgb, train_table, params, nthread), "train")]
        if val_table is not None:
            evals.append((_dmatrix(xgb, val_table, params, nthread), "validation"))
        del train_table, val_table
        booster = _train_booster(env, xgb, hps, params, plan, evals, cluster=cluster)
        if cluster.is_master:
            save_model(booster, Path(env.model_dir) / MODEL_NAME)


def _host_share(env, name: str, content_type: str, csv_weights: bool, num_features: int | None, cluster):
    """This host's rows of a channel (see _train_on_hosts), or None when it has no files."""
    if not env.channel_files(name):
        env.log(f"channel {name!r} has no files on {cluster.current_host}: it trains on the other hosts' rows")
        return None
    table = _read_channel(env, name, content_type, csv_weights, num_features=num_features)
    if env.channels[name].distribution == "ShardedByS3Key":
        return table
    from nbsage.formats import Table
    rows = slice(cluster.rank, None, cluster.size)
    return Table(table.features[rows], table.labels[rows], None if table.weights is None else table.weights[rows])


def _widen(table, width: int):
    """The table with `width` feature columns (sparse data of one host may end early); None -> 0 rows."""
    import numpy as np
    from nbsage.formats import Table
    if table is None:
        return Table(np.empty((0, width), dtype=np.float32), np.empty(0, dtype=np.float32))
    if table.num_features < width and hasattr(table.features, "tocsr"):
        features = table.features.tocsr()
        features.resize((features.shape[0], width))
        return Table(features, table.labels, table.weights)
    if table.num_features != width:
        raise DataError(f"this host's data has {table.num_features} features and another host's {width}; "
                        "every host's files need the same columns")
    return table


def _shared_metric(evaluate, names: list[str]):
    """A container metric over all hosts: the row-weighted mean of each host's value (exact for
    accuracy and mse; close for f1, r2 and the other ratios), the same on every host, so that early
    stopping decides alike everywhere."""
    def shared(predt, dmatrix):
        import numpy as np
        from nbsage.algorithms import distributed
        rows = dmatrix.num_row()
        values = [v for _, v in evaluate(predt, dmatrix)] if rows else [0.0] * len(names)
        local = np.array([v * rows for v in values], dtype=np.float64)
        totals = distributed.allreduce(np.append(local, float(rows)), "sum")
        return [(name, float(totals[i] / totals[-1]) if totals[-1] else 0.0) for i, name in enumerate(names)]
    return shared


def _shared_checkpoint(xgb, directory: Path, num_features: int, cluster):
    """The master's newest checkpoint, on every host: (booster, rounds done) or (None, 0)."""
    from nbsage.algorithms import distributed
    raw = None
    if cluster.is_master:
        booster, _ = _latest_checkpoint(xgb, directory, num_features)
        raw = bytes(booster.save_raw("ubj")) if booster is not None else None
    raw = distributed.broadcast(raw, 0)
    if raw is None:
        return None, 0
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster, booster.num_boosted_rounds()


def _early_stopping(xgb, env, hps: dict, params: dict, plan: "_EvalPlan", has_validation: bool):
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


def _channel_content_types(env) -> dict[str, str]:
    """Each channel's content type, SageMaker's defaults applied (text/libsvm; validation as train)."""
    from nbsage.formats import label_size
    declared = {name: ch.content_type for name, ch in env.channels.items()}
    ALGORITHM.check_channels(declared)
    train_ct = normalize_content_type(declared.get("train")) or CHANNELS[0].default_content_type
    out = {}
    for name, raw in declared.items():
        ct = normalize_content_type(raw) or train_ct
        try:
            labels = label_size(raw)
        except ValueError:
            labels = None
        if labels != 1:
            raise ChannelError(f"channel {name!r}: content type {raw!r} is not accepted; XGBoost reads one "
                               "label column (label_size=1, the default)")
        out[name] = ct
    return out


def _read_channel(env, name: str, content_type: str, csv_weights: bool, num_features: int | None = None):
    from nbsage.formats import read_table
    files = env.channel_files(name)
    if not files:
        raise DataError(f"channel {name!r} has no data files in {env.channels[name].path} "
                        f"(expected {content_type} files)")
    try:
        table = read_table(files, content_type, weights=csv_weights and content_type == "text/csv",
                           num_features=num_features)
    except DataError as e:
        raise DataError(f"channel {name!r}: {e}") from None
    if num_features is not None and table.num_features != num_features:
        raise DataError(f"channel {name!r} has {table.num_features} features and the train channel "
                        f"{num_features}; both channels need the same columns")
    return table


def booster_params(hps: dict, explicit: set[str], device: str = "cpu", log=print) -> dict:
    """xgboost.train params from validated hyperparameters: only what the user set, SageMaker names mapped.

    Hyperparameters left at their default are not passed, so xgboost's own defaults apply exactly
    as when calling xgboost.train directly.
    """
    params: dict = {}
    for name in sorted(explicit):
        if name in _CONTAINER_ONLY or name.startswith("_"):
            continue
        if name in _RETIRED:
            log(f"hyperparameter {name!r} is accepted and ignored: {_RETIRED[name]}")
            continue
        value = hps[name]
        if name == "updater":
            value = ",".join(value)
        elif name == "monotone_constraints":
            value = "(" + ",".join(str(int(v)) for v in value) + ")"
        elif name == "interaction_constraints":
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        params[name] = value
    objective = hps.get("objective", "reg:squarederror")
    params["objective"] = "reg:squarederror" if objective == "reg:linear" else objective
    tree_method = hps.get("tree_method", "auto")
    if tree_method == "gpu_hist":
        params["tree_method"] = "hist"
        params["device"] = "cuda"
    elif "tree_method" in explicit:
        params["tree_method"] = tree_method
    if hps.get("predictor") == "gpu_predictor" or device == "cuda":
        params["device"] = "cuda"
    if device == "cuda":
        params.setdefault("tree_method", "hist")  # SageMaker's gpu_hist: hist on the GPU
    if hps.get("use_dask_gpu_training"):
        log("use_dask_gpu_training: training runs on one device here")
    return params


class _EvalPlan:
    """Which metrics xgboost computes, which this module computes, and which one early stopping watches."""

    def __init__(self, hps: dict):
        requested = list(hps.get("eval_metric") or [])
        tuning = hps.get("_tuning_objective_metric")
        tuning_metric = tuning.split(":", 1)[1] if tuning else None
        metrics = requested + ([tuning_metric] if tuning_metric and tuning_metric not in requested else [])
        self.native = [m for m in metrics if m not in CONTAINER_METRICS]
        self.custom = [m for m in metrics if m in CONTAINER_METRICS]
        self.early_stopping_metric = tuning_metric or (requested[-1] if requested else None)
        objective = hps.get("objective", "reg:squarederror")
        self.custom_metric = _container_metrics(self.custom, objective) if self.custom else None


def _dmatrix(xgb, table, params: dict, nthread: int):
    dmatrix = xgb.DMatrix(table.features, label=table.labels, weight=table.weights, nthread=nthread)
    if params.get("objective") == "survival:aft":
        # uncensored rows: the label is both bounds of the survival interval
        dmatrix.set_float_info("label_lower_bound", table.labels)
        dmatrix.set_float_info("label_upper_bound", table.labels)
    return dmatrix


def _training_error(e) -> NBSageError:
    """An xgboost error as one line that names the problem, without xgboost's stack trace."""
    text = str(e).split("Stack trace:")[0].strip()
    text = re.sub(r"^\[[0-9:]+\] \S+?:[0-9]+: ", "", text).strip()
    if "label" in text.lower():
        return DataError(f"XGBoost rejected the labels: {text}")
    return ValidationError(f"XGBoost rejected the training job: {text}")


def save_model(booster, path: Path) -> Path:
    """Write a booster as `xgboost-model`: native UBJSON without a file extension, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TEMP_SUFFIX}")
    tmp.write_bytes(booster.save_raw("ubj"))
    os.replace(tmp, path)
    return path


def _load_booster(xgb, path: Path):
    raw = Path(path).read_bytes()
    if raw[:1] == b"\x80":
        raise DataError(f"{path} is a pickled booster (SageMaker XGBoost before 1.3); nbsage does not "
                        "unpickle model files: load it in xgboost and save it with Booster.save_model")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as e:
        raise DataError(f"{path} is not an XGBoost model: {str(e).splitlines()[0]}") from None
    return booster


def _latest_checkpoint(xgb, directory: Path, num_features: int):
    """(booster, rounds done) from the newest readable xgboost-checkpoint.<round>, or (None, 0)."""
    if not directory.is_dir():
        return None, 0
    found = sorted(((int(m.group(1)), p) for p in directory.iterdir()
                    if (m := _CHECKPOINT_FILE.match(p.name))), reverse=True)
    for _, path in found:
        try:
            booster = _load_booster(xgb, path)
        except DataError:
            continue  # a checkpoint cut short by the stop that we are resuming from
        if booster.num_features() != num_features:
            raise DataError(f"checkpoint {path} was trained on {booster.num_features()} features and the train "
                            f"channel has {num_features}; empty the checkpoint folder to start afresh")
        return booster, booster.num_boosted_rounds()
    return None, 0


@cache
def _callbacks():
    """The xgboost TrainingCallback classes, defined on first use so that xgboost loads lazily."""
    xgb = import_xgboost()

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
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{CHECKPOINT_NAME}.{epoch}"
            tmp = path.with_name(path.name + _TEMP_SUFFIX)
            tmp.write_bytes(model.save_raw("ubj"))
            os.replace(tmp, path)
            self.last_saved = epoch
            rounds = sorted(int(m.group(1)) for p in self.directory.iterdir()
                            if (m := _CHECKPOINT_FILE.match(p.name)))
            for old in rounds[:-self.keep]:
                try:
                    (self.directory / f"{CHECKPOINT_NAME}.{old}").unlink()
                except OSError:
                    pass
            self.spent += time.perf_counter() - began

    return SimpleNamespace(Reporter=Reporter, Checkpointer=Checkpointer)


def _train_kfold(env, xgb, hps, params, plan, train_table, val_table) -> None:
    """SageMaker's `_kfold` mode: repeated (stratified) k-fold over train+validation.

    Saves one model per fold (xgboost-model-<i>, averaged at inference), prints each repeat's mean
    metrics as an evaluation line, and writes the out-of-fold predictions to
    output/data/predictions.csv (label, mean prediction[, majority label]).
    """
    import numpy as np
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    k, repeats, num_round = hps["_kfold"], hps.get("_num_cv_round") or 1, hps["num_round"]
    features, labels, weights = train_table.features, train_table.labels, train_table.weights
    if val_table is not None:
        if hasattr(features, "tocsr"):
            import scipy.sparse as sp
            features = sp.vstack([features, val_table.features]).tocsr()
        else:
            features = np.concatenate([features, val_table.features])
        labels = np.concatenate([labels, val_table.labels])
        if weights is not None or val_table.weights is not None:
            weights = np.concatenate([
                weights if weights is not None else np.ones(train_table.num_rows, np.float32),
                val_table.weights if val_table.weights is not None else np.ones(val_table.num_rows, np.float32)])
    objective = params["objective"]
    classification = objective.startswith(("binary:", "multi:"))
    splitter = (RepeatedStratifiedKFold if classification else RepeatedKFold)(n_splits=k, n_repeats=repeats)
    full = xgb.DMatrix(features, label=labels, weight=weights, nthread=hps.get("nthread", -1))
    env.log(f"Running {repeats} round(s) of {k}-fold cross-validation on {full.num_row()} rows")
    predictions = [[] for _ in range(repeats)]
    history = []
    callbacks_ns = _callbacks()
    for fold, (train_idx, val_idx) in enumerate(splitter.split(np.zeros(len(labels)), labels if classification else None)):
        dtrain, dval = full.slice(train_idx), full.slice(val_idx)
        evals_result: dict = {}
        callbacks = [callbacks_ns.Reporter(env, num_round, emit_metrics=False, progress_offset=fold * num_round,
                                           progress_total=k * repeats * num_round)]
        early_stopping = _early_stopping(xgb, env, hps, params, plan, has_validation=True)
        if early_stopping is not None:
            callbacks.append(early_stopping)
        env.log(f"Cross-validation fold {fold % k + 1} of {k}, round {fold // k + 1} of {repeats}")
        try:
            booster = xgb.train(params, dtrain, num_boost_round=num_round, evals=[(dtrain, "train"), (dval, "validation")],
                                callbacks=callbacks, custom_metric=plan.custom_metric, evals_result=evals_result,
                                verbose_eval=False)
        except xgb.core.XGBoostError as e:
            raise _training_error(e) from None
        history.append(evals_result)
        predictions[fold // k].append((val_idx, booster.predict(dval)))
        save_model(booster, Path(env.model_dir) / f"{MODEL_NAME}-{fold}")
        if (fold + 1) % k == 0:
            _report_cv(env, num_round, history[-k:], step=fold // k)
    if repeats > 1:
        env.log(f"Mean metrics over {repeats} rounds of {k}-fold cross-validation:")
        _report_cv(env, num_round, history, step=repeats)
    _save_oof_predictions(Path(env.output_data_dir) / "predictions.csv", labels, predictions, classification)


def _report_cv(env, num_round: int, results: list[dict], step: int) -> None:
    line = [f"[{num_round}]"]
    for metric in results[0]["train"]:
        for data in ("train", "validation"):
            value = sum(r[data][metric][-1] for r in results) / len(results)
            line.append(f"{data}-{metric}:{value:.5f}")
            env.metric(f"{data}:{metric}", value, step=step)
    env.log("\t".join(line))


def _save_oof_predictions(path: Path, labels, predictions, classification: bool) -> None:
    import numpy as np
    n, repeats = len(labels), len(predictions)
    scores = np.zeros((n, repeats))
    predicted = np.zeros((n, repeats))
    for r, folds in enumerate(predictions):
        for idx, pred in folds:
            if pred.ndim > 1:
                predicted[idx, r] = pred.argmax(axis=1)
                scores[idx, r] = pred.max(axis=1)
            else:
                scores[idx, r] = pred
                predicted[idx, r] = pred > 0.5
    columns = [labels, scores.mean(axis=1)]
    if classification:
        from scipy import stats
        columns.append(stats.mode(predicted, axis=1, keepdims=False).mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack(columns), delimiter=",", fmt="%f")


# ----------------------------------------------------------------------------------------------
# container-computed metrics (SageMaker computes these with scikit-learn; numpy gives the same values
# without importing scikit-learn into every job)


def _container_metrics(names: list[str], objective: str):
    def evaluate(predt, dmatrix):
        import numpy as np
        labels = dmatrix.get_label()
        if predt.ndim == 1 and predt.size != labels.size and labels.size:
            predt = predt.reshape(labels.size, -1)
        predicted = _predicted_labels(predt, objective)
        return [(name, float(_METRIC_FUNCTIONS[name](labels, predicted, predt, np))) for name in names]
    return evaluate


def _predicted_labels(predt, objective: str):
    import numpy as np
    if predt.ndim == 2:
        return predt.argmax(axis=1)
    if objective == "binary:logitraw":
        return (predt > 0).astype(np.int64)
    if objective in ("binary:logistic", "reg:logistic"):
        return (predt > 0.5).astype(np.int64)
    return np.rint(predt)


def _confusion(y, p, np):
    """Per-class true positives, predicted counts and true counts over the classes seen in y or p."""
    y, p = np.rint(y).astype(np.int64), np.asarray(p).astype(np.int64)
    classes = np.union1d(y, p)
    yi, pi = np.searchsorted(classes, y), np.searchsorted(classes, p)
    k = len(classes)
    cm = np.bincount(yi * k + pi, minlength=k * k).reshape(k, k)
    return classes, np.diag(cm).astype(np.float64), cm.sum(axis=0).astype(np.float64), cm.sum(axis=1).astype(np.float64)


def _ratio(a, b, np):
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)  # 0 where undefined, as scikit-learn


def _f1(precision, recall, np):
    return _ratio(2 * precision * recall, precision + recall, np)


def _binary(metric: str, y, p, np):
    classes, tp, predicted, actual = _confusion(y, p, np)
    if not set(classes.tolist()) <= {0, 1}:
        raise DataError(f"eval_metric {metric!r} is for binary labels 0 and 1, and the labels and predictions hold "
                        f"classes {classes.tolist()[:10]}; use {metric.split('_')[0]}_macro for more classes")
    where = np.searchsorted(classes, 1)
    if where >= len(classes) or classes[where] != 1:
        return 0.0, 0.0
    precision = _ratio(tp[where:where + 1], predicted[where:where + 1], np)[0]
    recall = _ratio(tp[where:where + 1], actual[where:where + 1], np)[0]
    return precision, recall


def _macro(y, p, np):
    _, tp, predicted, actual = _confusion(y, p, np)
    precision, recall = _ratio(tp, predicted, np), _ratio(tp, actual, np)
    return precision.mean(), recall.mean(), _f1(precision, recall, np).mean()


def _balanced_accuracy(y, p, np):
    _, tp, _, actual = _confusion(y, p, np)
    present = actual > 0
    return (tp[present] / actual[present]).mean()


def _r2(y, predt, np):
    predt = predt if predt.ndim == 1 else predt.argmax(axis=1)
    residual = float(((y - predt) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


def _mse(y, predt, np):
    predt = predt if predt.ndim == 1 else predt.argmax(axis=1)
    return float(((y - predt) ** 2).mean())


_METRIC_FUNCTIONS = {
    "accuracy": lambda y, p, raw, np: float((np.rint(y) == p).mean()),
    "balanced_accuracy": lambda y, p, raw, np: _balanced_accuracy(y, p, np),
    "f1": lambda y, p, raw, np: _macro(y, p, np)[2],
    "f1_macro": lambda y, p, raw, np: _macro(y, p, np)[2],
    "f1_binary": lambda y, p, raw, np: float(_f1(*(np.array([v]) for v in _binary("f1_binary", y, p, np)), np)[0]),
    "precision": lambda y, p, raw, np: _binary("precision", y, p, np)[0],
    "recall": lambda y, p, raw, np: _binary("recall", y, p, np)[1],
    "precision_macro": lambda y, p, raw, np: _macro(y, p, np)[0],
    "recall_macro": lambda y, p, raw, np: _macro(y, p, np)[1],
    # single-label classification: micro precision = micro recall = accuracy
    "precision_micro": lambda y, p, raw, np: float((np.rint(y) == p).mean()),
    "recall_micro": lambda y, p, raw, np: float((np.rint(y) == p).mean()),
    "mse": lambda y, p, raw, np: _mse(y, raw, np),
    "r2": lambda y, p, raw, np: _r2(y, raw, np),
}


# ----------------------------------------------------------------------------------------------
# inference

SELECTABLE_KEYS = ("predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores",
                   "predicted_score")
_VALID_KEYS = {
    "reg:squarederror": ("predicted_score",), "reg:linear": ("predicted_score",),
    "reg:logistic": ("predicted_score",), "reg:gamma": ("predicted_score",), "reg:tweedie": ("predicted_score",),
    "reg:pseudohubererror": ("predicted_score",), "reg:squaredlogerror": ("predicted_score",),
    "reg:absoluteerror": ("predicted_score",), "count:poisson": ("predicted_score",),
    "binary:logistic": SELECTABLE_KEYS[:6], "multi:softprob": SELECTABLE_KEYS[:6],
    "binary:logitraw": ("predicted_label", "labels", "raw_score", "raw_scores"),
    "binary:hinge": ("predicted_label", "labels", "raw_score", "raw_scores"),
    "multi:softmax": ("predicted_label", "labels", "raw_score", "raw_scores"),
}
# requests of at least this many rows use every core; smaller ones one thread (lowest latency)
_PARALLEL_ROWS = 1024


class XGBoostHandler(InferenceHandler):
    """Answers /invocations for one or more boosters (k-fold models are averaged, or voted).

    Requests: text/csv (features only), text/libsvm (label optional), application/json
    (`{"instances": [{"features": [...]}]}`, sparse `{"data": {"features": {"keys", "shape",
    "values"}}}`, or a list of rows) and application/jsonlines (one such record a line).
    Responses: text/csv (one prediction a line; softprob rows comma-joined), application/json
    `{"predictions": [{"score": ...}]}` and application/jsonlines `{"score": ...}` a line; with
    SAGEMAKER_INFERENCE_OUTPUT the records hold the selected keys (predicted_label, probabilities, ...).
    """

    content_types = ("text/csv", "text/libsvm", "application/json", "application/jsonlines")
    accepts = ("text/csv", "application/json", "application/jsonlines")
    default_accept = "text/csv"
    empty_body_status = 204  # SageMaker's XGBoost answers an empty request with 204 No Content

    def __init__(self, boosters: list, objective: str, num_class: int, num_features: int,
                 selected_keys: list[str] | None = None, default_accept: str | None = None):
        import numpy as np
        self._np = np
        self.boosters = boosters
        self._parallel = None
        self.objective, self.num_class, self.num_features = objective, num_class, num_features
        self.selected_keys = selected_keys
        if default_accept in self.accepts:
            self.default_accept = default_accept
        self.vote = objective in ("multi:softmax", "binary:hinge") and len(boosters) > 1

    # parsing ----------------------------------------------------------------------------------
    def parse(self, body: bytes, content_type: str):
        """Request body -> dense float32 rows or CSR, checked against the model's feature count."""
        try:
            if content_type == "text/csv":
                from nbsage.formats.text_csv import read_features
                rows = read_features(body, self.num_features)
            elif content_type == "text/libsvm":
                from nbsage.formats.text_libsvm import read_features
                rows = read_features(body)
            else:
                rows = self._parse_json(body, content_type)
        except DataError as e:
            raise InvalidRequest(str(e)) from None
        except UnicodeDecodeError as e:
            raise InvalidRequest(f"{content_type} request is not UTF-8 text (byte {e.start})") from None
        width = rows.shape[1]
        if content_type == "text/libsvm" or hasattr(rows, "tocsr"):
            if width > self.num_features:
                raise InvalidRequest(
                    f"{content_type} request has feature index {width - 1}, and the model has {self.num_features} "
                    f"features (indices 0..{self.num_features - 1})")
            if width < self.num_features:
                rows.resize((rows.shape[0], self.num_features))
        elif width != self.num_features:
            raise InvalidRequest(
                f"{content_type} request has {width} features per row, and the model expects "
                f"{self.num_features}" + (" (send features only, no label column)" if width == self.num_features + 1
                                          else ""))
        return rows

    def _parse_json(self, body: bytes, content_type: str):
        np = self._np
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
        if content_type == "application/jsonlines":
            records = []
            for lineno, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        records.append((f"line {lineno}", json.loads(line)))
                    except ValueError as e:
                        raise DataError(f"application/jsonlines request line {lineno}: not JSON ({e})") from None
        else:
            try:
                doc = json.loads(text)
            except ValueError as e:
                raise DataError(f"application/json request is not JSON ({e})") from None
            if isinstance(doc, dict) and "instances" in doc:
                doc = doc["instances"]
            elif isinstance(doc, dict) or (isinstance(doc, list) and doc and not isinstance(doc[0], (list, dict))):
                doc = [doc]  # one record
            if not isinstance(doc, list):
                raise DataError('application/json request: expected {"instances": [...]} or a list of rows')
            records = [(f"instance {i}", r) for i, r in enumerate(doc)]
        if not records:
            raise DataError(f"{content_type} request has no instances")
        rows, sparse = [], False
        for where, record in records:
            features = record
            if isinstance(record, dict):
                features = record.get("features")
                if features is None and isinstance(record.get("data"), dict):
                    features = record["data"].get("features")
            if isinstance(features, dict):
                if "keys" in features:
                    sparse = True
                    rows.append((where, features))
                    continue
                features = features.get("values")
            if not isinstance(features, list):
                raise DataError(f"{content_type} request {where}: expected {{\"features\": [numbers]}} or "
                                '{"data": {"features": {"values": [...]}}} or a list of numbers')
            rows.append((where, features))
        if sparse:
            return self._csr(rows, content_type)
        dense = rows
        width = len(dense[0][1])
        for where, features in dense:
            if len(features) != width:
                raise DataError(f"{content_type} request {where}: {len(features)} features, and the first "
                                f"instance has {width}")
        try:
            return np.asarray([f for _, f in dense], dtype=np.float32)
        except (TypeError, ValueError):
            for where, features in dense:
                for value in features:
                    if not isinstance(value, (int, float)) and value is not None:
                        raise DataError(f"{content_type} request {where}: {value!r} is not a number") from None
            raise DataError(f"{content_type} request holds values that are not numbers") from None

    def _csr(self, records, content_type: str):
        import scipy.sparse as sp
        np = self._np
        indptr, indices, values = [0], [], []
        for where, features in records:
            if isinstance(features, dict):
                keys, vals = features.get("keys") or [], features.get("values") or []
                if len(keys) != len(vals):
                    raise DataError(f"{content_type} request {where}: {len(keys)} keys and {len(vals)} values")
            else:
                keys, vals = range(len(features)), features
            try:
                indices.extend(int(k) for k in keys)
                values.extend(float(v) for v in vals)
            except (TypeError, ValueError):
                raise DataError(f"{content_type} request {where}: keys must be integers and values numbers") from None
            if any(k < 0 for k in indices[indptr[-1]:]):
                raise DataError(f"{content_type} request {where}: keys must be non-negative feature indices")
            indptr.append(len(indices))
        width = max(max(indices) + 1 if indices else 0, self.num_features)
        return sp.csr_matrix((np.asarray(values, np.float32), np.asarray(indices, np.int64),
                              np.asarray(indptr, np.int64)), shape=(len(indptr) - 1, width))

    # predicting -------------------------------------------------------------------------------
    def predictions(self, rows):
        """Raw predictions (probabilities, class indices or values), averaged or voted over models."""
        np = self._np
        boosters = self.boosters
        if rows.shape[0] >= _PARALLEL_ROWS:
            boosters = self._parallel_boosters()
        outputs = [b.inplace_predict(rows) for b in boosters]
        if len(outputs) == 1:
            return outputs[0]
        stacked = np.stack(outputs)
        if self.vote:
            votes = np.rint(stacked).astype(np.int64)
            return np.apply_along_axis(lambda v: np.bincount(v - v.min()).argmax() + v.min(), 0, votes).astype(np.float32)
        return stacked.mean(axis=0)

    def _parallel_boosters(self):
        if self._parallel is None:
            copies = [b.copy() for b in self.boosters]
            for b in copies:
                b.set_param({"nthread": os.cpu_count() or 1})
            self._parallel = copies
        return self._parallel

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        if not body or not body.strip():
            return b""  # SageMaker answers an empty request with 204 No Content
        preds = self.predictions(self.parse(body, content_type))
        if self.selected_keys:
            return self._encode_selected(preds, accept)
        return self._encode(preds, accept)

    # encoding ---------------------------------------------------------------------------------
    def _scores(self, preds) -> list:
        # float32 -> the shortest decimal that reads back as the same float32 (0.4386, not 0.43860000371)
        np = self._np
        if preds.ndim == 1:
            return [float(s) for s in map(str, preds.astype(np.float32))]
        return [[float(s) for s in map(str, row)] for row in preds.astype(np.float32)]

    def _encode(self, preds, accept: str) -> bytes:
        if accept == "text/csv":
            from nbsage.formats.text_csv import write_rows
            return write_rows(preds)
        scores = self._scores(preds)
        if accept == "application/json":
            return json.dumps({"predictions": [{"score": s} for s in scores]}).encode()
        return "\n".join(json.dumps({"score": s}) for s in scores).encode()

    def _encode_selected(self, preds, accept: str) -> bytes:
        records = [self._select(p) for p in self._scores(preds)]
        if accept == "application/json":
            return json.dumps({"predictions": records}).encode()
        if accept == "application/jsonlines":
            return "\n".join(json.dumps(r) for r in records).encode()
        lines = []
        for record in records:
            cells = []
            for key in self.selected_keys:
                value = record[key]
                cells.append(f'"{json.dumps(value)}"' if isinstance(value, list) else json.dumps(value))
            lines.append(",".join(cells))
        return "\n".join(lines).encode()

    def _select(self, score) -> dict:
        objective = self.objective
        valid = _VALID_KEYS.get(objective, ())
        labels = list(range(self.num_class)) if objective.startswith("multi:") else [0, 1]
        out = {}
        for key in self.selected_keys:
            if key not in valid:
                out[key] = float("nan")
            elif key == "predicted_label":
                if isinstance(score, list):
                    out[key] = max(range(len(score)), key=score.__getitem__)
                elif objective == "binary:logistic":
                    out[key] = int(score > 0.5)
                elif objective == "binary:logitraw":
                    out[key] = int(score > 0)
                else:
                    out[key] = score
            elif key == "labels":
                out[key] = labels
            elif key == "probability":
                out[key] = max(score) if isinstance(score, list) else score
            elif key == "probabilities":
                out[key] = score if isinstance(score, list) else [1.0 - score, score]
            elif key == "raw_score":
                out[key] = max(score) if isinstance(score, list) else score
            elif key == "raw_scores":
                out[key] = score if isinstance(score, list) else [1.0 - score, score]
            elif key == "predicted_score":
                out[key] = score
        return out


def load(model_dir) -> XGBoostHandler:
    """The inference handler for a model directory holding xgboost-model (or xgboost-model-0..k-1)."""
    xgb = import_xgboost()
    directory = Path(model_dir)
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    models = [p for p in files if p.name == MODEL_NAME or re.fullmatch(rf"{MODEL_NAME}-[0-9]+", p.name)]
    if not models:
        raise DataError(f"{directory} holds no {MODEL_NAME} file (found: "
                        f"{', '.join(p.name for p in files) or 'nothing'})")
    models.sort(key=lambda p: int(p.name.rsplit("-", 1)[1]) if p.name != MODEL_NAME else -1)
    boosters = []
    for path in models:
        booster = _load_booster(xgb, path)
        booster.set_param({"nthread": 1, "device": "cpu"})
        boosters.append(booster)
    config = json.loads(boosters[0].save_config())["learner"]
    objective = config["objective"]["name"]
    num_class = int(config["learner_model_param"].get("num_class", 0) or 0)
    num_features = boosters[0].num_features()
    for path, booster in zip(models, boosters):
        if booster.num_features() != num_features:
            raise DataError(f"{path} has {booster.num_features()} features and {models[0]} {num_features}; "
                            "the models of one directory must share their features")
    selected = None
    if os.environ.get("SAGEMAKER_INFERENCE_OUTPUT"):
        selected = [k for k in os.environ["SAGEMAKER_INFERENCE_OUTPUT"].replace(" ", "").lower().split(",") if k]
        unknown = [k for k in selected if k not in SELECTABLE_KEYS]
        if unknown:
            raise ValidationError(f"SAGEMAKER_INFERENCE_OUTPUT: {unknown[0]!r} is not a selectable key; "
                                  f"choose from {', '.join(SELECTABLE_KEYS)}")
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").split(";")[0].strip().lower() or None
    return XGBoostHandler(boosters, objective, num_class, num_features, selected, default_accept)


ALGORITHM = Algorithm(
    name="xgboost",
    title="XGBoost",
    description="Gradient-boosted trees (SageMaker's XGBoost algorithm mode) for regression, "
                "classification and ranking on text/csv, text/libsvm or Parquet rows.",
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=METRICS,
    train=train,
    load=load,
    check=check,
    aliases=("xgb",),
    response_accept="text/csv",
)
