"""One ARN scheme for every nbsage resource (jobs of each kind, endpoints, models).

SageMaker's own layout, arn:aws:sagemaker:REGION:ACCOUNT:TYPE/NAME, with region `local` and a zero
account: code that reads ARNs the SDK's way (the part after the fifth colon, the name after the
slash) finds nbsage's names in them. A leaf module, so the runtime, the platform and the API share it.
"""
from __future__ import annotations

import os

PREFIX = "arn:aws:sagemaker:local:000000000000"


def arn(resource: str, name: str) -> str:
    """The ARN of a resource: `arn("training-job", name)`, "processing-job", "endpoint", "model"."""
    return f"{PREFIX}:{resource}/{name}"


def execution_role() -> str:
    """The role ARN recorded for a job that names none (what `get_execution_role()` returns): a local
    one, since nbsage needs no IAM role; NBSAGE_ROLE_ARN overrides it."""
    return os.environ.get("NBSAGE_ROLE_ARN") or "arn:aws:iam::000000000000:role/nbsage-local-execution-role"
