"""`sagemaker.image_uris.retrieve`: image URIs shaped like SageMaker's, which nbsage maps back.

nbsage runs no container images. A notebook still asks for one (`image_uris.retrieve("xgboost",
region, "1.7-1")`) and hands it to an Estimator or a Model; the URI it gets has the SDK's shape
(`<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:1.7-1`), and `Estimator` reads the
algorithm (and version) back out of it: a built-in's image runs nbsage's algorithm of that name.
`image_version` says which version an image asks for and `check_version` warns, once, where the
installed library cannot honour it, naming what runs instead.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib.metadata
import re
import warnings

from nbsage.errors import ValidationError, did_you_mean
from nbsage.store.buckets import region as default_region

# the SDK's framework names -> (repository, default version, version choices or () for any)
_BUILT_INS = {
    "xgboost": ("sagemaker-xgboost", "1.7-1",
                ("0.90-1", "0.90-2", "1.0-1", "1.2-1", "1.2-2", "1.3-1", "1.5-1", "1.7-1", "3.0-5")),
    "linear-learner": ("linear-learner", "1", ("1", "latest")),
    "blazingtext": ("blazingtext", "1", ("1", "latest")),
    "forecasting-deepar": ("forecasting-deepar", "1", ("1", "latest")),
    "object2vec": ("object2vec", "1", ("1", "latest")),
    "seq2seq": ("seq2seq", "1", ("1", "latest")),
}
_ALIASES = {"linear_learner": "linear-learner", "deepar": "forecasting-deepar", "blazing-text": "blazingtext"}
# script-mode frameworks: repository per image scope; the tag is <version>-<cpu|gpu>-<py>
_FRAMEWORKS = {
    "sklearn": {"training": "sagemaker-scikit-learn", "inference": "sagemaker-scikit-learn"},
    "pytorch": {"training": "pytorch-training", "inference": "pytorch-inference"},
    "tensorflow": {"training": "tensorflow-training", "inference": "tensorflow-inference"},
    "huggingface": {"training": "huggingface-pytorch-training", "inference": "huggingface-pytorch-inference"},
    "mxnet": {"training": "mxnet-training", "inference": "mxnet-inference"},
}
# the Python package a framework's version is checked against
DISTRIBUTIONS = {"xgboost": "xgboost", "sklearn": "scikit-learn", "scikit-learn": "scikit-learn",
                 "pytorch": "torch", "torch": "torch", "tensorflow": "tensorflow", "mxnet": "mxnet",
                 "huggingface": "transformers"}
# repository (as in an image URI) -> framework
_REPOSITORY_FRAMEWORK = {"sagemaker-xgboost": "xgboost", "sagemaker-scikit-learn": "sklearn",
                         **{repo: fw for fw, scopes in _FRAMEWORKS.items() for repo in scopes.values()}}
_ACCOUNT = {"xgboost": "683313688378", "sklearn": "683313688378"}  # us-east-1's, as the SDK's table
_DEFAULT_ACCOUNT = "382416733822"
_DLC_ACCOUNT = "763104351884"


def _uri(account: str, region: str, repository: str, tag: str) -> str:
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"


def retrieve(framework: str, region: str | None = None, version: str | None = None, py_version: str | None = None,
             instance_type: str | None = None, accelerator_type=None, image_scope: str | None = None,
             container_version=None, distribution=None, base_framework_version=None,
             training_compiler_config=None, model_id=None, model_version=None, hub_arn=None,
             tolerate_vulnerable_model=False, tolerate_deprecated_model=False, sdk_version=None,
             inference_tool=None, serverless_inference_config=None, sagemaker_session=None,
             config_name=None, model_type=None) -> str:
    """The image URI for a built-in algorithm or a framework, as sagemaker.image_uris.retrieve."""
    region = region or default_region()
    name = _ALIASES.get(framework.lower(), framework.lower())
    if name in _BUILT_INS:
        repository, default, versions = _BUILT_INS[name]
        version = str(version or default)
        if name == "xgboost" and version in ("1", "latest"):  # the SDK's legacy XGBoost image
            return _uri(_ACCOUNT["xgboost"], region, "xgboost", version)
        if versions and version not in versions:
            raise ValidationError(f"{framework} version {version!r} is not one of SageMaker's: "
                                  f"{', '.join(versions)}{did_you_mean(version, versions)}")
        return _uri(_ACCOUNT.get(name, _DEFAULT_ACCOUNT), region, repository, version)
    if name in _FRAMEWORKS:
        if not version:
            raise ValidationError(f"image_uris.retrieve({framework!r}) needs version=, the framework version "
                                  "(e.g. '1.2-1' for sklearn, '2.1' for pytorch)")
        scope = image_scope or "training"
        if scope not in _FRAMEWORKS[name]:
            raise ValidationError(f"image_scope {scope!r} is not valid; use training or inference")
        processor = "gpu" if instance_type and re.match(r"ml\.(p|g)\d", instance_type) else "cpu"
        tag = f"{version}-{processor}-{py_version or 'py3'}"
        return _uri(_ACCOUNT.get(name, _DLC_ACCOUNT), region, _FRAMEWORKS[name][scope], tag)
    known = sorted(_BUILT_INS) + sorted(_FRAMEWORKS)
    raise ValidationError(f"image_uris.retrieve: {framework!r} is not a framework nbsage knows; it knows "
                          f"{', '.join(known)}{did_you_mean(name, known + sorted(_ALIASES))}")


def image_version(image_uri: str) -> tuple[str | None, str | None]:
    """(framework, version) an image URI asks for: `.../sagemaker-xgboost:1.7-1` -> ("xgboost", "1.7");
    `.../pytorch-training:2.1-cpu-py3` -> ("pytorch", "2.1"); (None, None) when it names neither."""
    last = (image_uri or "").strip().rsplit("/", 1)[-1]
    repository, _, tag = last.partition(":")
    framework = _REPOSITORY_FRAMEWORK.get(repository.lower())
    if framework is None or not tag:
        return framework, None
    return framework, tag.split("-", 1)[0] if framework != "xgboost" or tag not in ("1", "latest") else None


def installed_version(framework: str) -> str | None:
    """The installed version of the package that runs `framework` (None when it is not installed)."""
    dist = DISTRIBUTIONS.get(framework.lower())
    if dist is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _major(version: str) -> str:
    return re.split(r"[.\-+]", str(version).strip())[0]


_already_warned = contextvars.ContextVar("nbsage_versions_already_warned", default=False)


@contextlib.contextmanager
def already_checked():
    """No version warning inside: for objects built from one that already warned (an Estimator's
    Model, an attached Estimator)."""
    token = _already_warned.set(True)
    try:
        yield
    finally:
        _already_warned.reset(token)


def _stacklevel() -> int:
    from nbsage.sdk_arguments import user_stacklevel
    return user_stacklevel() - 1  # counted from this helper, one frame below check_version


def check_version(framework: str | None, version: str | None, what: str) -> None:
    """Warn when the installed package's major version differs from the one asked for, naming
    what runs instead (nbsage runs the installed library; no image is pulled)."""
    if not framework or not version or _already_warned.get():
        return
    installed = installed_version(framework)
    dist = DISTRIBUTIONS.get(framework.lower(), framework)
    if installed is None:
        warnings.warn(f"{what} asks for {framework} {version}, which is not installed here "
                      f"(pip install {dist}); the job will fail where it imports it", UserWarning,
                      stacklevel=_stacklevel())
    elif _major(installed) != _major(version):
        warnings.warn(f"{what} asks for {framework} {version}; nbsage runs the installed {dist} {installed} "
                      "instead (no container image is pulled)", UserWarning, stacklevel=_stacklevel())
