"""`sagemaker.amazon`: the SDK's helpers for the built-in ("first-party") algorithms.

`sagemaker.amazon.common` writes and reads RecordIO-protobuf (with nbsage's own fast writer) and
`sagemaker.amazon.amazon_estimator.get_image_uri` is the SDK v1 image lookup. Submodules are
imported on first use, so `sagemaker.amazon.common` resolves without an import of its own.
"""
from __future__ import annotations

import importlib


def __getattr__(name: str):
    if name.startswith("_"):
        raise AttributeError(f"module 'nbsage.amazon' has no attribute {name!r}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module 'nbsage.amazon' has no attribute {name!r}") from None
