"""What the SDK's framework classes share (`sagemaker.sklearn.SKLearn`, `sagemaker.pytorch.PyTorch`,
`sagemaker.xgboost.XGBoost` and their Models): a script-mode Estimator or Model that records the
framework version it was written for.

SageMaker picks a container image from `framework_version`; nbsage runs the script with this
environment's library, so a version whose major differs from the installed one is a warning that
names both (Estimator and Model check it, from `_framework`; the script may still run, as most do
across versions). `dependencies` (folders the
script imports) are copied beside the source_dir's files, into one code folder that the job gets
as its code directory and the model gets as its `code/`, as the SDK packs them into sourcedir.tar.gz.
"""
from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

from nbsage.errors import ValidationError
from nbsage.estimator import Estimator
from nbsage.model import Model

_SKIP = ("__pycache__", ".ipynb_checkpoints", ".git")


def code_folder(session, entry_point: str, source_dir: str | None, dependencies: list | None) -> str | None:
    """source_dir, or — when there are dependencies — a folder under NBSAGE_HOME holding the
    source_dir's files (or the entry point) with each dependency folder beside them."""
    if not dependencies:
        return source_dir
    sources = [Path(source_dir).expanduser() if source_dir else Path(entry_point).expanduser()]
    for dep in dependencies:
        path = Path(dep).expanduser()
        if not path.exists():
            raise ValidationError(f"dependencies: {dep!r} does not exist; give local folders or files "
                                  "the entry point imports")
        sources.append(path)
    digest = hashlib.sha256()
    for src in sources:
        files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
        for f in files:
            digest.update(str(f.resolve()).encode() + b"\0" + f.read_bytes())
    target = Path(session.home) / "code" / digest.hexdigest()[:16]
    if not target.is_dir():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        first, rest = sources[0], sources[1:]
        if first.is_dir():
            shutil.copytree(first, partial, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_SKIP))
        else:
            shutil.copy2(first, partial / first.name)
        for dep in rest:  # a dependency folder keeps its name, so `import my_library` finds it
            if dep.is_dir():
                shutil.copytree(dep, partial / dep.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_SKIP))
            else:
                shutil.copy2(dep, partial / dep.name)
        partial.rename(target)
    return str(target)


class Framework(Estimator):
    """A script-mode Estimator for one framework; subclasses name it and their Model class."""

    framework = "framework"        # the SDK's class name, in messages
    _framework: str | None = None  # image_uris' name for it: framework_version is checked against its package
    image_repository = ""          # SageMaker's image repository, recorded as the job's image
    model_class: type = Model

    def __init__(self, entry_point: str, framework_version: str | None = None, py_version: str | None = None,
                 source_dir: str | None = None, hyperparameters: dict | None = None,
                 image_uri: str | None = None, dependencies: list | None = None,
                 image_uri_region: str | None = None, code_location: str | None = None,
                 git_config: dict | None = None, **kwargs):
        if not entry_point:
            raise ValidationError(f"{self.framework} needs entry_point: the training script")
        if git_config is not None:
            raise ValidationError("git_config: nbsage does not clone repositories; clone it and give "
                                  "source_dir the local folder")
        if framework_version is None and image_uri is None:
            raise ValidationError(f"{self.framework} needs framework_version (the version your script was "
                                  "written for) or image_uri")
        self.dependencies = list(dependencies or [])
        self.code_location = code_location
        self._original_source_dir = source_dir
        super().__init__(image_uri=image_uri or f"{self.image_repository}:{framework_version}",
                         entry_point=entry_point, source_dir=source_dir, hyperparameters=hyperparameters,
                         framework_version=framework_version, py_version=py_version, **kwargs)

    def _request(self, job_name: str, inputs: dict) -> dict:
        # dependencies travel in the job's code directory, beside the source_dir's files
        self.source_dir = code_folder(self.session, self.entry_point, self._original_source_dir, self.dependencies)
        if self.dependencies and not self._original_source_dir:
            self.entry_point = Path(self.entry_point).name
        return super()._request(job_name, inputs)

    def create_model(self, role: str | None = None, entry_point: str | None = None, source_dir: str | None = None,
                     dependencies: list | None = None, model_server_workers=None, **kwargs) -> Model:
        """The framework's Model for the latest job's artifact, serving with the training script
        (or `entry_point`) as its inference code."""
        job = self._completed_job()
        if entry_point is None:
            entry_point, source_dir = self.entry_point, source_dir or self.source_dir
        with warnings.catch_warnings():  # the Estimator said it already, when it was built
            warnings.simplefilter("ignore", UserWarning)
            return self.model_class(job.model_data, role=role or self.role, entry_point=entry_point,
                                    source_dir=source_dir, framework_version=self.framework_version,
                                    py_version=self.py_version, dependencies=dependencies,
                                    sagemaker_session=self.session, **kwargs)

    @classmethod
    def attach(cls, training_job_name: str, sagemaker_session=None):
        raise ValidationError(f"{cls.__name__}.attach is not available; use sagemaker.estimator.Estimator.attach "
                              f"({training_job_name!r}) and then {cls.__name__}'s Model on its model_data")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(entry_point={self.entry_point!r}, "
                f"framework_version={self.framework_version!r}, instance_type={self.instance_type!r})")


class FrameworkModel(Model):
    """A Model served by its entry point, as the framework's serving container runs it."""

    framework = "framework"
    _framework: str | None = None
    predictor_class: type | None = None

    def __init__(self, model_data, role: str | None = None, entry_point: str | None = None,
                 framework_version: str | None = None, py_version: str | None = None,
                 image_uri: str | None = None, predictor_cls=None, model_server_workers=None,
                 source_dir: str | None = None, dependencies: list | None = None, sagemaker_session=None,
                 env: dict | None = None, name: str | None = None, code_location: str | None = None,
                 container_log_level: int | None = None, git_config: dict | None = None, **kwargs):
        if git_config is not None:
            raise ValidationError("git_config: nbsage does not clone repositories; clone it and give "
                                  "source_dir the local folder")
        if not entry_point:
            raise ValidationError(f"{type(self).__name__} needs entry_point: the script that defines model_fn")
        self.model_server_workers = model_server_workers
        session = sagemaker_session
        if dependencies:
            from nbsage.session import Session
            session = session or Session.default()
            source_dir = code_folder(session, entry_point, source_dir, dependencies)
            entry_point = entry_point if source_dir and Path(source_dir, entry_point).is_file() else Path(entry_point).name
        super().__init__(model_data, entry_point=entry_point, source_dir=source_dir, env=env, name=name,
                         sagemaker_session=session, image_uri=image_uri, role=role,
                         predictor_cls=predictor_cls or self.predictor_class, framework_version=framework_version,
                         py_version=py_version, **kwargs)
