"""Linear Learner's declaration: every hyperparameter, its channels and its metrics.

Names, ranges and defaults follow SageMaker's ll_hyperparameters page; `auto` values are resolved
at training time (see `settings.py`). Metric regexes are the MetricDefinitions SageMaker attaches
to Linear Learner jobs, which scrape the `#quality_metric` lines that `training.py` prints.
"""
from __future__ import annotations

from nbsage.algorithms.base import imported_on_call
from nbsage.algorithms.base import (
    AUTO, Algorithm, Channel, Hyperparameter, Metric, Range, at_least, closed, greater_than,
    open_interval)
from nbsage.errors import HyperparameterError

PREDICTOR_TYPES = ("binary_classifier", "multiclass_classifier", "regressor")
BINARY_LOSSES = ("logistic", "hinge_loss")
MULTICLASS_LOSSES = ("softmax_loss",)
REGRESSION_LOSSES = ("squared_loss", "absolute_loss", "eps_insensitive_squared_loss",
                     "eps_insensitive_absolute_loss", "quantile_loss", "huber_loss")
LOSSES_BY_PREDICTOR = {
    "binary_classifier": BINARY_LOSSES,
    "multiclass_classifier": MULTICLASS_LOSSES,
    "regressor": REGRESSION_LOSSES,
}
DEFAULT_LOSS = {"binary_classifier": "logistic", "multiclass_classifier": "softmax_loss",
                "regressor": "squared_loss"}
SELECTION_CRITERIA = ("accuracy", "f_beta", "precision_at_target_recall",
                      "recall_at_target_precision", "loss_function")
# accepted by the SageMaker Python SDK from older versions of the algorithm
LEGACY_CRITERIA = {"f1": "f_beta", "cross_entropy_loss": "loss_function"}

_unit = Range(0, 1, True, False)  # [0, 1)

# What `auto` becomes where it is a fixed value: SageMaker's 2018 container configuration. The help
# texts below and settings.resolve both read these tables, so the two cannot disagree.
AUTO_VALUES = {
    "beta_1": 0.9, "beta_2": 0.999, "bias_lr_mult": 10.0, "bias_wd_mult": 0.0, "momentum": 0.0,
    "wd": 0.0, "l1": 0.0, "lr_scheduler_factor": 0.99, "lr_scheduler_minimum_lr": 1e-5,
    "lr_scheduler_step": 100, "num_models": 32, "num_calibration_samples": 10_000_000,
}
AUTO_OPTIMIZER = "adam"
AUTO_LEARNING_RATE = {"adam": 0.02, "rmsprop": 0.01, "sgd": 0.05}


def _auto(name: str) -> str:
    """'auto: 0.9' for a help text, from AUTO_VALUES."""
    value = AUTO_VALUES[name]
    return f"auto: {value:,}" if isinstance(value, int) else f"auto: {value:g}"


_AUTO_LEARNING_RATE_HELP = "auto: " + ", ".join(f"{rate:g} for {opt}" for opt, rate in AUTO_LEARNING_RATE.items())
_AUTO_LOSS_HELP = ", ".join(f"{loss} ({predictor.split('_')[0]})" for predictor, loss in DEFAULT_LOSS.items())

