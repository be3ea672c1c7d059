"""Hyperparameters as an algorithm declares them: a name, a kind, a range or choices, a default.

Values arrive as strings (SageMaker's hyperparameters.json), as Python values (the API), or as YAML
scalars (the magic); `Hyperparameter.parse` turns any of them into one typed value or raises a
`HyperparameterError` that names the parameter (in its message and as `.hyperparameter`) and what it
accepts.

What differs between an integer, a flag and a list lives in one `Kind` object each, as
scikit-learn's `_param_validation` constraint objects own `is_satisfied_by` and `__str__`: the
kind parses a value, says in words what it accepts, writes the hyperparameters.json string, builds
the ipywidgets control of the form, and generates values it must reject (for the contract tests).
A declaration names its kind by word (`Hyperparameter("max_depth", "int", ...)`) or passes the
object; either way `hp.kind` is the object and `Hyperparameter` only delegates to it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from nbsage.errors import HyperparameterError, did_you_mean

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

    def outside(self) -> list[float]:
        """Numbers just outside the interval (none when it is unbounded both ways)."""
        out = []
        if self.low is not None:
            out.append(self.low if not self.low_inclusive else self.low - 1)
        if self.high is not None:
            out.append(self.high if not self.high_inclusive else self.high + 1)
        return out


def closed(low, high) -> Range:
    return Range(low, high)


def at_least(low) -> Range:
    return Range(low, None)


def greater_than(low) -> Range:
    return Range(low, None, low_inclusive=False)


def open_interval(low, high) -> Range:
    return Range(low, high, False, False)


# ---- kinds -----------------------------------------------------------------------------------------
class Kind:
    """What one type of hyperparameter accepts; each method takes the declaration for its range/choices.

    `parse` does what every kind shares (strip, SDK quotes, `auto`, the extra words) and hands the
    rest to `_parse`, the part that differs.
    """

    name = "str"

    def __repr__(self) -> str:
        return f"<hyperparameter kind {self.name}>"

    def __str__(self) -> str:
        return self.name  # the word a declaration uses

    def __reduce__(self):  # one object per kind, also in a process that unpickles a declaration
        return kind, (self.name,)

    # -- parse -----------------------------------------------------------------------------------
    def parse(self, hp: "Hyperparameter", value: Any) -> Any:
        """Typed value from a string, Python or YAML value; raises HyperparameterError."""
        raw = value
        if isinstance(value, str):
            value = value.strip()
            # SDK script mode JSON-encodes strings: '"adam"' -> 'adam'
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if value.lower() == AUTO and hp.allow_auto:
                return AUTO
            if value in hp.extra_values:
                return value
        elif value in hp.extra_values:
            return value
        return self._parse(hp, value, raw)

    def _parse(self, hp, value, raw):
        text = value if isinstance(value, str) else str(value)
        if hp.choices and text not in hp.choices:
            raise hp.invalid(raw, did_you_mean(text, hp.choices).lstrip("; ") or "")
        return text

    # -- describe ---------------------------------------------------------------------------------
    def describe(self, hp: "Hyperparameter") -> str:
        """The accepted values in words, for errors, help and forms."""
        parts = [self._accepted(hp)]
        words = ((AUTO,) if hp.allow_auto else ()) + tuple(hp.extra_values)
        if words:
            parts.append("or " + " or ".join(repr(w) for w in words))
        return " ".join(parts)

    def _accepted(self, hp) -> str:
        return "one of " + ", ".join(map(str, hp.choices)) if hp.choices else self._words(hp)

    def _words(self, hp) -> str:
        return "a string"

    # -- to_string ----------------------------------------------------------------------------------
    def to_string(self, hp: "Hyperparameter", value: Any) -> str:
        """The string form written to hyperparameters.json."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple, dict)):
            return json.dumps(list(value) if isinstance(value, tuple) else value)
        return str(value)

    # -- widget ---------------------------------------------------------------------------------------
    def widget(self, hp: "Hyperparameter", **common):
        """The ipywidgets control for the form (cf. ipywidgets' widget_from_single_value).

        `common` is the form's styling (description, tooltip, style, layout).
        """
        if hp.choices:
            import ipywidgets as widgets
            choices = list(hp.choices) + ([AUTO] if hp.allow_auto and AUTO not in hp.choices else [])
            return widgets.Dropdown(options=_unset(hp) + [(str(c), c) for c in choices],
                                    value=hp.default if hp.default in choices else None, **common)
        return _text(hp, **common)

    # -- invalid values ---------------------------------------------------------------------------
    def invalid_values(self, hp: "Hyperparameter") -> list:
        """A few values `parse` must reject (cf. scikit-learn's generate_invalid_param_val)."""
        return ["not-one-of-the-choices"] if hp.choices else []


