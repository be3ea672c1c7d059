"""DeepAR's declaration: every hyperparameter, its channels and its metrics.

Names, defaults and valid values follow SageMaker's deepar_hyperparameters page and the
container's default-input.json. `cell_type` is nbsage's addition (SageMaker's DeepAR is an LSTM;
`gru` swaps the cell). Metric regexes scrape the `#test_score` and `#quality_metric` lines that
`training.py` prints, as SageMaker's MetricDefinitions for DeepAR do.
"""
from __future__ import annotations

from nbsage.algorithms.base import imported_on_call
from nbsage.algorithms.base import AUTO, Algorithm, Channel, Hyperparameter, Metric, at_least, greater_than
from nbsage.errors import HyperparameterError

LIKELIHOODS = ("gaussian", "beta", "negative-binomial", "student-T", "deterministic-L1")
_LIKELIHOOD_ALIASES = {"student-t": "student-T", "studentt": "student-T", "student_t": "student-T",
                       "negative_binomial": "negative-binomial", "deterministic-l1": "deterministic-L1"}
DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CONTENT_TYPES = ("application/jsonlines", "application/json", "application/x-parquet")

HYPERPARAMETERS = (
    Hyperparameter("context_length", "int", required=True, range=greater_than(0),
                   help="time points the model sees before forecasting; about prediction_length "
                        "(lags reach further back, so it can be shorter than the seasonality)"),
    Hyperparameter("epochs", "int", required=True, range=greater_than(0),
                   help="maximum number of passes over the training data (see early_stopping_patience)"),
    Hyperparameter("prediction_length", "int", required=True, range=greater_than(0),
                   help="time steps the model forecasts (the horizon); fixed once trained"),
    Hyperparameter("time_freq", "str", required=True,
                   help="granularity of the series: an optional integer then M, W, D, H or min "
                        "(e.g. 'H', '5min', '2D'); picks the lags and calendar features"),
    Hyperparameter("cardinality", "list", default=AUTO, allow_auto=True, extra_values=("ignore", ""),
                   help="categories per categorical feature ('cat'), e.g. [2, 3]; auto infers it "
                        "from the data, ignore (or '') leaves 'cat' unused"),
    Hyperparameter("dropout_rate", "float", default=0.1, range=at_least(0),
                   help="dropout between the recurrent layers during training (typical values < 0.2)"),
    Hyperparameter("early_stopping_patience", "int", range=greater_than(0), extra_values=("",),
                   help="stop when the training loss has not improved for this many epochs; the "
                        "model of the lowest-loss epoch is kept (unset: no early stopping)"),
    Hyperparameter("embedding_dimension", "int", default=10, allow_auto=True, range=greater_than(0),
                   help="size of the vector learned for each category of each categorical feature "
                        "(auto: min(50, (cardinality + 1) // 2) per feature)"),
    Hyperparameter("learning_rate", "float", default=0.001, range=greater_than(0),
                   help="Adam's learning rate (halved when the loss plateaus for 10 epochs)"),
    Hyperparameter("likelihood", "str", default="student-T",
                   choices=LIKELIHOODS + ("student-t",),
                   help="noise model: gaussian (real values), beta (values in [0, 1]), "
                        "negative-binomial (counts), student-T (real, bursty), deterministic-L1 "
                        "(point forecast trained with L1 loss)"),
    Hyperparameter("mini_batch_size", "int", default=128, range=greater_than(0),
                   help="training windows per mini-batch"),
    Hyperparameter("num_cells", "int", default=40, range=greater_than(0),
                   help="cells in each hidden layer of the RNN"),
    Hyperparameter("num_dynamic_feat", "int", default=AUTO, allow_auto=True, extra_values=("ignore", ""),
                   range=at_least(0),
                   help="number of 'dynamic_feat' arrays per series; auto infers it, ignore (or '') "
                        "leaves them unused"),
    Hyperparameter("num_eval_samples", "int", default=100, range=greater_than(0),
                   help="sample paths drawn per test series to compute the test metrics"),
    Hyperparameter("num_layers", "int", default=2, range=greater_than(0),
                   help="hidden layers of the RNN"),
    Hyperparameter("test_quantiles", "list", default=list(DEFAULT_QUANTILES),
                   help="quantiles whose weighted quantile loss is computed on the test channel"),
    Hyperparameter("cell_type", "str", default="lstm", choices=("lstm", "gru"), advanced=True,
                   help="recurrent cell (nbsage addition; SageMaker's DeepAR uses lstm)"),
)

