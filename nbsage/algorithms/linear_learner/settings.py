"""Resolve `auto` hyperparameters, and draw the settings of the models trained in parallel.

`auto` resolves to the values SageMaker's 2018 container configuration spelled out, to the
documented defaults (loss by predictor_type, optimizer adam, normalize_label for regression only,
unbias_* when use_bias), and for learning_rate to a per-optimizer value. The values are declared
once, in `declaration.py` (AUTO_VALUES, AUTO_OPTIMIZER, AUTO_LEARNING_RATE, DEFAULT_LOSS), beside
the help texts that quote them.

Model 0 always trains with exactly these settings. The other models' learning rate, L1, L2 and
scheduler settings are drawn log-uniformly around them: widely where the user left `auto`, closely
where the user gave a value, and never away from an explicit 0 (the user turned it off).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nbsage.algorithms.base import AUTO
from nbsage.algorithms.linear_learner.declaration import (
    AUTO_LEARNING_RATE,
    AUTO_OPTIMIZER,
    AUTO_VALUES,
    DEFAULT_LOSS,
    LEGACY_CRITERIA,
)

# parameters, optimizer state and gradients of all parallel models stay under this many bytes
PARAMETER_BUDGET_BYTES = 1 << 30


@dataclass
class Settings:
    """Every hyperparameter with `auto` resolved; `resolved` records what auto became and why."""

    predictor_type: str
    num_classes: int          # output columns: 1 for binary and regression
    loss: str
    optimizer: str
    learning_rate: float
    beta_1: float
    beta_2: float
    momentum: float
    bias_lr_mult: float
    bias_wd_mult: float
    wd: float
    l1: float
    use_lr_scheduler: bool
    lr_scheduler_step: int
    lr_scheduler_factor: float
    lr_scheduler_minimum_lr: float
    num_models: int
    num_calibration_samples: int
    normalize_data: bool
    unbias_data: bool
    normalize_label: bool
    unbias_label: bool
    use_bias: bool
    positive_example_weight_mult: float | str  # a number, "balanced" or "auto"
    criteria: str
    f_beta: float
    hps: dict
    resolved: dict = field(default_factory=dict)

    @property
    def outputs(self) -> int:
        return self.num_classes if self.predictor_type == "multiclass_classifier" else 1


def resolve(hps: dict) -> Settings:
    """Settings from validated hyperparameters (see `Algorithm.validate`)."""
    resolved: dict[str, tuple] = {}

    def pick(name, auto_value, why=""):
        value = hps.get(name, AUTO)
        if value == AUTO:
            resolved[name] = (auto_value, why)
            return auto_value
        return value

    predictor = hps["predictor_type"]
    loss = pick("loss", DEFAULT_LOSS[predictor], f"the default for {predictor}")
    optimizer = pick("optimizer", AUTO_OPTIMIZER)
    learning_rate = pick("learning_rate", AUTO_LEARNING_RATE[optimizer], f"for optimizer {optimizer}")
    values = {name: pick(name, value) for name, value in AUTO_VALUES.items()}
    regression = predictor == "regressor"
    use_bias = bool(hps.get("use_bias", True))
    normalize_data = pick("normalize_data", True, "features are always scaled")
    unbias_data = pick("unbias_data", use_bias, f"use_bias is {str(use_bias).lower()}")
    normalize_label = pick("normalize_label", regression, f"predictor_type is {predictor}")
    unbias_label = pick("unbias_label", regression and use_bias,
                        f"predictor_type is {predictor}, use_bias is {str(use_bias).lower()}")
    if not regression:
        normalize_label = unbias_label = False  # labels are classes: never shifted or scaled
    num_models = values["num_models"]
    if "_tuning_objective_metric" in hps and num_models != 1:
        resolved["num_models"] = (1, "a tuning job sets num_models to 1")
        num_models = 1
    criteria = hps.get("binary_classifier_model_selection_criteria", "accuracy")
    f_beta = float(hps.get("f_beta", 1.0))
    if criteria == "f1":
        f_beta = 1.0
    criteria = LEGACY_CRITERIA.get(criteria, criteria)
    return Settings(
        predictor_type=predictor,
        num_classes=int(hps.get("num_classes") or 1) if predictor == "multiclass_classifier" else 1,
        loss=loss, optimizer=optimizer, learning_rate=float(learning_rate),
        beta_1=float(values["beta_1"]), beta_2=float(values["beta_2"]),
        momentum=float(values["momentum"]), bias_lr_mult=float(values["bias_lr_mult"]),
        bias_wd_mult=float(values["bias_wd_mult"]), wd=float(values["wd"]), l1=float(values["l1"]),
        use_lr_scheduler=bool(hps.get("use_lr_scheduler", True)),
        lr_scheduler_step=int(values["lr_scheduler_step"]),
        lr_scheduler_factor=float(values["lr_scheduler_factor"]),
        lr_scheduler_minimum_lr=float(values["lr_scheduler_minimum_lr"]),
        num_models=int(num_models), num_calibration_samples=int(values["num_calibration_samples"]),
        normalize_data=bool(normalize_data), unbias_data=bool(unbias_data),
        normalize_label=bool(normalize_label), unbias_label=bool(unbias_label), use_bias=use_bias,
        positive_example_weight_mult=hps.get("positive_example_weight_mult", 1.0),
        criteria=criteria, f_beta=f_beta, hps=hps, resolved=resolved)


def fit_num_models(settings: Settings, feature_dim: int) -> str | None:
    """Lower an `auto` num_models whose parameters would not fit in memory; returns a log line."""
    per_model = feature_dim * settings.outputs * 8 * 5  # weights, best copy, gradient, 2 moments
    if settings.num_models * per_model <= PARAMETER_BUDGET_BYTES or "num_models" not in settings.resolved:
        return None
    fit = max(1, PARAMETER_BUDGET_BYTES // per_model)
    settings.num_models = int(fit)
    settings.resolved["num_models"] = (int(fit), f"{feature_dim} features x {settings.outputs} "
                                       "outputs per model; more models would not fit in memory")
    return f"num_models=auto lowered to {fit}: each model holds {feature_dim} x {settings.outputs} weights"


@dataclass
class ModelGrid:
    """Per-model settings, index 0 being the user's own."""

    learning_rate: np.ndarray
    wd: np.ndarray
    l1: np.ndarray
    lr_scheduler_step: np.ndarray
    lr_scheduler_factor: np.ndarray
    lr_scheduler_minimum_lr: np.ndarray
    positive_example_weight_mult: np.ndarray

    def describe(self, m: int, optimizer: str) -> dict:
        """The settings of model m, as the 'Best model found for hyperparameters' line prints them."""
        out = {"optimizer": optimizer, "learning_rate": _num(self.learning_rate[m]),
               "l1": _num(self.l1[m]), "wd": _num(self.wd[m]),
               "lr_scheduler_step": int(self.lr_scheduler_step[m]),
               "lr_scheduler_factor": _num(self.lr_scheduler_factor[m]),
               "lr_scheduler_minimum_lr": _num(self.lr_scheduler_minimum_lr[m])}
        return out