class Integer(Kind):
    name = "int"
    whole = True

    def _parse(self, hp, value, raw):
        if isinstance(value, bool):
            raise hp.invalid(raw)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise hp.invalid(raw) from None
        if math.isnan(number) or math.isinf(number):  # inf would pass an open range, and xgboost fails on it
            raise hp.invalid(raw, "not a finite number")
        if self.whole:
            if number != int(number):
                raise hp.invalid(raw, "not a whole number")
            number = int(number)
        if hp.range is not None and number not in hp.range:
            raise hp.invalid(raw, "out of range")
        if hp.choices and number not in hp.choices:
            raise hp.invalid(raw)
        return number

    def _words(self, hp) -> str:
        return ("an integer" if self.whole else "a number") + (f" in {hp.range}" if hp.range else "")

    def widget(self, hp, **common):
        numeric_default = isinstance(hp.default, (int, float)) and not isinstance(hp.default, bool)
        if hp.choices or hp.allow_auto or hp.extra_values or not numeric_default:
            return super().widget(hp, **common)
        import ipywidgets as widgets
        return (widgets.IntText if self.whole else widgets.FloatText)(value=hp.default, **common)

    def invalid_values(self, hp) -> list:
        values: list = ["not-a-number", True, "nan", "inf", "-inf"]
        if self.whole:
            values.append(1.5)
        if hp.range is not None:
            values += [int(v) if self.whole and float(v).is_integer() else v for v in hp.range.outside()]
        if hp.choices:
            values.append(max(hp.choices) + 1)
        return [v for v in values if v not in hp.extra_values]


class Number(Integer):
    name = "float"
    whole = False


class Boolean(Kind):
    name = "bool"

    def _parse(self, hp, value, raw):
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise hp.invalid(raw)

    def _words(self, hp) -> str:
        return "true or false"

    def widget(self, hp, **common):
        if hp.choices:
            return super().widget(hp, **common)
        import ipywidgets as widgets
        if isinstance(hp.default, bool) and not hp.allow_auto:
            return widgets.Checkbox(value=hp.default, indent=True, **common)
        choices = ([(AUTO, AUTO)] if hp.allow_auto else []) + [("true", True), ("false", False)]
        value = hp.default if hp.default in [v for _, v in choices] else None
        return widgets.Dropdown(options=_unset(hp) + choices, value=value, **common)

    def invalid_values(self, hp) -> list:
        return ["maybe", 2]


class List(Kind):
    """A JSON list, or a comma list of strings when `choices` is set (e.g. XGBoost's eval_metric).

    With choices an item may carry a parameter after '@' (error@0.7): its part before '@' must be a choice.
    """

    name = "list"

    def _parse(self, hp, value, raw):
        items = value
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("[") or text.startswith("("):
                try:
                    items = json.loads(text.replace("(", "[").replace(")", "]"))
                except ValueError:
                    raise hp.invalid(raw, "not a list") from None
            else:
                items = [s.strip() for s in text.split(",") if s.strip()]
        if not isinstance(items, (list, tuple)):
            raise hp.invalid(raw, "not a list")
        if hp.choices:
            for item in items:
                base = str(item).split("@")[0]
                if str(item) not in hp.choices and base not in hp.choices:
                    raise hp.invalid(raw, f"{item!r} is not accepted")
        return list(items)

    def _accepted(self, hp) -> str:
        return super()._accepted(hp) + (" (comma-separated)" if hp.choices else "")

    def _words(self, hp) -> str:
        return "a list"

    def to_string(self, hp, value) -> str:
        if isinstance(value, (list, tuple)) and hp.choices:
            return ",".join(map(str, value))
        return super().to_string(hp, value)

    def widget(self, hp, **common):
        return _text(hp, **common)  # several choices at once: typed, comma-separated

    def invalid_values(self, hp) -> list:
        return ["[1, 2", 5] + (["not-one-of-the-choices"] if hp.choices else [])


