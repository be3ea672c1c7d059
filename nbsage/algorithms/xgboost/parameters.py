"""xgboost.train's params from SageMaker's hyperparameters.

Only what the user set is passed on, under xgboost's names, so xgboost's own defaults apply exactly
as when calling xgboost.train directly; hyperparameters the container itself reads (num_round,
early stopping, ...) and those xgboost >= 2 retired are kept out.
"""
from __future__ import annotations

import json

# SageMaker hyperparameters that xgboost >= 2 no longer reads: accepted, logged, not passed on
_RETIRED = {
    "dsplit": "xgboost no longer splits data by column",
    "sketch_eps": "xgboost >= 1.6 sizes the approx sketch with max_bin",
    "lambda_bias": "xgboost >= 1.0 has no separate bias regulariser for gblinear",
    "deterministic_histogram": "histograms are always deterministic in xgboost >= 1.6",
    "single_precision_histogram": "xgboost >= 2.0 always uses double precision histograms",
    "prob_buffer_row": "xgboost >= 1.6 has no GPU page buffer setting",
}
# read by the container (training, data, evaluation), never passed to xgboost.train's params
_CONTAINER_ONLY = {"num_round", "csv_weights", "early_stopping_rounds", "save_model_on_termination",
                   "use_dask_gpu_training", "eval_metric", "tree_method", "predictor", "objective"}


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

