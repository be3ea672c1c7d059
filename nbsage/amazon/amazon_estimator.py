"""`sagemaker.amazon.amazon_estimator`: the SDK v1 `get_image_uri`, kept for old notebooks."""
from __future__ import annotations

import warnings

from nbsage import image_uris


def get_image_uri(region_name: str | None, repo_name: str, repo_version: str = "1") -> str:
    """The image URI of a built-in algorithm (deprecated in the SDK v2 for image_uris.retrieve,
    with the same warning)."""
    warnings.warn("The method get_image_uri has been renamed in sagemaker>=2: use "
                  "sagemaker.image_uris.retrieve(framework, region, version)", DeprecationWarning, stacklevel=2)
    return image_uris.retrieve(repo_name, region_name, repo_version)
