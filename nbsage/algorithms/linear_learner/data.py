"""Linear Learner's data: reading channels, checking labels, normalisation statistics.

Features are shifted and scaled with statistics of a sample of `num_point_for_scaler` training
records (and the label too, for regression); training works on the normalised copy, and
`training._Trainer` folds the statistics back into the saved weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nbsage.algorithms.content_types import default_for
from nbsage.algorithms.linear_learner.settings import Settings
from nbsage.errors import DataError
from nbsage.formats import read_table

# SageMaker's Linear Learner reads a channel without ContentType as RecordIO-protobuf (the MNIST
# example relies on it); files named *.csv are read as CSV (nbsage.algorithms.content_types)
DEFAULT_CONTENT_TYPE = "application/x-recordio-protobuf"


@dataclass
class Split:
    """Features (normalised), labels (classes or normalised regression targets), raw labels."""

    name: str
    x: np.ndarray
    y: np.ndarray
    y_raw: np.ndarray


_inferred: dict[tuple[int, str], str] = {}


def content_type(env, channel: str) -> str:
    """The channel's content type: as given, else RecordIO-protobuf (text/csv for *.csv files),
    worked out (and logged) once per channel."""
    given = env.channels[channel].content_type
    if given:
        return given
    key = (id(env), channel)
    if key not in _inferred:
        _inferred[key] = default_for(env, channel, DEFAULT_CONTENT_TYPE, "Linear Learner")
    return _inferred[key]


def read_channel(env, channel: str, num_features: int | None):
    ch = env.channels[channel]
    files = env.channel_files(channel)
    if not files:
        raise DataError(f"channel {channel!r} has no files in {ch.path}")
    table = read_table(files, content_type(env, channel), num_features=num_features)
    if hasattr(table.features, "toarray"):  # sparse RecordIO-protobuf records: trained on dense features
        table.features = table.features.toarray()
    return table


def where(env, channel: str, row: int) -> str:
    """'train/part-1.csv line 17' for the row-th record (0-based) of a channel."""
    ch = env.channels[channel]
    for path in env.channel_files(channel):
        try:
            count = read_table([path], content_type(env, channel)).num_rows
        except DataError:
            count = 0
        if row < count:
            try:
                name = path.relative_to(ch.path).as_posix()
            except ValueError:
                name = path.name
            return f"{channel}/{name} line {row + 1}"
        row -= count
    return f"{channel} record {row + 1}"


def check_labels(env, channel: str, table, settings: Settings) -> None:
    x, y = table.features, table.labels
    if not np.isfinite(x).all():
        row, col = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{where(env, channel, int(row))}, column {int(col) + 2}: feature value "
                        f"{x[row, col]} is not a finite number")
    predictor = settings.predictor_type
    if predictor == "binary_classifier":
        bad = np.flatnonzero((y != 0) & (y != 1))
        accepted = "0 or 1"
    elif predictor == "multiclass_classifier":
        k = settings.num_classes
        bad = np.flatnonzero((y != np.round(y)) | (y < 0) | (y > k - 1) | ~np.isfinite(y))
        accepted = f"an integer from 0 to {k - 1} (num_classes={k})"
    else:
        bad = np.flatnonzero(~np.isfinite(y))
        accepted = "a finite number"
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{where(env, channel, row)}: label {y[row]:g} is not valid for "
                        f"predictor_type={predictor}; labels must be {accepted}"
                        + (f" ({len(bad)} records of the {channel} channel are affected)" if len(bad) > 1 else ""))


@dataclass
class Scaler:
    mean: np.ndarray   # subtracted from each feature
    scale: np.ndarray  # then each feature is divided by this
    label_mean: float
    label_scale: float


def fit_scaler(x, y, settings: Settings, hps, rng, log) -> Scaler:
    n, d = x.shape
    size = min(n, int(hps.get("num_point_for_scaler", 10000)))
    idx = slice(None) if size == n else np.sort(rng.choice(n, size, replace=False))
    sample, ys = x[idx].astype(np.float64), y[idx]
    mean = sample.mean(axis=0) if settings.unbias_data else np.zeros(d)
    scale = np.ones(d)
    if settings.normalize_data:
        scale = sample.std(axis=0)
        scale[~(scale > 0)] = 1.0  # a constant feature is left unscaled
    label_mean = float(ys.mean()) if settings.unbias_label else 0.0
    label_scale = float(ys.std()) if settings.normalize_label else 1.0
    if not label_scale > 0:
        label_scale = 1.0
    log.info(f"Normalisation statistics from {size} of {n} records: features "
             f"{'shifted' if settings.unbias_data else 'not shifted'} and "
             f"{'scaled' if settings.normalize_data else 'not scaled'} "
             f"(mean of feature means {mean.mean():.6g}, mean stdev {scale.mean():.6g})"
             + (f"; label mean {label_mean:.6g}, stdev {label_scale:.6g}"
                if settings.predictor_type == "regressor" else ""))
    return Scaler(mean, scale, label_mean, label_scale)


def normalise(name, x, y, scaler: Scaler, settings: Settings) -> Split:
    # float32 halves the memory of the copy; products with the float64 weights are float64
    xn = ((x - scaler.mean) / scaler.scale).astype(np.float32)
    if settings.predictor_type == "regressor":
        yn = (y - scaler.label_mean) / scaler.label_scale
    else:
        yn = y
    return Split(name, xn, yn, y)


def sample(split: Split, size: int, rng) -> Split:
    n = len(split.y)
    if n <= size:
        return split
    idx = np.sort(rng.choice(n, size, replace=False))
    return Split(split.name, split.x[idx], split.y[idx], split.y_raw[idx])
