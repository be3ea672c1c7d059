"""The declaration every built-in algorithm makes once.

An algorithm module declares its hyperparameters, channels and metrics with the classes here, and
that one declaration drives validation, the ipywidgets form, CLI help and the docs. Hyperparameters
and their kinds (how a value is parsed, described, written and edited) are in
`nbsage.algorithms.hyperparameters`; they are imported here so a declaration imports one module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from nbsage.algorithms.hyperparameters import (  # noqa: F401 - what a declaration imports from here
    AUTO, Hyperparameter, Kind, Range, at_least, closed, greater_than, open_interval)
from nbsage.errors import ChannelError, HyperparameterError, did_you_mean
from nbsage.formats import normalize_content_type  # noqa: F401  (one alias table, in nbsage.formats)


@dataclass(frozen=True)
class Channel:
    """An input channel and the content types the algorithm can read from it."""

    name: str
    content_types: tuple[str, ...]
    required: bool = False
    help: str = ""

    @property
    def default_content_type(self) -> str:
        return self.content_types[0]


@dataclass(frozen=True)
class Metric:
    """A metric the algorithm emits; `regex` is the MetricDefinition that scrapes it from logs."""

    name: str
    direction: str  # "Maximize" | "Minimize"
    regex: str = ""
    help: str = ""


def imported_on_call(module: str, function: str) -> Callable:
    """A function that imports `module` when first called and calls its `function`.

    An algorithm's declaration names its train/load this way, so that looking the algorithm up
    (forms, CLI help, validation) never imports torch or xgboost.
    """
    def call(*args, **kwargs):
        import importlib
        return getattr(importlib.import_module(module), function)(*args, **kwargs)
    call.__name__ = call.__qualname__ = function
    call.__doc__ = f"{module}.{function}, imported when called."
    return call


@dataclass
class Algorithm:
    """A built-in algorithm's declaration plus its training and inference entry points.

    `train(env)` reads the channels of a `nbsage.runtime.environment.TrainingEnvironment`
    and writes `env.model_dir`; `load(model_dir)` returns an `InferenceHandler`.
    `check(hps)` runs rules that span several hyperparameters (e.g. num_class with multi:*).
    """

    name: str
    title: str
    description: str
    hyperparameters: tuple[Hyperparameter, ...]
    channels: tuple[Channel, ...]
    metrics: tuple[Metric, ...]
    train: Callable[..., None]
    load: Callable[[str], Any]
    check: Callable[[dict], None] | None = None
    aliases: tuple[str, ...] = ()
    # what a Predictor of this algorithm's endpoint sends and asks for unless told otherwise
    request_content_type: str = "text/csv"
    response_accept: str = "application/json"
    # the files of its model directory `load` reads, as glob patterns: a model.tar.gz holding none
    # of them is another algorithm's or no model at all (checked before a server starts)
    model_files: tuple[str, ...] = ()
    # hyperparameter tuning (nbsage.tuning.config): the hyperparameters SageMaker lets a tuning job
    # vary and the metrics it may optimise; empty means no restriction
    tunable_hyperparameters: tuple[str, ...] = ()
    objective_metrics: tuple[str, ...] = ()
    _by_name: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for hp in self.hyperparameters:
            self._by_name[hp.name] = hp
            for alias in hp.aliases:
                self._by_name[alias] = hp

    def hyperparameter(self, name: str) -> Hyperparameter:
        try:
            return self._by_name[name]
        except KeyError:
            raise HyperparameterError(
                f"hyperparameter {name!r} is not a {self.title} hyperparameter"
                f"{did_you_mean(name, self._by_name)}", name=name) from None

    def channel(self, name: str) -> Channel:
        for ch in self.channels:
            if ch.name == name:
                return ch
        raise ChannelError(
            f"channel {name!r} is not a {self.title} channel; {self.title} reads "
            + ", ".join(c.name for c in self.channels) + did_you_mean(name, [c.name for c in self.channels]))

    def validate(self, values: Mapping[str, Any]) -> dict:
        """Parse and check hyperparameters; return {canonical name: typed value} with defaults filled.

        Names starting with "_" (SageMaker's hidden keys such as _tuning_objective_metric) and
        "sagemaker_" are passed through untouched, unless the algorithm declares them (XGBoost's _kfold).
        """
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            if self._hidden(name):
                parsed[name] = value
                continue
            hp = self.hyperparameter(name)
            if value is None:
                continue
            parsed[hp.name] = hp.parse(value)
        for hp in self.hyperparameters:
            if hp.name not in parsed:
                if hp.required:
                    raise hp.missing(f" by {self.title}")
                if hp.default is not None:
                    parsed[hp.name] = hp.default
        if self.check is not None:
            self.check(parsed)
        return parsed

    def _hidden(self, name: str) -> bool:
        """A key SageMaker or the SDK adds (_tuning_objective_metric, sagemaker_program) that this
        algorithm does not declare: kept as given."""
        return (name.startswith("_") or name.startswith("sagemaker_")) and name not in self._by_name

    def to_strings(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Validate, then render as hyperparameters.json strings (only the values the user set)."""
        self.validate(values)
        out = {}
        for name, value in values.items():
            if value is None:
                continue
            if self._hidden(name):
                out[name] = value if isinstance(value, str) else json.dumps(value)
                continue
            hp = self.hyperparameter(name)
            out[hp.name] = hp.to_string(hp.parse(value))
        return out

    def check_channels(self, channels: Mapping[str, str | None]) -> None:
        """channels: {name: content type or None}. Raises ChannelError for a missing/unknown/bad one."""
        for name, content_type in channels.items():
            declared = self.channel(name)
            ct = normalize_content_type(content_type)
            if ct and ct not in declared.content_types:
                raise ChannelError(
                    f"channel {name!r}: {self.title} cannot read content type {content_type!r}; "
                    f"it accepts {', '.join(declared.content_types)}")
        for declared in self.channels:
            if declared.required and declared.name not in channels:
                raise ChannelError(
                    f"channel {declared.name!r} is required by {self.title} and was not given "
                    f"(accepted content types: {', '.join(declared.content_types)})")

    def metric_definitions(self) -> list[dict]:
        """SageMaker MetricDefinitions for this algorithm's log lines."""
        return [{"Name": m.name, "Regex": m.regex} for m in self.metrics if m.regex]

    def help_text(self) -> str:
        """Plain-text reference generated from the declaration (CLI help, docs)."""
        lines = [f"{self.title} ({self.name}): {self.description}", "", "Hyperparameters:"]
        for hp in self.hyperparameters:
            flag = "required" if hp.required else f"default {hp.default}" if hp.default is not None else "optional"
            lines.append(f"  {hp.name:<40} {flag}; {hp.describe()}. {hp.help}")
        lines += ["", "Channels:"]
        for ch in self.channels:
            lines.append(f"  {ch.name:<12} {'required' if ch.required else 'optional'}; {', '.join(ch.content_types)}")
        lines += ["", "Metrics:"]
        for m in self.metrics:
            lines.append(f"  {m.name:<40} {m.direction}")
        return "\n".join(lines)
