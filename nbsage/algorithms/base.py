"""The declaration every built-in algorithm makes once.

An algorithm module declares its hyperparameters, channels and metrics with the classes here, and
that one declaration drives validation, the ipywidgets form, CLI help and the docs. Values arrive
as strings (SageMaker's hyperparameters.json), as Python values (the API), or as YAML scalars (the
magic); `Hyperparameter.parse` turns any of them into one typed value or raises an error naming the
parameter and its valid range.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from nbsage.errors import ChannelError, HyperparameterError, did_you_mean
from nbsage.formats import normalize_content_type  # noqa: F401  (one alias table, in nbsage.formats)

AUTO = "auto"

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Range:
    """A numeric interval; `low`/`high` of None are unbounded."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            return False
        return True

    def __str__(self) -> str:
        def fmt(v):
            return f"{v:g}" if isinstance(v, float) else str(v)
        if self.low is not None and self.high is not None:
            return f"{'[' if self.low_inclusive else '('}{fmt(self.low)}, {fmt(self.high)}{']' if self.high_inclusive else ')'}"
        if self.low is not None:
            return f"{'>=' if self.low_inclusive else '>'} {fmt(self.low)}"
        if self.high is not None:
            return f"{'<=' if self.high_inclusive else '<'} {fmt(self.high)}"
        return "any number"


def closed(low, high) -> Range:
    return Range(low, high)


def at_least(low) -> Range:
    return Range(low, None)


def greater_than(low) -> Range:
    return Range(low, None, low_inclusive=False)


def open_interval(low, high) -> Range:
    return Range(low, high, False, False)


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: what it is, what it accepts, what it defaults to.

    kind is one of "int", "float", "bool", "str", "list" (a JSON list, or a comma list of
    strings when `choices` is set, e.g. XGBoost's eval_metric) or "json" (any JSON value kept as
    parsed, e.g. interaction_constraints).
    default None with required False means "not set" (the algorithm's own default applies);
    default "auto" means the value is resolved from the data at training time.
    """

    name: str
    kind: str
    help: str
    default: Any = None
    required: bool = False
    range: Range | None = None
    choices: tuple | None = None
    allow_auto: bool = False
    aliases: tuple[str, ...] = ()
    extra_values: tuple = ()  # non-numeric words a numeric parameter also takes, e.g. "balanced"
    advanced: bool = False  # forms fold these under "Advanced"

    def describe(self) -> str:
        """The accepted values in words, for errors, help and forms."""
        parts = []
        if self.choices:
            parts.append("one of " + ", ".join(map(str, self.choices)) + (" (comma-separated)" if self.kind == "list" else ""))
        elif self.kind in ("int", "float"):
            parts.append(("an integer" if self.kind == "int" else "a number") + (f" in {self.range}" if self.range else ""))
        elif self.kind == "bool":
            parts.append("true or false")
        elif self.kind == "list":
            parts.append("a list")
        elif self.kind == "json":
            parts.append("a JSON value")
        else:
            parts.append("a string")
        words = [w for w in ((AUTO,) if self.allow_auto else ()) + tuple(self.extra_values)]
        if words:
            parts.append("or " + " or ".join(repr(w) for w in words))
        return " ".join(parts)

    def _fail(self, value, why: str = "") -> HyperparameterError:
        return HyperparameterError(
            f"hyperparameter {self.name!r} = {value!r} is not valid{': ' + why if why else ''}; "
            f"expected {self.describe()}")

    def parse(self, value: Any) -> Any:
        """Typed value from a string, Python or YAML value; raises HyperparameterError."""
        raw = value
        if isinstance(value, str):
            value = value.strip()
            # SDK script mode JSON-encodes strings: '"adam"' -> 'adam'
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if value.lower() == AUTO and self.allow_auto:
                return AUTO
            if value in self.extra_values:
                return value
        elif value in self.extra_values:
            return value
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise self._fail(raw)
        if self.kind in ("int", "float"):
            if isinstance(value, bool):
                raise self._fail(raw)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise self._fail(raw) from None
            if math.isnan(number):
                raise self._fail(raw)
            if self.kind == "int":
                if number != int(number):
                    raise self._fail(raw, "not a whole number")
                number = int(number)
            if self.range is not None and number not in self.range:
                raise self._fail(raw, "out of range")
            if self.choices and number not in self.choices:
                raise self._fail(raw)
            return number
        if self.kind == "list":
            items = value
            if isinstance(value, str):
                text = value.strip()
                if text.startswith("[") or text.startswith("("):
                    try:
                        items = json.loads(text.replace("(", "[").replace(")", "]"))
                    except ValueError:
                        raise self._fail(raw, "not a list") from None
                else:
                    items = [s.strip() for s in text.split(",") if s.strip()]
            if not isinstance(items, (list, tuple)):
                raise self._fail(raw, "not a list")
            if self.choices:
                for item in items:
                    base = str(item).split("@")[0]
                    if str(item) not in self.choices and base not in self.choices:
                        raise self._fail(raw, f"{item!r} is not accepted")
            return list(items)
        if self.kind == "json":
            if isinstance(value, str):
                try:
                    return json.loads(value.replace("(", "[").replace(")", "]"))
                except ValueError:
                    raise self._fail(raw, "not valid JSON") from None
            return value
        # str
        text = value if isinstance(value, str) else str(value)
        if self.choices and text not in self.choices:
            raise self._fail(raw, did_you_mean(text, self.choices).lstrip("; ") or "")
        return text

    def to_string(self, value: Any) -> str:
        """The string form written to hyperparameters.json."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple)):
            if self.choices:
                return ",".join(map(str, value))
            return json.dumps(list(value))
        if isinstance(value, dict):
            return json.dumps(value)
        return str(value)


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
                f"{did_you_mean(name, self._by_name)}") from None

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
        "sagemaker_" are passed through untouched.
        """
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            if name.startswith("_") or name.startswith("sagemaker_"):
                parsed[name] = value
                continue
            hp = self.hyperparameter(name)
            if value is None:
                continue
            parsed[hp.name] = hp.parse(value)
        for hp in self.hyperparameters:
            if hp.name not in parsed:
                if hp.required:
                    raise HyperparameterError(
                        f"hyperparameter {hp.name!r} is required by {self.title}: {hp.help} "
                        f"(expected {hp.describe()})")
                if hp.default is not None:
                    parsed[hp.name] = hp.default
        if self.check is not None:
            self.check(parsed)
        return parsed

    def to_strings(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Validate, then render as hyperparameters.json strings (only the values the user set)."""
        self.validate(values)
        out = {}
        for name, value in values.items():
            if value is None:
                continue
            if name.startswith("_") or name.startswith("sagemaker_"):
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