HYPERPARAMETERS = (
    Hyperparameter("predictor_type", "str", required=True, choices=PREDICTOR_TYPES,
                   help="the kind of target: binary classification (labels 0/1), multiclass "
                        "classification (labels 0..num_classes-1) or regression (real labels)"),
    Hyperparameter("num_classes", "int", range=closed(3, 1_000_000),
                   help="number of classes, 3 to 1,000,000; required for multiclass_classifier, "
                        "ignored otherwise"),
    Hyperparameter("feature_dim", "int", default=AUTO, allow_auto=True, range=greater_than(0),
                   help="number of features; auto reads it from the data, and a value that "
                        "disagrees with the data is an error"),
    Hyperparameter("accuracy_top_k", "int", default=3, range=closed(1, 1_000_000), advanced=True,
                   help="k of the multiclass top-k accuracy metric"),
    Hyperparameter("balance_multiclass_weights", "bool", default=False, advanced=True,
                   help="weight classes so that each has equal importance in the loss "
                        "(multiclass_classifier only)"),
    Hyperparameter("beta_1", "float", default=AUTO, allow_auto=True, range=_unit, advanced=True,
                   help="Adam's exponential decay rate for first-moment estimates (" + _auto("beta_1") + ")"),
    Hyperparameter("beta_2", "float", default=AUTO, allow_auto=True, range=_unit, advanced=True,
                   help="Adam's exponential decay rate for second-moment estimates (" + _auto("beta_2") + ")"),
    Hyperparameter("bias_lr_mult", "float", default=AUTO, allow_auto=True, range=greater_than(0),
                   advanced=True,
                   help="the bias learns at learning_rate * bias_lr_mult (" + _auto("bias_lr_mult") + ")"),
    Hyperparameter("bias_wd_mult", "float", default=AUTO, allow_auto=True, range=at_least(0),
                   advanced=True,
                   help="the bias's L2 weight is wd * bias_wd_mult (" + _auto("bias_wd_mult") + ", no L2 on the bias)"),
    Hyperparameter("binary_classifier_model_selection_criteria", "str", default="accuracy",
                   choices=SELECTION_CRITERIA + tuple(LEGACY_CRITERIA),
                   help="what the best model and its decision threshold are chosen for, on the "
                        "validation channel (or the training data without one): accuracy, "
                        "f_beta, precision_at_target_recall, recall_at_target_precision or "
                        "loss_function (binary_classifier only)"),
    Hyperparameter("early_stopping_patience", "int", default=3, range=greater_than(0),
                   help="epochs without relative improvement before training stops; set it "
                        "above epochs to turn early stopping off"),
    Hyperparameter("early_stopping_tolerance", "float", default=0.001, range=greater_than(0),
                   advanced=True,
                   help="relative improvement below which an epoch counts as no improvement"),
    Hyperparameter("epochs", "int", default=15, range=greater_than(0),
                   help="maximum number of passes over the training data"),
    Hyperparameter("f_beta", "float", default=1.0, range=greater_than(0), advanced=True,
                   help="beta of the F-score metrics and of the f_beta selection criterion"),
    Hyperparameter("huber_delta", "float", default=1.0, range=greater_than(0), advanced=True,
                   help="huber_loss is squared below this error and absolute above it"),
    Hyperparameter("init_bias", "float", default=0.0, advanced=True,
                   help="initial value of the bias"),
    Hyperparameter("init_method", "str", default="uniform", choices=("uniform", "normal"),
                   advanced=True,
                   help="initial weights: uniform in [-init_scale, init_scale] or normal with "
                        "standard deviation init_sigma"),
    Hyperparameter("init_scale", "float", default=0.07, range=greater_than(0), advanced=True,
                   help="half-width of the uniform initial weights (init_method=uniform)"),
    Hyperparameter("init_sigma", "float", default=0.01, range=greater_than(0), advanced=True,
                   help="standard deviation of the normal initial weights (init_method=normal)"),
    Hyperparameter("l1", "float", default=AUTO, allow_auto=True, range=at_least(0),
                   help="L1 regularisation; 0 turns it off (" + _auto("l1") + " for the model with your "
                        "settings, explored by the parallel models)"),
    Hyperparameter("learning_rate", "float", default=AUTO, allow_auto=True, range=greater_than(0),
                   help="step size of the optimizer (" + _AUTO_LEARNING_RATE_HELP + ")"),
    Hyperparameter("loss", "str", default=AUTO,
                   choices=(AUTO,) + BINARY_LOSSES + MULTICLASS_LOSSES + REGRESSION_LOSSES,
                   help="loss function; auto is " + _AUTO_LOSS_HELP),
    Hyperparameter("loss_insensitivity", "float", default=0.01, range=greater_than(0),
                   advanced=True,
                   help="errors smaller than this count as zero in the eps_insensitive losses "
                        "(in label units)"),
    Hyperparameter("lr_scheduler_factor", "float", default=AUTO, allow_auto=True,
                   range=open_interval(0, 1), advanced=True,
                   help="the learning rate is multiplied by this every lr_scheduler_step "
                        "updates (" + _auto("lr_scheduler_factor") + ")"),
    Hyperparameter("lr_scheduler_minimum_lr", "float", default=AUTO, allow_auto=True,
                   range=greater_than(0), advanced=True,
                   help="the scheduler never lowers the learning rate below this (" + _auto("lr_scheduler_minimum_lr") + ")"),
    Hyperparameter("lr_scheduler_step", "int", default=AUTO, allow_auto=True,
                   range=greater_than(0), advanced=True,
                   help="updates between learning-rate decreases (" + _auto("lr_scheduler_step") + ")"),
    Hyperparameter("margin", "float", default=1.0, range=at_least(0), advanced=True,
                   help="margin of hinge_loss"),
    Hyperparameter("mini_batch_size", "int", default=1000, range=greater_than(0),
                   help="records per mini-batch"),
    Hyperparameter("momentum", "float", default=AUTO, allow_auto=True, range=_unit, advanced=True,
                   help="momentum of the sgd optimizer (" + _auto("momentum") + ")"),
    Hyperparameter("normalize_data", "bool", default=True, allow_auto=True,
                   help="scale the features to unit standard deviation before training"),
    Hyperparameter("normalize_label", "bool", default=AUTO, allow_auto=True, advanced=True,
                   help="scale the label to unit standard deviation (auto: regression only; "
                        "ignored for classification)"),
    Hyperparameter("num_calibration_samples", "int", default=AUTO, allow_auto=True,
                   range=greater_than(0), advanced=True,
                   help="validation records used to choose the decision threshold "
                        "(" + _auto("num_calibration_samples") + ")"),
    Hyperparameter("num_models", "int", default=AUTO, allow_auto=True, range=greater_than(0),
                   help="models trained in parallel, one with your settings and the rest with "
                        "close ones; the best on validation is kept (" + _auto("num_models") + ")"),
    Hyperparameter("num_point_for_scaler", "int", default=10000, range=greater_than(0),
                   advanced=True,
                   help="records sampled to compute the normalisation statistics"),
    Hyperparameter("optimizer", "str", default=AUTO, choices=(AUTO, "sgd", "adam", "rmsprop"),
                   help="optimisation algorithm (auto: " + AUTO_OPTIMIZER + ")"),
    Hyperparameter("positive_example_weight_mult", "float", default=1.0, allow_auto=True,
                   extra_values=("balanced",), range=greater_than(0),
                   help="weight of positive examples in the loss (negatives weigh 1); balanced "
                        "makes both classes weigh the same in total, auto lets the parallel "
                        "models search for the best weight (binary_classifier only)"),
    Hyperparameter("quantile", "float", default=0.5, range=open_interval(0, 1), advanced=True,
                   help="quantile q of quantile_loss: the label exceeds the prediction with "
                        "probability q"),
    Hyperparameter("target_precision", "float", default=0.8, range=open_interval(0, 1),
                   help="precision held while recall is maximised "
                        "(criteria recall_at_target_precision)"),
    Hyperparameter("target_recall", "float", default=0.8, range=open_interval(0, 1),
                   help="recall held while precision is maximised "
                        "(criteria precision_at_target_recall)"),
    Hyperparameter("unbias_data", "bool", default=AUTO, allow_auto=True, advanced=True,
                   help="shift the features to mean 0 (auto: when use_bias is true)"),
    Hyperparameter("unbias_label", "bool", default=AUTO, allow_auto=True, advanced=True,
                   help="shift the label to mean 0 (auto: regression with use_bias true)"),
    Hyperparameter("use_bias", "bool", default=True,
                   help="learn a bias (intercept) term"),
    Hyperparameter("use_lr_scheduler", "bool", default=True, advanced=True,
                   help="decrease the learning rate in steps during training"),
    Hyperparameter("wd", "float", default=AUTO, allow_auto=True, range=at_least(0),
                   help="L2 regularisation (weight decay); 0 turns it off (" + _auto("wd") + " for the "
                        "model with your settings, explored by the parallel models)"),
)

