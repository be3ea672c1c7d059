"""Built-in algorithms, one module each, found through one registry.

Modules are imported on first lookup so that `import nbsage` stays fast; an algorithm module
imports its heavy libraries (xgboost, torch) inside `train`/`load`, never at module level.
"""
from __future__ import annotations

import importlib

from nbsage.algorithms.base import Algorithm
from nbsage.errors import ValidationError, did_you_mean

# name -> module under nbsage.algorithms that defines ALGORITHM
_MODULES = {
    "blazingtext": "blazingtext",
    "xgboost": "xgboost",
    "linear-learner": "linear_learner",
    "deepar": "deepar",
}
_ALIASES = {
    "linear_learner": "linear-learner",
    "linearlearner": "linear-learner",
    "ll": "linear-learner",
    "xgb": "xgboost",
    "forecasting-deepar": "deepar",
}


def names() -> list[str]:
    """The registered algorithm names."""
    return sorted(_MODULES)


def canonical_name(name: str) -> str | None:
    key = name.strip().lower()
    # an ECR-style image URI ".../sagemaker-xgboost:1.7-1" or "xgboost:1.7-1" names its algorithm
    key = key.rsplit("/", 1)[-1].split(":")[0].removeprefix("sagemaker-")
    key = _ALIASES.get(key, key)
    return key if key in _MODULES else None


def is_builtin(name: str) -> bool:
    return canonical_name(name) is not None


def get(name: str) -> Algorithm:
    """The declaration of a built-in algorithm, by name, alias or image name."""
    key = canonical_name(name)
    if key is None:
        raise ValidationError(
            f"{name!r} is not a built-in algorithm; built-ins are {', '.join(names())}"
            f"{did_you_mean(name.lower(), list(_MODULES) + list(_ALIASES))}")
    module = importlib.import_module(f"nbsage.algorithms.{_MODULES[key]}")
    return module.ALGORITHM
