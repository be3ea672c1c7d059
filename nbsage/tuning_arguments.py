"""The tuning faces' grammar (`%%sm_tune` and `nbsage tune`), on top of nbsage.arguments' training one.

The hyperparameters are YAML (a cell body, a --hyperparameters file, --hp pairs) where a value may
be a range in a plain syntax:

    max_depth: int(3, 10)            # IntegerParameter(3, 10)
    eta: float(0.01, 0.3, log)       # ContinuousParameter(0.01, 0.3, "Logarithmic")
    booster: choice(gbtree, dart)    # CategoricalParameter(["gbtree", "dart"])
    num_round: 50                    # a fixed (static) value

Scaling words: auto, linear, log, reverse_log. Any other value is a fixed hyperparameter.
"""
from __future__ import annotations

import re

from nbsage import arguments
from nbsage.arguments import arg
from nbsage.errors import HyperparameterError

TUNE = [
    arg("--objective", metavar="METRIC", help="the objective metric, e.g. validation:auc (required)"),
    arg("--objective-type", choices=["Maximize", "Minimize"],
        help="Maximize or Minimize (default: the metric's declared direction, else Maximize)"),
    arg("--strategy", default="Bayesian", choices=["Bayesian", "Random", "Hyperband", "Grid"],
        help="search strategy (default: Bayesian, run as Optuna's TPE)"),
    arg("--max-jobs", type=int, metavar="N", help="training jobs in all (default: 1; Grid: every combination)"),
    arg("--max-parallel", type=int, default=1, metavar="N", help="training jobs at once (default: 1)"),
    arg("--early-stopping", default="Off", choices=["Off", "Auto"],
        help="Auto stops a trial worse than the median of earlier trials at the same round"),
    arg("--seed", type=int, metavar="N", help="the search's random seed"),
]

_RANGE = re.compile(r"^\s*(int|integer|float|continuous|choice|categorical)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
SCALINGS = {"auto": "Auto", "linear": "Linear", "log": "Logarithmic", "logarithmic": "Logarithmic",
            "reverse_log": "ReverseLogarithmic", "reverselogarithmic": "ReverseLogarithmic"}


def parse_range(name: str, value):
    """A range object for `int(a, b[, scaling])`, `float(a, b[, scaling])`, `choice(x, y, ...)`; None for a fixed value."""
    from nbsage.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter
    if not isinstance(value, str):
        return None
    match = _RANGE.match(value)
    if not match:
        return None
    kind, inside = match.group(1).lower(), match.group(2)
    parts = [p.strip().strip("'\"") for p in inside.split(",")] if inside.strip() else []
    if kind in ("choice", "categorical"):
        if not parts:
            raise HyperparameterError(f"hyperparameter {name!r}: choice() has no values; write choice(a, b, ...)",
                                      name=name)
        return CategoricalParameter(parts)
    if len(parts) not in (2, 3):
        raise HyperparameterError(f"hyperparameter {name!r}: {value.strip()!r} needs a low and a high end, and "
                                  f"optionally a scaling: {kind}(low, high[, {'|'.join(SCALINGS)}])", name=name)
    scaling = "Auto"
    if len(parts) == 3:
        scaling = SCALINGS.get(parts[2].lower().replace("-", "_"))
        if scaling is None:
            raise HyperparameterError(f"hyperparameter {name!r}: scaling {parts[2]!r} is not one of "
                                      f"{', '.join(SCALINGS)}", name=name)
    cls = IntegerParameter if kind in ("int", "integer") else ContinuousParameter
    try:
        low, high = (int(p) if cls is IntegerParameter else float(p) for p in parts[:2])
    except ValueError:
        raise HyperparameterError(f"hyperparameter {name!r}: the ends of {value.strip()!r} are not "
                                  f"{'whole numbers' if cls is IntegerParameter else 'numbers'}", name=name) from None
    return cls(low, high, scaling)


def split_ranges(values: dict) -> tuple[dict, dict]:
    """(fixed hyperparameters, ranges) of a hyperparameter mapping that may hold range expressions."""
    fixed, ranges = {}, {}
    for name, value in values.items():
        rng = parse_range(name, value)
        if rng is None:
            fixed[name] = value
        else:
            ranges[name] = rng
    return fixed, ranges


def tuning_call(args, *, body: str | None = None, namespace: dict | None = None, instance_type: str = "local",
                backend: str = "local", place_defaults: dict | None = None):
    """(Estimator keyword arguments, fit inputs, HyperparameterTuner keyword arguments) from parsed
    TRAIN + TUNE + place_arguments() values."""
    from nbsage.errors import ValidationError
    if not args.objective:
        raise ValidationError("--objective is required: the metric to optimise, e.g. --objective validation:auc")
    estimator, inputs = arguments.training_call(args, body=body, namespace=namespace, instance_type=instance_type,
                                                backend=backend, place_defaults=place_defaults)
    fixed, ranges = split_ranges(estimator.pop("hyperparameters"))
    if not ranges:
        raise ValidationError("no hyperparameter to tune: give at least one range, e.g. 'max_depth: int(3, 10)', "
                              "'eta: float(0.01, 0.3, log)' or 'booster: choice(gbtree, dart)'")
    estimator["hyperparameters"] = fixed
    tuner = dict(objective_metric_name=args.objective, hyperparameter_ranges=ranges, strategy=args.strategy,
                 objective_type=args.objective_type, max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel,
                 early_stopping_type=args.early_stopping, random_seed=args.seed)
    return estimator, inputs, tuner
