"""Readers and writers, one module per content type, found by content type.

`read_table(files, content_type)` reads a training channel of labelled rows (label first) into a
`Table` of features (dense ndarray or scipy CSR), labels and optional weights. Errors name the
file and line. Modules import pyarrow/scipy where they read, not at `import nbsage`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbsage.errors import UnsupportedContentType

# content type -> module under nbsage.formats
_MODULES = {
    "text/csv": "text_csv",
    "text/libsvm": "text_libsvm",
    "application/x-parquet": "parquet",
    "application/x-recordio-protobuf": "recordio_protobuf",
}


@dataclass
class Table:
    """Labelled rows: features (n x d, dense float32 ndarray or CSR), labels (n,), weights (n,) or None."""

    features: Any
    labels: Any
    weights: Any = None

    @property
    def num_rows(self) -> int:
        return self.features.shape[0]

    @property
    def num_features(self) -> int:
        return self.features.shape[1]


def content_types() -> list[str]:
    return sorted(_MODULES)


def module_for(content_type: str):
    from nbsage.algorithms.base import normalize_content_type
    ct = normalize_content_type(content_type)
    if ct not in _MODULES:
        raise UnsupportedContentType(
            f"content type {content_type!r} has no reader; readable types are {', '.join(content_types())}")
    return importlib.import_module(f"nbsage.formats.{_MODULES[ct]}")


def read_table(files: list[Path], content_type: str, *, weights: bool = False,
               num_features: int | None = None) -> Table:
    """Read labelled rows from files of one content type and stack them.

    weights=True reads an instance weight (CSV: second column; libsvm: `label:weight`).
    num_features pads sparse data to a known width (validation must match train).
    """
    return module_for(content_type).read_table(list(files), weights=weights, num_features=num_features)


def label_size(content_type: str | None) -> int:
    """`text/csv;label_size=0` -> 0; default 1."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip() == "label_size":
            return int(value.strip())
    return 1