class Json(Kind):
    """Any JSON value, kept as parsed (e.g. interaction_constraints); ( ) are read as [ ]."""

    name = "json"

    def _parse(self, hp, value, raw):
        if isinstance(value, str):
            try:
                return json.loads(value.replace("(", "[").replace(")", "]"))
            except ValueError:
                raise hp.invalid(raw, "not valid JSON") from None
        return value

    def _words(self, hp) -> str:
        return "a JSON value"

    def invalid_values(self, hp) -> list:
        return ["[[0, 1]"]


STRING, INTEGER, NUMBER, BOOLEAN, LIST, JSON = Kind(), Integer(), Number(), Boolean(), List(), Json()
KINDS: dict[str, Kind] = {k.name: k for k in (STRING, INTEGER, NUMBER, BOOLEAN, LIST, JSON)}


def kind(name: str) -> Kind:
    """The kind a declaration names by word; ValueError naming the kinds there are."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"kind {name!r} is not one of {', '.join(KINDS)}{did_you_mean(name, KINDS)}") from None


def _unset(hp) -> list:
    """ "(not set)" leaves an optional parameter without a default to the algorithm."""
    return [("(not set)", None)] if hp.default is None and not hp.required else []


def _text(hp, **common):
    import ipywidgets as widgets
    text = "" if hp.default is None else hp.to_string(hp.default)
    return widgets.Text(value=text, placeholder=hp.describe(), continuous_update=True, **common)


# ---- the declaration ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: what it is, what it accepts, what it defaults to.

    kind is a `Kind` or its word: "int", "float", "bool", "str", "list" or "json".
    default None with required False means "not set" (the algorithm's own default applies);
    default "auto" means the value is resolved from the data at training time.
    """

    name: str
    kind: Kind
    help: str
    default: Any = None
    required: bool = False
    range: Range | None = None
    choices: tuple | None = None
    allow_auto: bool = False
    aliases: tuple[str, ...] = ()
    extra_values: tuple = ()  # non-numeric words a numeric parameter also takes, e.g. "balanced"
    advanced: bool = False  # forms fold these under "Advanced"

    def __post_init__(self):
        if isinstance(self.kind, str):
            try:
                object.__setattr__(self, "kind", kind(self.kind))
            except ValueError as e:
                raise ValueError(f"hyperparameter {self.name!r}: {e}") from None

    def parse(self, value: Any) -> Any:
        """Typed value from a string, Python or YAML value; raises HyperparameterError."""
        return self.kind.parse(self, value)

    def describe(self) -> str:
        """The accepted values in words, for errors, help and forms."""
        return self.kind.describe(self)

    def to_string(self, value: Any) -> str:
        """The string form written to hyperparameters.json."""
        return self.kind.to_string(self, value)

    def widget(self, **common):
        """The form's ipywidgets control for this hyperparameter (imports ipywidgets)."""
        return self.kind.widget(self, **common)

    def invalid_values(self) -> list:
        """Values this hyperparameter must reject: of the wrong kind, out of range, not a choice."""
        return self.kind.invalid_values(self)

    def invalid(self, value, why: str = "") -> HyperparameterError:
        """The error for a value this hyperparameter does not accept."""
        return HyperparameterError(
            f"hyperparameter {self.name!r} = {value!r} is not valid{': ' + why if why else ''}; "
            f"expected {self.describe()}", name=self.name)

    def missing(self, where: str = "") -> HyperparameterError:
        """The error for a required hyperparameter that was not given."""
        return HyperparameterError(
            f"hyperparameter {self.name!r} is required{where}: {self.help} (expected {self.describe()})",
            name=self.name)
