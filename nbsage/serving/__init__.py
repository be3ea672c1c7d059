"""The serving platform: endpoints (a model server process each), recorded in the store.

Variants, shadow traffic, data capture, autoscaling, batch transform and inference pipelines
build on `endpoints`.
"""
from __future__ import annotations

from nbsage.serving.endpoints import (delete_endpoint, deploy, describe_endpoint, invoke_endpoint,
                                      list_endpoints, wait_for_endpoint)

__all__ = ["deploy", "describe_endpoint", "list_endpoints", "invoke_endpoint", "delete_endpoint",
           "wait_for_endpoint"]