# File or Pipe input mode for both (Pipe channels are read whole through env.channel_files)
CONTENT_TYPES = ("text/csv", "application/x-recordio-protobuf")

CHANNELS = (
    Channel("train", CONTENT_TYPES, required=True,
            help="labelled records: CSV with the label in the first column and no header, or "
                 "RecordIO-protobuf with features['values'] and label['values']"),
    Channel("validation", CONTENT_TYPES,
            help="labelled records for early stopping, model selection and threshold tuning"),
    Channel("test", CONTENT_TYPES,
            help="labelled records scored once with the final model"),
)


def _quality(split: str, token: str, kind: str, epoch: bool = False) -> str:
    return (r"#quality_metric: host=\S+, " + (r"epoch=\S+, " if epoch else "")
            + f"{split} {token} <{kind}>=" + r"(\S+)")


def _metrics() -> tuple[Metric, ...]:
    out = [
        Metric("train:objective_loss", "Minimize", _quality("train", r"\S+_objective", "loss", True),
               "the training loss of the model with your settings, per epoch"),
        Metric("train:objective_loss:final", "Minimize", _quality("train", r"\S+_objective", "loss"),
               "the training loss of the final model"),
        Metric("validation:objective_loss", "Minimize",
               _quality("validation", r"\S+_objective", "loss", True),
               "the validation loss of the model with your settings, per epoch"),
        Metric("validation:objective_loss:final", "Minimize",
               _quality("validation", r"\S+_objective", "loss"),
               "the validation loss of the final model"),
        Metric("test:objective_loss", "Minimize", _quality("test", r"\S+_objective", "loss"),
               "the test loss of the final model"),
    ]
    per_split = (
        ("binary_classification_accuracy", "Maximize", "binary_classification_accuracy", "score",
         "fraction of records classified correctly at the chosen threshold"),
        ("binary_f_beta", "Maximize", r"binary_f_\S+", "score", "F-beta score (beta = f_beta)"),
        ("precision", "Maximize", "precision", "score", "precision of the positive class"),
        ("recall", "Maximize", "recall", "score", "recall of the positive class"),
        ("roc_auc_score", "Maximize", "roc_auc_score", "score", "area under the ROC curve"),
        ("multiclass_accuracy", "Maximize", "multiclass_accuracy", "score",
         "fraction of records whose top class is the label"),
        ("multiclass_top_k_accuracy", "Maximize", r"multiclass_top_k_accuracy_\S+", "score",
         "fraction of records whose label is among the top accuracy_top_k classes"),
        ("macro_f_beta", "Maximize", r"macro_f_\S+", "score", "F-beta averaged over classes"),
        ("macro_precision", "Maximize", "macro_precision", "score", "precision averaged over classes"),
        ("macro_recall", "Maximize", "macro_recall", "score", "recall averaged over classes"),
        ("dcg", "Maximize", "dcg", "score", "discounted cumulative gain of the label's rank"),
        ("mse", "Minimize", "mse", "loss", "mean squared error"),
        ("rmse", "Minimize", "rmse", "loss", "root mean squared error"),
        ("absolute_loss", "Minimize", "absolute_loss", "loss", "mean absolute error"),
    )
    for split in ("validation", "test"):
        for name, direction, token, kind, text in per_split:
            out.append(Metric(f"{split}:{name}", direction, _quality(split, token, kind),
                              f"{text}, on the {split} channel"))
    return tuple(out)


