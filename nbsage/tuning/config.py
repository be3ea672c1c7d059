"""HyperParameterTuningJobConfig, checked as SageMaker checks it, before anything is recorded.

Every rule raises a ValidationError (HyperparameterError where one hyperparameter is at fault) that
names the parameter and says what is accepted. For a built-in algorithm the ranges are checked
against its declaration (kind, declared range or choices), and the objective must be one of the
metrics it declares (did-you-mean); a script must have a MetricDefinition for it.
"""
from __future__ import annotations

import math
import re

from nbsage.errors import HyperparameterError, ValidationError, did_you_mean
from nbsage.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter, ParameterRange

STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
EARLY_STOPPING_TYPES = ("Off", "Auto")
WARM_START_TYPES = ("IdenticalDataAndAlgorithm", "TransferLearning")

# DG automatic-model-tuning-limits.md
MAX_TUNABLE = 30
MAX_CATEGORICAL_VALUES = 30
MAX_HYPERPARAMETERS = 100
MAX_METRIC_DEFINITIONS = 20
MAX_PARALLEL_JOBS = 100
MAX_JOBS = 750
MAX_JOBS_RANDOM = 10000
MAX_PARENTS = 5
MAX_RESOURCE_LIMIT = 20000
EPOCH_NAMES = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs", "num_round")
TUNING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")

RANGE_KEYS = {"Continuous": "ContinuousParameterRanges", "Integer": "IntegerParameterRanges",
              "Categorical": "CategoricalParameterRanges"}


def _one_of(field: str, value, accepted) -> None:
    if value not in accepted:
        raise ValidationError(f"{field} {value!r} is not valid; use one of {', '.join(accepted)}"
                              f"{did_you_mean(str(value), accepted)}")


def check_name(name: str) -> str:
    if not TUNING_JOB_NAME.match(name or ""):
        raise ValidationError(f"tuning job name {name!r} is not valid: at most 32 letters, digits and hyphens, "
                              "starting and ending with a letter or digit")
    return name


