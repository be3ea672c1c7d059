"""Hyperparameter ranges for tuning, shaped like the SDK v2's `sagemaker.parameter`.

`ContinuousParameter(0.01, 0.3, scaling_type="Logarithmic")`, `IntegerParameter(3, 10)`,
`CategoricalParameter(["gbtree", "dart"])`. A range renders itself as the API's ParameterRanges item
(`as_tuning_range`, values as strings, as SageMaker sends them); nbsage.tuning checks it against the
algorithm's declaration and turns it into an Optuna distribution.
"""
from __future__ import annotations

from nbsage.errors import ValidationError

SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")


class ScalingType:
    """How a numeric range is searched: the API's ScalingType values."""

    AUTO = "Auto"
    LINEAR = "Linear"
    LOGARITHMIC = "Logarithmic"
    REVERSE_LOGARITHMIC = "ReverseLogarithmic"


class ParameterRange:
    """A numeric range [min_value, max_value] searched on `scaling_type`."""

    __name__ = "Parameter"
    kind = ""  # "Continuous" | "Integer" | "Categorical": the ParameterRanges key's prefix

    def __init__(self, min_value, max_value, scaling_type: str = "Auto"):
        if scaling_type not in SCALING_TYPES:
            raise ValidationError(f"scaling_type {scaling_type!r} is not valid; use one of {', '.join(SCALING_TYPES)}")
        self.min_value, self.max_value, self.scaling_type = min_value, max_value, scaling_type

    @classmethod
    def cast_to_type(cls, value):
        return float(value)

    def is_valid(self, value) -> bool:
        return self.min_value <= value <= self.max_value

    def as_tuning_range(self, name: str) -> dict:
        """The ParameterRanges item (ContinuousParameterRanges / IntegerParameterRanges)."""
        return {"Name": name, "MinValue": str(self.cast_to_type(self.min_value)),
                "MaxValue": str(self.cast_to_type(self.max_value)), "ScalingType": self.scaling_type}

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.min_value!r}, {self.max_value!r}, scaling_type={self.scaling_type!r})"


class ContinuousParameter(ParameterRange):
    """A range of real numbers."""

    __name__ = "Continuous"
    kind = "Continuous"


class IntegerParameter(ParameterRange):
    """A range of integers (both ends included)."""

    __name__ = "Integer"
    kind = "Integer"

    @classmethod
    def cast_to_type(cls, value):
        return int(value)


class CategoricalParameter(ParameterRange):
    """A set of values, tried as given (sent as strings)."""

    __name__ = "Categorical"
    kind = "Categorical"

    def __init__(self, values):
        if isinstance(values, (str, int, float, bool)):
            values = [values]
        self.values = [v if isinstance(v, str) else _text(v) for v in values]
        self.scaling_type = None

    @classmethod
    def cast_to_type(cls, value):
        return str(value)

    def is_valid(self, value) -> bool:
        return _text(value) in self.values

    def as_tuning_range(self, name: str) -> dict:
        return {"Name": name, "Values": list(self.values)}

    def as_json_range(self, name: str) -> dict:
        """Values JSON-encoded, as the SDK sends them for framework (script-mode) estimators."""
        import json
        return {"Name": name, "Values": [json.dumps(v) for v in self.values]}

    def __repr__(self) -> str:
        return f"CategoricalParameter({self.values!r})"


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def from_tuning_range(kind: str, item: dict) -> ParameterRange:
    """The range object of one stored ParameterRanges item (`kind` Continuous/Integer/Categorical)."""
    if kind == "Categorical":
        return CategoricalParameter(item["Values"])
    cls = ContinuousParameter if kind == "Continuous" else IntegerParameter
    return cls(cls.cast_to_type(float(item["MinValue"])), cls.cast_to_type(float(item["MaxValue"])),
               item.get("ScalingType", "Auto"))