METRICS = _metrics()
# what a tuning job may vary and optimise (SageMaker's "Tune a linear learner model" page)
TUNABLE = ("wd", "l1", "learning_rate", "mini_batch_size", "use_bias", "positive_example_weight_mult")
OBJECTIVE_METRICS = tuple(m.name for m in METRICS if m.name.split(":")[0] in ("validation", "test")
                          and not m.name.endswith(":final"))
_NUM_CLASSES = next(hp for hp in HYPERPARAMETERS if hp.name == "num_classes")


def resolve_loss(predictor_type: str, loss: str) -> str:
    return DEFAULT_LOSS[predictor_type] if loss == AUTO else loss


def check(hps: dict) -> None:
    """Rules that span several hyperparameters."""
    predictor = hps.get("predictor_type")
    if predictor is None:
        return
    if predictor == "multiclass_classifier":
        k = hps.get("num_classes")
        if k is None:
            raise HyperparameterError(
                "hyperparameter 'num_classes' is required when predictor_type is "
                f"multiclass_classifier (expected {_NUM_CLASSES.describe()}; labels are "
                "0..num_classes-1)", name="num_classes")
    loss = hps.get("loss", AUTO)
    allowed = LOSSES_BY_PREDICTOR[predictor]
    if loss != AUTO and loss not in allowed:
        raise HyperparameterError(
            f"hyperparameter 'loss' = {loss!r} is not valid for predictor_type={predictor}: "
            f"expected auto or one of {', '.join(allowed)}", name="loss")


ALGORITHM = Algorithm(
    name="linear-learner",
    title="Linear Learner",
    description=("linear models for binary and multiclass classification and regression; "
                 "trains many models in parallel and keeps the best on validation"),
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=METRICS,
    train=imported_on_call("nbsage.algorithms.linear_learner.training", "train"),
    load=imported_on_call("nbsage.algorithms.linear_learner.inference", "load"),
    check=check,
    aliases=("linear_learner", "linearlearner", "ll"),
    model_files=("linear-learner-model.npz",),
    tunable_hyperparameters=TUNABLE,
    objective_metrics=OBJECTIVE_METRICS,
)