CHANNELS = (
    Channel("train", CONTENT_TYPES, required=True,
            help="time series as JSON Lines (.json, .json.gz) or Parquet records with start, "
                 "target and optionally cat and dynamic_feat"),
    Channel("test", CONTENT_TYPES,
            help="full series whose last prediction_length points are forecast and scored"),
)


def _test_score(name: str) -> str:
    return r"#test_score \(\S+, " + name.replace("[", r"\[").replace("]", r"\]") + r"\): (\S+)"


METRICS = (
    Metric("train:final_loss", "Minimize", r"#quality_metric: host=\S+, train final_loss <loss>=(\S+)",
           "training loss of the epoch kept as final (the lowest)"),
    Metric("train:loss", "Minimize", r"#quality_metric: host=\S+, epoch=\S+, train loss <loss>=(\S+)",
           "training loss per epoch"),
    Metric("test:RMSE", "Minimize", _test_score("RMSE"),
           "root mean squared error of the mean forecast over the last prediction_length points"),
    Metric("test:mean_wQuantileLoss", "Minimize", _test_score("mean_wQuantileLoss"),
           "weighted quantile loss averaged over test_quantiles"),
    *(Metric(f"test:wQuantileLoss[{q}]", "Minimize", _test_score(f"wQuantileLoss[{q}]"),
             f"weighted quantile loss of the {q} quantile") for q in DEFAULT_QUANTILES),
)
# what a tuning job may vary and optimise (SageMaker's "Tune a DeepAR model" page)
TUNABLE = ("context_length", "dropout_rate", "embedding_dimension", "epochs", "learning_rate", "mini_batch_size",
           "num_cells", "num_layers")
OBJECTIVE_METRICS = ("test:RMSE", "test:mean_wQuantileLoss", "train:final_loss")


def canonical_likelihood(name: str) -> str:
    """'student-t' (what SageMaker's config writes) -> 'student-T'."""
    return name if name in LIKELIHOODS else _LIKELIHOOD_ALIASES.get(name.lower(), name)


def check(hps: dict) -> None:
    """Rules that span values, or that a single declaration cannot state."""
    from nbsage.algorithms.deepar.features import Frequency
    if "time_freq" in hps:
        Frequency.parse(hps["time_freq"])
    if "likelihood" in hps:
        hps["likelihood"] = canonical_likelihood(hps["likelihood"])
    quantiles = hps.get("test_quantiles", DEFAULT_QUANTILES)
    try:
        values = [float(q) for q in quantiles]
    except (TypeError, ValueError):
        values = []
    if not values or any(not 0 < q < 1 for q in values):
        raise HyperparameterError(f"hyperparameter 'test_quantiles' = {quantiles!r} is not valid; "
                                  "expected a list of numbers between 0 and 1, e.g. [0.1, 0.5, 0.9]",
                                  name="test_quantiles")
    hps["test_quantiles"] = values
    card = hps.get("cardinality", AUTO)
    if card not in (AUTO, "ignore", ""):
        try:
            counts = [int(c) for c in card]
        except (TypeError, ValueError):
            counts = []
        if not counts or any(c <= 0 or str(c) != str(raw).strip() for c, raw in zip(counts, card)):
            raise HyperparameterError(f"hyperparameter 'cardinality' = {card!r} is not valid; expected "
                                      "auto, ignore, '' or a list of positive integers, e.g. [2, 3]",
                                      name="cardinality")
        hps["cardinality"] = counts
    if hps.get("early_stopping_patience") == "":
        hps.pop("early_stopping_patience")


ALGORITHM = Algorithm(
    name="deepar",
    title="DeepAR",
    description=("probabilistic forecasting of many related time series with one autoregressive "
                 "recurrent network (LSTM/GRU) trained across all of them"),
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=METRICS,
    train=imported_on_call("nbsage.algorithms.deepar.training", "train"),
    load=imported_on_call("nbsage.algorithms.deepar.inference", "load"),
    check=check,
    aliases=("deepar-forecasting", "forecasting-deepar"),
    request_content_type="application/json",
    model_files=("model_algo-1.pt",),
    tunable_hyperparameters=TUNABLE,
    objective_metrics=OBJECTIVE_METRICS,
)
