"""DeepAR's test metrics, from sample paths and the held-out values (GluonTS Evaluator definitions).

RMSE is computed on the mean of the sample paths; the quantile losses on the sample quantiles:
QuantileLoss[q] = 2 * sum |(y - q_hat) * (1{y <= q_hat} - q)|, wQuantileLoss[q] = QuantileLoss[q] /
sum |y|, both over all series and the last prediction_length points. Missing values are left out.
"""
from __future__ import annotations

import numpy as np


def sample_quantiles(samples: np.ndarray, quantiles) -> np.ndarray:
    """[len(quantiles), S, P] quantiles over the sample axis of [S, num_samples, P]."""
    return np.quantile(samples, np.asarray(quantiles, dtype=np.float64), axis=1)


def quantile_loss(y: np.ndarray, forecast: np.ndarray, q: float, mask: np.ndarray) -> float:
    err = (y - forecast) * ((y <= forecast).astype(np.float64) - q)
    return float(2.0 * np.abs(err)[mask].sum())


def score(samples: np.ndarray, actual: np.ndarray, quantiles) -> dict:
    """Metrics of forecasts `samples` [S, num_samples, P] against `actual` [S, P] (NaN = missing)."""
    mask = ~np.isnan(actual)
    y = np.where(mask, actual, 0.0).astype(np.float64)
    mean = samples.mean(axis=1)
    n = max(int(mask.sum()), 1)
    abs_sum = float(np.abs(y)[mask].sum())
    out = {"RMSE": float(np.sqrt(((mean - y) ** 2)[mask].sum() / n)),
           "MAPE": float(np.mean(np.abs((mean - y)[mask]) / np.maximum(np.abs(y[mask]), 1e-12))) if mask.any() else 0.0,
           "ND": float(np.abs(mean - y)[mask].sum() / abs_sum) if abs_sum else float("nan")}
    qs = sample_quantiles(samples, quantiles)
    losses, weighted = [], []
    for q, forecast in zip(quantiles, qs):
        loss = quantile_loss(y, forecast, float(q), mask)
        losses.append(loss)
        wql = loss / abs_sum if abs_sum else float("nan")
        weighted.append(wql)
        out[f"wQuantileLoss[{format_quantile(q)}]"] = wql
    out["mean_absolute_QuantileLoss"] = float(np.mean(losses))
    out["mean_wQuantileLoss"] = float(np.mean(weighted))
    return out


def format_quantile(q) -> str:
    """0.1 -> '0.1', 0.5 -> '0.5' (the spelling used in metric names)."""
    return f"{float(q):g}"


def seasonal_naive(history: list[np.ndarray], prediction_length: int, season: int) -> np.ndarray:
    """[S, 1, P] forecasts repeating the last season of each history (the classic baseline)."""
    out = np.empty((len(history), 1, prediction_length))
    for i, h in enumerate(history):
        h = np.asarray(h, dtype=np.float64)
        filled = h[~np.isnan(h)] if np.isnan(h).any() else h
        if len(filled) == 0:
            out[i, 0] = 0.0
            continue
        if len(h) >= season and not np.isnan(h[-season:]).any():
            last = h[-season:]
        else:
            last = filled[-season:] if len(filled) >= season else np.full(season, filled[-1])
        out[i, 0] = np.resize(last, prediction_length) if season < prediction_length else last[:prediction_length]
    return out
