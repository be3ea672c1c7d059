"""Constructor keywords as the SageMaker Python SDK takes them, checked the same way everywhere.

SageMaker notebooks were written against two SDK generations. `Estimator`, `Model` and the
processors take the SDK v2 names; the v1 names (`train_instance_count`, ...) are mapped as the v2
SDK maps them (its `renamed_kwargs`, with its deprecation warning) so that `train_instance_count=2`
runs two hosts instead of being dropped. Keywords the SDK takes that have no effect on this
machine (`subnets`, `volume_kms_key`, ...) are accepted and recorded. Anything else is an error
naming the keyword — never swallowed — with the place's options named where a place takes it.
"""
from __future__ import annotations

import os
import sys
import warnings

from nbsage.errors import ValidationError, did_you_mean

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# SDK v1 name -> SDK v2 name (sagemaker.estimator.EstimatorBase / Framework renamed_kwargs)
ESTIMATOR_RENAMED = {
    "train_instance_count": "instance_count",
    "train_instance_type": "instance_type",
    "train_max_run": "max_run",
    "train_use_spot_instances": "use_spot_instances",
    "train_max_wait": "max_wait",
    "train_volume_size": "volume_size",
    "train_volume_kms_key": "volume_kms_key",
    "image_name": "image_uri",
}

# SDK keywords that change nothing on a machine of one's own: accepted, kept on the object
ESTIMATOR_RECORDED = (
    "keep_alive_period_in_seconds", "volume_kms_key", "output_kms_key", "subnets", "security_group_ids",
    "model_uri", "model_channel_name", "encrypt_inter_container_traffic", "enable_network_isolation", "rules",
    "debugger_hook_config", "tensorboard_output_config", "enable_sagemaker_metrics", "profiler_config",
    "disable_profiler", "max_retry_attempts", "git_config", "code_location", "dependencies", "instance_groups",
    "training_repository_access_mode", "training_repository_credentials_provider_arn", "container_entry_point",
    "container_arguments", "disable_output_compression", "enable_infra_check", "enable_remote_debug",
    "enable_session_tag_chaining", "training_plan", "instance_placement_config", "distribution",
)
MODEL_RECORDED = (
    "vpc_config", "enable_network_isolation", "model_kms_key", "image_config", "code_location",
    "container_log_level", "dependencies", "git_config", "resources", "additional_model_data_sources",
    "model_reference_arn",
)
PROCESSOR_RECORDED = ("volume_kms_key", "output_kms_key")


def renamed(kwargs: dict, table: dict[str, str] = ESTIMATOR_RENAMED) -> dict:
    """Pop the SDK v1 names from kwargs; {v2 name: value}, each with the SDK v2's warning."""
    found = {}
    for old, new in table.items():
        if old in kwargs:
            found[new] = kwargs.pop(old)
            message = (f"{old} has been renamed in sagemaker>=2: use {new}.\nSee: "
                       "https://sagemaker.readthedocs.io/en/stable/v2.html for details.")
            warnings.warn(message, DeprecationWarning, stacklevel=user_stacklevel())
    return found


def user_stacklevel() -> int:
    """The warnings stacklevel of the first caller outside nbsage (the notebook's line), so the
    warning is shown there and filtered as the user's, however deep the subclass calls."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def recorded(kwargs: dict, names: tuple[str, ...]) -> dict:
    """Pop the accepted-and-recorded SDK keywords from kwargs."""
    return {name: kwargs.pop(name) for name in names if name in kwargs}


def refuse_unknown(what: str, given: dict, accepted) -> None:
    """A ValidationError for the first keyword of `given` (all of them unknown to `what`), with
    did-you-mean over the keywords `what` accepts."""
    if not given:
        return
    name = next(iter(given))
    hint = did_you_mean(name, list(accepted))
    takes = f"; see help({what.rstrip('()')}) for the keywords it takes"
    raise ValidationError(f"{what} got an unexpected keyword argument {name!r}{hint or takes}")


def place_options(place: str | None, kwargs: dict) -> dict:
    """Pop the keywords meant for a place (`Estimator(..., backend="kernel", gateway=...)`).

    Those the place declares, and also any that another place declares or that is a near miss of
    a place option (`gatewy`): the place refuses those when the job is submitted, naming the place
    that takes them or the option meant — before anything is recorded. What is left is unknown.
    """
    from nbsage import backends
    every = sorted({o.name for p in backends.names() for o in backends.declared_options(p)})
    if (place or "local").lower() not in backends.names():
        # an unknown place is refused where the job is submitted (with did-you-mean); until then
        # its keywords cannot be told apart
        return {k: kwargs.pop(k) for k in list(kwargs)}
    return {k: kwargs.pop(k) for k in list(kwargs) if k in every or did_you_mean(k, every)}


def accepted_keywords(cls, *extra: tuple[str, ...]) -> list[str]:
    """The keywords `cls.__init__` (and its bases') take, plus `extra` names (for did-you-mean)."""
    import inspect
    names = {name for group in extra for name in group}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None and klass is not object:
            names.update(p for p, v in inspect.signature(init).parameters.items()
                         if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL) and p != "self")
    return sorted(names)
