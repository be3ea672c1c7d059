"""XGBoost's declaration: every hyperparameter and the rules between them, channels, metrics.

Names, ranges, defaults and cross-parameter rules follow SageMaker's XGBoost container (algorithm
mode); the metric regexes are the MetricDefinitions that scrape its evaluation log lines. This
module imports neither xgboost nor numpy: looking the algorithm up (forms, CLI help, validation)
stays cheap, and `train`/`load` import their modules when called.
"""
from __future__ import annotations

import re

from nbsage.algorithms.base import (
    Algorithm,
    Channel,
    Hyperparameter,
    Metric,
    Range,
    at_least,
    closed,
    greater_than,
    imported_on_call,
    open_interval,
)
from nbsage.errors import HyperparameterError

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
    _check_num_class(hps, objective)
    _check_eval_metrics(hps, objective)
    _check_constraints(hps)
    _check_updater(hps)


def _check_num_class(hps: dict, objective: str) -> None:
    multi = objective in ("multi:softmax", "multi:softprob")
    if multi and "num_class" not in hps:
        raise HyperparameterError(
            f"hyperparameter 'num_class' is required when objective is {objective!r}: "
            "the number of classes, an integer >= 2 (labels are 0 .. num_class-1)", name="num_class")
    if not multi and "num_class" in hps:
        raise HyperparameterError(
            f"hyperparameter 'num_class' applies only to objective 'multi:softmax' or 'multi:softprob', "
            f"and objective is {objective!r}; remove num_class or choose a multi: objective", name="num_class")


def _check_eval_metrics(hps: dict, objective: str) -> None:
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
                    f"{', '.join(_THRESHOLD_METRICS)} take a threshold (e.g. error@0.7, ndcg@5)", name="eval_metric")
            try:
                float(threshold)
            except ValueError:
                raise HyperparameterError(
                    f"hyperparameter 'eval_metric': the threshold in {metric!r} is not a number; "
                    f"write {base}@t with a number t", name="eval_metric") from None
        if base == "auc" and not objective.startswith(("binary:", "rank:")):
            raise HyperparameterError(
                f"eval_metric 'auc' applies only to binary: and rank: objectives, and objective is {objective!r}", name="eval_metric")
        if base == "aft-nloglik" and objective != "survival:aft":
            raise HyperparameterError(
                f"eval_metric 'aft-nloglik' applies only to objective 'survival:aft', and objective is {objective!r}", name="eval_metric")


def _check_constraints(hps: dict) -> None:
    tree_method = hps.get("tree_method", "auto")
    constraints = hps.get("monotone_constraints")
    if constraints is not None:
        if tree_method not in ("exact", "hist", "gpu_hist"):
            raise HyperparameterError(
                f"hyperparameter 'monotone_constraints' needs tree_method 'exact' or 'hist', and tree_method "
                f"is {tree_method!r}", name="monotone_constraints")
        if any(c not in (-1, 0, 1) or isinstance(c, bool) for c in constraints):
            raise HyperparameterError(
                f"hyperparameter 'monotone_constraints' = {constraints!r} is not valid; expected one of -1, 0, 1 "
                "per feature, e.g. (0,1,-1)", name="monotone_constraints")
    interactions = hps.get("interaction_constraints")
    if interactions is not None:
        if tree_method not in ("exact", "hist", "approx", "gpu_hist"):
            raise HyperparameterError(
                f"hyperparameter 'interaction_constraints' needs tree_method 'exact', 'hist' or 'approx', and "
                f"tree_method is {tree_method!r}", name="interaction_constraints")
        if not (isinstance(interactions, list) and all(
                isinstance(group, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                for i in group) for group in interactions)):
            raise HyperparameterError(
                f"hyperparameter 'interaction_constraints' = {interactions!r} is not valid; expected a list of "
                "lists of feature indices, e.g. [[0,1],[2,3,4]]", name="interaction_constraints")


def _check_updater(hps: dict) -> None:
    updaters = hps.get("updater")
    if not updaters:
        return
    if hps.get("booster") == "gblinear":
        if not (len(updaters) == 1 and updaters[0] in _LINEAR_UPDATERS):
            raise HyperparameterError(
                f"hyperparameter 'updater' = {','.join(updaters)!r} is not valid with booster 'gblinear'; "
                "expected exactly one of shotgun, coord_descent", name="updater")
        return
    if hps.get("process_type") == "update":
        if not all(u in ("refresh", "prune") for u in updaters):
            raise HyperparameterError(
                f"hyperparameter 'updater' = {','.join(updaters)!r} is not valid with process_type 'update'; "
                "expected refresh and/or prune", name="updater")
        return
    wrong = [u for u in updaters if u not in _TREE_UPDATERS]
    if wrong:
        raise HyperparameterError(
            f"hyperparameter 'updater': {wrong[0]!r} is a gblinear updater; tree boosters take "
            f"{', '.join(_TREE_UPDATERS)}", name="updater")
    grow = [u for u in updaters if u in _GROW_UPDATERS]
    if len(grow) > 1:
        raise HyperparameterError(
            f"hyperparameter 'updater' names {len(grow)} tree grow plugins ({', '.join(grow)}); choose one", name="updater")
    removed = [u for u in updaters if u in _REMOVED_UPDATERS]
    if removed:
        raise HyperparameterError(
            f"hyperparameter 'updater': {removed[0]!r} was removed from xgboost; use "
            f"{_REMOVED_UPDATERS[removed[0]]!r} instead", name="updater")


def _metric_regex(split: str, metric: str) -> str:
    # CloudWatch shows the TAB of xgboost's log line as #011; nbsage's logs hold the TAB itself
    return rf".*\[[0-9]+\].*(?:#011|\t){split}-{re.escape(metric)}:(\S+)"


METRICS = tuple(
    Metric(f"{split}:{m}", "Maximize" if m in MAXIMIZE_METRICS else "Minimize", _metric_regex(split, m),
           f"{m} on the {split} channel, each round")
    for split in ("validation", "train") for m in EVAL_METRICS)
# what a tuning job may vary and optimise (SageMaker's "Tune an XGBoost Model" page)
TUNABLE = ("alpha", "colsample_bylevel", "colsample_bynode", "colsample_bytree", "eta", "gamma", "lambda",
           "max_delta_step", "max_depth", "min_child_weight", "num_round", "subsample")
OBJECTIVE_METRICS = tuple(m.name for m in METRICS if m.name.startswith("validation:"))

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

# csv_weights reads the instance weight from the second column of these content types only
# (text/libsvm carries it as `label:weight` whatever csv_weights says)
CSV_WEIGHTS_CONTENT_TYPES = ("text/csv",)

ALGORITHM = Algorithm(
    name="xgboost",
    title="XGBoost",
    description="Gradient-boosted trees (SageMaker's XGBoost algorithm mode) for regression, "
                "classification and ranking on text/csv, text/libsvm or Parquet rows.",
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=METRICS,
    train=imported_on_call("nbsage.algorithms.xgboost.training", "train"),
    load=imported_on_call("nbsage.algorithms.xgboost.inference", "load"),
    check=check,
    aliases=("xgb",),
    response_accept="text/csv",
    model_files=("xgboost-model", "xgboost-model-*"),
    tunable_hyperparameters=TUNABLE,
    objective_metrics=OBJECTIVE_METRICS,
)