def check_limits(strategy: str, objective_type: str, early_stopping_type: str, max_jobs: int,
                 max_parallel_jobs: int) -> None:
    _one_of("strategy", strategy, STRATEGIES)
    _one_of("objective_type", objective_type, OBJECTIVE_TYPES)
    _one_of("early_stopping_type", early_stopping_type, EARLY_STOPPING_TYPES)
    for field, value in (("max_jobs", max_jobs), ("max_parallel_jobs", max_parallel_jobs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValidationError(f"{field} must be a whole number of at least 1, got {value!r}")
    cap = MAX_JOBS_RANDOM if strategy == "Random" else MAX_JOBS
    if max_jobs > cap:
        raise ValidationError(f"max_jobs ({max_jobs}) is above SageMaker's limit of {cap} training jobs per "
                              f"tuning job for the {strategy} strategy")
    if max_parallel_jobs > MAX_PARALLEL_JOBS:
        raise ValidationError(f"max_parallel_jobs ({max_parallel_jobs}) is above SageMaker's limit of "
                              f"{MAX_PARALLEL_JOBS} concurrent training jobs")
    if max_parallel_jobs > max_jobs:
        raise ValidationError(f"max_parallel_jobs ({max_parallel_jobs}) cannot be greater than max_jobs "
                              f"({max_jobs}): ResourceLimits.MaxParallelTrainingJobs must not exceed "
                              "MaxNumberOfTrainingJobs")
    if strategy == "Hyperband" and early_stopping_type != "Off":
        raise ValidationError("early_stopping_type must be 'Off' with the Hyperband strategy: Hyperband stops "
                              "trials itself (TrainingJobEarlyStoppingType Off)")


def check_ranges(ranges: dict, algorithm, static: dict) -> None:
    """Each range: a ParameterRange of a tunable declared hyperparameter, inside its declared values,
    not also given as a fixed value."""
    if not isinstance(ranges, dict) or not ranges:
        raise ValidationError("hyperparameter_ranges must be a dict of at least one {name: ContinuousParameter | "
                              "IntegerParameter | CategoricalParameter}")
    if len(ranges) > MAX_TUNABLE:
        raise ValidationError(f"{len(ranges)} hyperparameters to tune; SageMaker tunes at most {MAX_TUNABLE}")
    for name, rng in ranges.items():
        if not isinstance(rng, ParameterRange):
            raise HyperparameterError(f"hyperparameter {name!r}: {rng!r} is not a range; use ContinuousParameter, "
                                      "IntegerParameter or CategoricalParameter (fixed values go on the estimator)",
                                      name=name)
        _check_range_shape(name, rng)
        if algorithm is not None:
            hp = algorithm.hyperparameter(name)  # unknown names fail here, with did-you-mean
            tunable = algorithm.tunable_hyperparameters
            if tunable and hp.name not in tunable:
                raise HyperparameterError(
                    f"hyperparameter {name!r} of {algorithm.title} is not tunable: the tuning job has untunable "
                    f"hyperparameters [{name}]; {algorithm.title} tunes {', '.join(tunable)} (give {name!r} a fixed "
                    "value on the estimator instead)", name=name)
            if hp.name in static or name in static:
                raise HyperparameterError(
                    f"hyperparameter {name!r} is given both as a fixed value ({static.get(hp.name, static.get(name))!r}) "
                    "on the estimator and as a range to tune; a hyperparameter is either static or tunable: "
                    "remove one of them", name=name)
            _check_against_declaration(name, rng, hp, algorithm)
        elif name in static:
            raise HyperparameterError(
                f"hyperparameter {name!r} is given both as a fixed value ({static[name]!r}) on the estimator and "
                "as a range to tune; a hyperparameter is either static or tunable: remove one of them", name=name)
    if len(ranges) + len(static) + 1 > MAX_HYPERPARAMETERS:
        raise ValidationError(f"{len(ranges) + len(static)} hyperparameters in all; SageMaker allows at most "
                              f"{MAX_HYPERPARAMETERS - 1} (plus _tuning_objective_metric)")


def _check_range_shape(name: str, rng: ParameterRange) -> None:
    if isinstance(rng, CategoricalParameter):
        if not rng.values:
            raise HyperparameterError(f"hyperparameter {name!r}: CategoricalParameter has no values; give at least one",
                                      name=name)
        if len(rng.values) > MAX_CATEGORICAL_VALUES:
            raise HyperparameterError(f"hyperparameter {name!r}: {len(rng.values)} categorical values; SageMaker "
                                      f"allows at most {MAX_CATEGORICAL_VALUES}", name=name)
        return
    try:
        low, high = float(rng.min_value), float(rng.max_value)
    except (TypeError, ValueError):
        raise HyperparameterError(f"hyperparameter {name!r}: range ends {rng.min_value!r}, {rng.max_value!r} are not "
                                  "numbers", name=name) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise HyperparameterError(f"hyperparameter {name!r}: range ends must be finite numbers", name=name)
    if isinstance(rng, IntegerParameter) and (low != int(low) or high != int(high)):
        raise HyperparameterError(f"hyperparameter {name!r}: IntegerParameter ends must be whole numbers, got "
                                  f"{rng.min_value!r}, {rng.max_value!r}", name=name)
    if low > high:
        raise HyperparameterError(f"hyperparameter {name!r}: MinValue ({rng.min_value}) is greater than MaxValue "
                                  f"({rng.max_value})", name=name)
    if rng.scaling_type == "Logarithmic" and low <= 0:
        raise HyperparameterError(f"hyperparameter {name!r}: Logarithmic scaling needs a range of values greater "
                                  f"than 0, and MinValue is {rng.min_value}", name=name)
    if rng.scaling_type == "ReverseLogarithmic":
        if not isinstance(rng, ContinuousParameter):
            raise HyperparameterError(f"hyperparameter {name!r}: ReverseLogarithmic scaling applies to continuous "
                                      "ranges only", name=name)
        if not (0 <= low and high < 1):
            raise HyperparameterError(f"hyperparameter {name!r}: ReverseLogarithmic scaling needs a range within "
                                      f"0 <= x < 1, and the range is [{rng.min_value}, {rng.max_value}]", name=name)


def _check_against_declaration(name: str, rng: ParameterRange, hp, algorithm) -> None:
    """The range fits the hyperparameter's declared kind and values."""
    kind = str(hp.kind)
    if isinstance(rng, CategoricalParameter):
        for value in rng.values:
            try:
                hp.parse(value)
            except HyperparameterError as e:
                raise HyperparameterError(f"hyperparameter {name!r}: categorical value {value!r} is not accepted by "
                                          f"{algorithm.title}; expected {hp.describe()} ({e})", name=name) from None
        return
    if kind not in ("int", "float"):
        raise HyperparameterError(f"hyperparameter {name!r} of {algorithm.title} is {hp.describe()}: tune it with a "
                                  "CategoricalParameter, not a numeric range", name=name)
    if kind == "int" and isinstance(rng, ContinuousParameter):
        raise HyperparameterError(f"hyperparameter {name!r} of {algorithm.title} is an integer: use IntegerParameter, "
                                  "not ContinuousParameter", name=name)
    declared = hp.range
    if declared is not None:
        outside = [v for v in (rng.min_value, rng.max_value) if float(v) not in declared]
        if outside:
            raise HyperparameterError(
                f"hyperparameter {name!r}: the range [{rng.min_value}, {rng.max_value}] goes outside the values "
                f"{algorithm.title} accepts ({declared}); {outside[0]!r} is not valid", name=name)


def check_objective(objective_metric_name: str, algorithm, metric_definitions: list[dict]) -> None:
    """The objective is a metric the trials emit: one the algorithm declares, or one with a MetricDefinition."""
    if not objective_metric_name or not isinstance(objective_metric_name, str):
        raise ValidationError("objective_metric_name is required: the metric to optimise, e.g. 'validation:auc'")
    if len(metric_definitions) > MAX_METRIC_DEFINITIONS:
        raise ValidationError(f"{len(metric_definitions)} metric definitions; SageMaker allows at most "
                              f"{MAX_METRIC_DEFINITIONS}")
    defined = [d.get("Name") for d in metric_definitions]
    if objective_metric_name in defined:
        return
    if algorithm is not None:
        declared = list(algorithm.objective_metrics) or [m.name for m in algorithm.metrics]
        if objective_metric_name in declared:
            return
        if objective_metric_name in [m.name for m in algorithm.metrics]:
            raise ValidationError(
                f"objective metric {objective_metric_name!r} is emitted by {algorithm.title} but is not one a tuning "
                f"job can optimise; its objective metrics are {', '.join(declared[:12])}"
                + (", ..." if len(declared) > 12 else "") + did_you_mean(objective_metric_name, declared))
        raise ValidationError(
            f"objective metric {objective_metric_name!r} is not a metric {algorithm.title} emits"
            f"{did_you_mean(objective_metric_name, declared)}; its metrics are {', '.join(declared[:12])}"
            + (", ..." if len(declared) > 12 else ""))
    raise ValidationError(
        "A metric is required for this hyperparameter tuning job objective. Provide a metric in the metric "
        f"definitions: {objective_metric_name!r} has no MetricDefinition (give metric_definitions=[{{'Name': "
        f"{objective_metric_name!r}, 'Regex': '...'}}] on the tuner or the estimator; the regex's first group "
        "is the value)"
        + (f"; defined are {', '.join(defined)}" if defined else ""))


def objective_direction(objective_metric_name: str, algorithm) -> str | None:
    """The declared direction of a built-in's metric (the tuner's default objective_type), if declared."""
    if algorithm is None:
        return None
    for m in algorithm.metrics:
        if m.name == objective_metric_name:
            return m.direction
    return None


def grid_size(ranges: dict, strategy: str) -> int | None:
    """Grid: the number of combinations (categorical and integer ranges only, as the grid is all of them)."""
    if strategy != "Grid":
        return None
    size = 1
    for name, rng in ranges.items():
        if isinstance(rng, CategoricalParameter):
            size *= len(rng.values)
        elif isinstance(rng, IntegerParameter):
            size *= int(rng.max_value) - int(rng.min_value) + 1
        else:
            raise HyperparameterError(f"hyperparameter {name!r}: the Grid strategy takes categorical (and integer) "
                                      "ranges only; use CategoricalParameter, or another strategy", name=name)
    return size


def hyperband_resources(strategy_config: dict | None, static: dict) -> tuple[int, int]:
    """(MinResource, MaxResource) of Hyperband: from StrategyConfig, else the static epochs-like hyperparameter."""
    config = ((strategy_config or {}).get("HyperbandStrategyConfig") or {})
    low = int(config.get("MinResource") or 1)
    high = config.get("MaxResource")
    if high is None:
        for name in EPOCH_NAMES:
            if name in static:
                high = int(float(str(static[name]).strip('"')))
                break
    if high is None:
        raise ValidationError("the Hyperband strategy needs MaxResource: give strategy_config={'HyperbandStrategyConfig':"
                              " {'MaxResource': N}} or a static hyperparameter named one of " + ", ".join(EPOCH_NAMES))
    high = int(high)
    if not (1 <= low <= high <= MAX_RESOURCE_LIMIT):
        raise ValidationError(f"Hyperband MinResource ({low}) and MaxResource ({high}) must satisfy "
                              f"1 <= MinResource <= MaxResource <= {MAX_RESOURCE_LIMIT}")
    return low, high


def parameter_ranges(ranges: dict) -> dict:
    """ParameterRanges as the API takes them (values as strings)."""
    out = {key: [] for key in RANGE_KEYS.values()}
    for name, rng in ranges.items():
        out[RANGE_KEYS[rng.kind]].append(rng.as_tuning_range(name))
    return out


def ranges_of(parameter_ranges_: dict) -> dict[str, ParameterRange]:
    """The range objects of stored ParameterRanges, in their order."""
    from nbsage.parameter import from_tuning_range
    out = {}
    for kind, key in RANGE_KEYS.items():
        for item in parameter_ranges_.get(key) or []:
            out[item["Name"]] = from_tuning_range(kind, item)
    return out


def sample_values(ranges: dict) -> dict:
    """One value per range (its low end, first category): to run the algorithm's own checks on a
    trial's hyperparameters before any trial starts."""
    out = {}
    for name, rng in ranges.items():
        out[name] = rng.values[0] if isinstance(rng, CategoricalParameter) else rng.cast_to_type(rng.min_value)
    return out