def _num(x) -> float:
    return float(f"{float(x):.6g}")


def draw_models(settings: Settings, positive_ratio: float, rng: np.random.Generator) -> ModelGrid:
    """Settings of the num_models parallel models.

    positive_ratio is negatives/positives in the training labels (binary), the weight that
    `balanced` gives positives.
    """
    m = settings.num_models
    auto = settings.resolved

    def spread(name, base, wide, close, zero_share=0.0, zero_base_range=None):
        """Model 0 gets base; the others base * 10**U(-s, s), or a draw from zero_base_range."""
        out = np.full(m, float(base))
        if m == 1:
            return out
        s = wide if name in auto else close
        if base == 0:
            if name not in auto or zero_base_range is None:
                return out  # an explicit 0 turns the term off for every model
            lo, hi = zero_base_range
            draws = 10.0 ** rng.uniform(lo, hi, m - 1)
            draws[rng.random(m - 1) < zero_share] = 0.0
            out[1:] = draws
        else:
            out[1:] = base * 10.0 ** rng.uniform(-s, s, m - 1)
        return out

    lr = spread("learning_rate", settings.learning_rate, 1.0, 0.5)
    wd = spread("wd", settings.wd, 1.0, 0.5, zero_share=0.4, zero_base_range=(-6, -2))
    l1 = spread("l1", settings.l1, 1.0, 0.5, zero_share=0.6, zero_base_range=(-6, -3))
    step = np.maximum(1, np.round(spread("lr_scheduler_step", settings.lr_scheduler_step, 0.5, 0.0)))
    decay = spread("lr_scheduler_factor", 1.0 - settings.lr_scheduler_factor, 0.5, 0.0)
    factor = np.clip(1.0 - decay, 1e-3, 1.0 - 1e-9)
    min_lr = spread("lr_scheduler_minimum_lr", settings.lr_scheduler_minimum_lr, 0.5, 0.0)
    pw = settings.positive_example_weight_mult
    if pw == "balanced":
        pos = np.full(m, positive_ratio)
    elif pw == AUTO:
        # search between unweighted and balanced (and a little beyond); model 0 is balanced
        lo, hi = sorted((0.0, float(np.log10(positive_ratio))))
        pos = 10.0 ** rng.uniform(lo - 0.5, hi + 0.5, m)
        pos[0] = positive_ratio
        if m > 1:
            pos[1] = 1.0
    else:
        pos = np.full(m, float(pw))
    return ModelGrid(lr, wd, l1, step, factor, min_lr, pos)
