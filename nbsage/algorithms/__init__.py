"""Built-in algorithms, one package each, found through one registry.

Packages are imported on first lookup so that `import nbsage` stays fast. A package's `__init__`
imports only its declaration, which imports neither torch nor xgboost (its `train`/`load` import
those when called), so reading declarations is cheap. Each declaration names its own aliases
(`Algorithm.aliases`: the names SageMaker's images and SDK use, and short forms); the alias table
here is built from them the first time a name is not a canonical one.
"""
from __future__ import annotations

import importlib
from functools import cache

from nbsage.algorithms.base import Algorithm
from nbsage.errors import ValidationError, did_you_mean

# canonical name -> package under nbsage.algorithms that defines ALGORITHM
_MODULES = {
    "blazingtext": "blazingtext",
    "xgboost": "xgboost",
    "linear-learner": "linear_learner",
    "deepar": "deepar",
    "seq2seq": "seq2seq",
    "object2vec": "object2vec",
    "object-detection": "object_detection",
}


def names() -> list[str]:
    """The registered algorithm names."""
    return sorted(_MODULES)


def _declaration(name: str) -> Algorithm:
    return importlib.import_module(f"nbsage.algorithms.{_MODULES[name]}").ALGORITHM


@cache
def aliases() -> dict[str, str]:
    """{alias: canonical name}, from every declaration's `aliases`."""
    table: dict[str, str] = {}
    for name in _MODULES:
        for alias in _declaration(name).aliases:
            key = alias.strip().lower()
            if key in _MODULES or table.get(key, name) != name:
                raise ValidationError(f"alias {alias!r} of {name!r} is already the name or an alias of "
                                      f"{table.get(key, key)!r}")
            table[key] = name
    return table


def _image_key(name: str) -> str:
    # an ECR-style image URI ".../sagemaker-xgboost:1.7-1" or "forecasting-deepar:1" names its algorithm
    return name.strip().lower().rsplit("/", 1)[-1].split(":")[0].removeprefix("sagemaker-")


def canonical_name(name: str) -> str | None:
    """The registered name of an algorithm given by name, alias or image URI; None if it is none of them."""
    key = _image_key(name)
    if key in _MODULES:
        return key
    return aliases().get(key)


def is_builtin(name: str) -> bool:
    return canonical_name(name) is not None


def get(name: str) -> Algorithm:
    """The declaration of a built-in algorithm, by name, alias or image name."""
    key = canonical_name(name)
    if key is None:
        raise ValidationError(
            f"{name!r} is not a built-in algorithm; built-ins are {', '.join(names())}"
            f"{did_you_mean(name.lower(), list(_MODULES) + list(aliases()))}")
    return _declaration(key)
