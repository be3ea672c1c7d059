"""The xgboost library, imported without scikit-learn in a job's or model server's own process.

xgboost imports scikit-learn (and pandas through it) only for its XGBClassifier wrappers, which
training and serving never use: on this project's machines that is 80% of `import xgboost`
(about 1 s idle, 8 s on a busy 2-core machine), and so most of a small job's or an endpoint's
fixed start-up time. Python's import system treats a `None` entry in `sys.modules` as "cannot be
imported", so while xgboost loads in a `python -m nbsage.runtime ...` process `import sklearn`
fails and xgboost.compat falls back to its own base classes. Only those processes: in a kernel or
a user's process, where XGBClassifier must keep working, xgboost is imported plainly. scikit-learn
itself stays importable afterwards (k-fold mode uses it). The other modules of this package that
need xgboost take `xgb` from here.
"""
from __future__ import annotations

import sys


def _in_runtime_process() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name == "nbsage.runtime.__main__"


def _import_xgboost():
    if "xgboost" in sys.modules or "sklearn" in sys.modules or not _in_runtime_process():
        import xgboost
        return xgboost
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        import xgboost
    finally:
        del sys.modules["sklearn"]
    return xgboost


xgb = _import_xgboost()
