"""Loading: the train (and test) channels read, checked against the settings, and described.

Reads the records, resolves `auto` cardinality and num_dynamic_feat from the train channel, checks
every series is long enough for context_length + prediction_length and matches the fields, and
logs the dataset statistics SageMaker logs. Nothing here knows about the network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nbsage.algorithms.deepar.features import Frequency
from nbsage.algorithms.deepar.records import (FieldSpec, Series, check_series, read_channel,
                                              resolve_fields, statistics)
from nbsage.errors import DataError


@dataclass
class TrainingData:
    """The series a job trains and scores on, with the fields resolved from the train channel."""

    train: list[Series]
    fields: FieldSpec
    stats: dict
    test: list[Series] = field(default_factory=list)


def load_data(env, hps: dict, freq: Frequency, likelihood: str, log: Callable[[str], None]) -> TrainingData:
    """Read and check the train channel and, when given, the test channel."""
    C, P = hps["context_length"], hps["prediction_length"]
    root = env.root.data_dir
    train = read_series(env, "train", root)
    fields = resolve_fields(train, hps["cardinality"], hps["num_dynamic_feat"], log)
    rule = f"context_length + prediction_length = {C} + {P}"
    for s in train:
        check_series(s, fields, min_length=C + P, future=0, likelihood=likelihood, rule_lengths=rule)
        s.index(freq)
    stats = statistics(train)
    for key, value in stats.items():
        log(f"{key}: {value}")
    data = TrainingData(train, fields, stats)
    if "test" in env.channels:
        data.test = read_series(env, "test", root)
        for s in data.test:
            check_series(s, fields, min_length=C + P, future=0, likelihood=likelihood, rule_lengths=rule)
            s.index(freq)
        log(f"Test data: {len(data.test)} time series")
    return data


def read_series(env, name: str, root: Path) -> list[Series]:
    """The series of channel `name`; DataError naming the channel when it has no files."""
    channel = env.channels[name]
    files = env.channel_files(name)
    if not files:
        raise DataError(f"channel {name!r} has no data files under {channel.path}")
    return read_channel(files, channel.content_type, root=root)
