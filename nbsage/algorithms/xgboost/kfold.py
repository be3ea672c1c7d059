"""SageMaker's `_kfold` mode: repeated (stratified) k-fold cross-validation over train+validation.

Saves one model per fold (`xgboost-model-<i>`, averaged or voted at inference), prints each
repeat's mean metrics as an evaluation line, and writes the out-of-fold predictions to
output/data/predictions.csv. scikit-learn draws the folds, as in SageMaker's container.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nbsage.algorithms.xgboost import callbacks
from nbsage.algorithms.xgboost.library import xgb
from nbsage.algorithms.xgboost.model import MODEL_NAME, save_model


def train_kfold(env, hps: dict, params: dict, plan, train_table, val_table) -> None:
    """Train k models per repeat on train+validation; see the module docstring for what is saved."""
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold
    from nbsage.algorithms.xgboost.training import training_error

    k, repeats, num_round = hps["_kfold"], hps.get("_num_cv_round") or 1, hps["num_round"]
    features, labels, weights = _train_and_validation(train_table, val_table)
    classification = params["objective"].startswith(("binary:", "multi:"))
    splitter = (RepeatedStratifiedKFold if classification else RepeatedKFold)(n_splits=k, n_repeats=repeats)
    full = xgb.DMatrix(features, label=labels, weight=weights, nthread=hps.get("nthread", -1))
    env.log(f"Running {repeats} round(s) of {k}-fold cross-validation on {full.num_row()} rows")
    predictions = [[] for _ in range(repeats)]
    history = []
    folds = splitter.split(np.zeros(len(labels)), labels if classification else None)
    for fold, (train_idx, val_idx) in enumerate(folds):
        dtrain, dval = full.slice(train_idx), full.slice(val_idx)
        evals_result: dict = {}
        fold_callbacks = [callbacks.Reporter(env, num_round, emit_metrics=False, progress_offset=fold * num_round,
                                             progress_total=k * repeats * num_round)]
        early_stopping = callbacks.early_stopping(env, hps, params, plan, has_validation=True)
        if early_stopping is not None:
            fold_callbacks.append(early_stopping)
        env.log(f"Cross-validation fold {fold % k + 1} of {k}, round {fold // k + 1} of {repeats}")
        try:
            booster = xgb.train(params, dtrain, num_boost_round=num_round, evals=[(dtrain, "train"), (dval, "validation")],
                                callbacks=fold_callbacks, custom_metric=plan.custom_metric, evals_result=evals_result,
                                verbose_eval=False)
        except xgb.core.XGBoostError as e:
            raise training_error(e) from None
        history.append(evals_result)
        predictions[fold // k].append((val_idx, booster.predict(dval)))
        save_model(booster, Path(env.model_dir) / f"{MODEL_NAME}-{fold}")
        if (fold + 1) % k == 0:
            _report_cv(env, num_round, history[-k:], step=fold // k)
    if repeats > 1:
        env.log(f"Mean metrics over {repeats} rounds of {k}-fold cross-validation:")
        _report_cv(env, num_round, history, step=repeats)
    _save_oof_predictions(Path(env.output_data_dir) / "predictions.csv", labels, predictions, classification)


def _train_and_validation(train_table, val_table):
    """(features, labels, weights) of both channels' rows; a channel without weights weighs 1."""
    features, labels, weights = train_table.features, train_table.labels, train_table.weights
    if val_table is None:
        return features, labels, weights
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
    return features, labels, weights


def _report_cv(env, num_round: int, results: list[dict], step: int) -> None:
    """One evaluation line (and metrics) of the folds' mean last-round values."""
    line = [f"[{num_round}]"]
    for metric in results[0]["train"]:
        for data in ("train", "validation"):
            value = sum(r[data][metric][-1] for r in results) / len(results)
            line.append(f"{data}-{metric}:{value:.5f}")
            env.metric(f"{data}:{metric}", value, step=step)
    env.log("\t".join(line))


def _save_oof_predictions(path: Path, labels, predictions, classification: bool) -> None:
    """label, mean out-of-fold prediction[, majority predicted label] per row."""
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

