"""Model: a model.tar.gz plus how to serve it, shaped like the SageMaker Python SDK v2's `sagemaker.Model`.

A built-in algorithm's artifact is served by that algorithm's loader (`algorithm="xgboost"`, or an
`image_uri` naming it). Anything else is served by inference code: `code/inference.py` inside the
archive, or an `entry_point` (with an optional `source_dir`), in which case the model is repacked
as the SDK does: a new model.tar.gz with the original files at the root and the code under
`code/`, stored beside the original.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path

from nbsage.errors import ValidationError
from nbsage.predictor import Predictor

_SKIP = {"__pycache__", ".ipynb_checkpoints", ".git", ".DS_Store"}


def _default_codecs(algorithm: str | None, sdk_image: bool = False):
    """(serializer, deserializer) a Predictor of this model gets when none is given.

    A model given as an SDK image URI (`image_uris.retrieve(...)`) gets what the SDK's Predictor
    has — IdentitySerializer and BytesDeserializer — since SageMaker notebooks are written for
    that (`json.loads(predictor.predict(json.dumps(payload)))`, `.decode("utf-8")`); nbsage's
    short names (`algorithm="xgboost"`) get the algorithm's own formats.
    """
    from nbsage import deserializers as d
    from nbsage import serializers as s
    if sdk_image:
        return s.IdentitySerializer(), d.BytesDeserializer()
    if not algorithm:
        return s.JSONSerializer(), d.JSONDeserializer()
    from nbsage import algorithms
    declared = algorithms.get(algorithm)
    serializer = {"text/csv": s.CSVSerializer, "application/json": s.JSONSerializer,
                  "application/jsonlines": s.JSONLinesSerializer,
                  "image/jpeg": lambda: s.IdentitySerializer("image/jpeg")}[declared.request_content_type]
    deserializer = {"text/csv": d.CSVDeserializer, "application/json": d.JSONDeserializer,
                    "application/jsonlines": d.JSONLinesDeserializer}[declared.response_accept]
    return serializer(), deserializer()


class Model:
    """A model artifact that can be deployed to an endpoint."""

    def __init__(self, model_data: str | os.PathLike, algorithm: str | None = None, entry_point: str | None = None,
                 source_dir: str | os.PathLike | None = None, env: dict | None = None, name: str | None = None,
                 sagemaker_session=None, image_uri: str | None = None, predictor_cls=Predictor,
                 role: str | None = None, framework_version: str | None = None, py_version: str | None = None,
                 **kwargs):
        from nbsage import algorithms, image_uris, sdk_arguments
        self.sdk_options = sdk_arguments.recorded(kwargs, sdk_arguments.MODEL_RECORDED)
        accepted = sdk_arguments.accepted_keywords(type(self), sdk_arguments.MODEL_RECORDED)
        sdk_arguments.refuse_unknown(f"{type(self).__name__}()", kwargs, accepted)
        if model_data is None or str(model_data) == "":
            raise ValidationError("model_data is required: the model.tar.gz of a training job "
                                  "(estimator.model_data), a local path or any fsspec URL")
        self.sagemaker_session = sagemaker_session
        self.data_capture_config = None
        if isinstance(model_data, str) and model_data.startswith("s3://"):
            model_data = self._session().resolve_uri(model_data)  # the default bucket's URIs
        self.model_data = str(model_data)
        self.framework_version = framework_version
        self.py_version = py_version
        framework, version = image_uris.image_version(image_uri or "")
        image_uris.check_version(getattr(self, "_framework", None) or framework, framework_version or version,
                                 f"{type(self).__name__}({image_uri or ''})")
        self.image_uri = image_uri
        if image_uri and algorithms.is_builtin(image_uri):
            from_image = algorithms.canonical_name(image_uri)
            if algorithm and algorithms.get(algorithm).name != from_image:
                raise ValidationError(f"image_uri {image_uri!r} names the {from_image} algorithm but "
                                      f"algorithm={algorithm!r}; give one of them")
            algorithm = from_image
        self.algorithm = algorithms.get(algorithm).name if algorithm else None
        self.entry_point = entry_point
        self.source_dir = str(source_dir) if source_dir is not None else None
        if entry_point:
            base = Path(self.source_dir).expanduser() if self.source_dir else Path(".")
            script = base / entry_point if self.source_dir else Path(entry_point).expanduser()
            if self.source_dir and not base.is_dir():
                raise ValidationError(f"source_dir {self.source_dir!r} is not a directory")
            if not script.is_file():
                where = f" in source_dir {self.source_dir!r}" if self.source_dir else ""
                raise ValidationError(f"entry_point {entry_point!r} was not found{where}")
        elif self.source_dir:
            raise ValidationError("source_dir needs an entry_point: the script in it that defines model_fn "
                                  "(and input_fn/predict_fn/output_fn or transform_fn)")
        self.env = dict(env or {})
        if name is not None:
            from nbsage.session import check_name
            check_name(name, "model")
        self.name = name
        self.role = role  # accepted for SDK compatibility; nothing here needs an IAM role
        self.predictor_cls = predictor_cls
        self.endpoint_name: str | None = None
        self.repacked_model_data: str | None = None
        self._check_local_archive()

    def _check_local_archive(self) -> None:
        """A local model_data file is looked at now: a CSV, an empty file or another algorithm's
        archive is refused with what it is, not when a server fails to load it."""
        from nbsage.runtime.model_archive import check_archive
        from nbsage.store.artifacts import is_local, local_path
        if not is_local(self.model_data):
            return
        path = Path(local_path(self.model_data)).expanduser()
        if path.is_file():
            user_code = self.entry_point or self.env.get("SAGEMAKER_PROGRAM")
            check_archive(path, self.model_data, None if user_code else self.algorithm)

    def _session(self):
        if self.sagemaker_session is None:
            from nbsage.session import Session
            self.sagemaker_session = Session.default()
        return self.sagemaker_session

    @property
    def server_entry_point(self) -> str | None:
        """The entry point's path inside code/ of the (repacked) model."""
        if not self.entry_point:
            return None
        return Path(self.entry_point).as_posix() if self.source_dir else Path(self.entry_point).name

    def _code_files(self) -> list[tuple[Path, str]]:
        """(local file, name inside code/) for the entry point or the whole source_dir."""
        if self.source_dir:
            root = Path(self.source_dir).expanduser()
            files = []
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if any(part in _SKIP for part in rel.parts) or not path.is_file():
                    continue
                files.append((path, rel.as_posix()))
            return files
        script = Path(self.entry_point).expanduser()
        return [(script, script.name)]

    def _repack(self) -> str:
        """Write model.tar.gz + code/ beside the original; return the new artifact's URL or path."""
        from nbsage.store.artifacts import is_local, local_path
        session = self._session()
        code = self._code_files()
        digest = hashlib.sha256(self.model_data.encode())
        for path, arcname in code:
            digest.update(arcname.encode() + b"\0" + path.read_bytes())
        with tempfile.TemporaryDirectory(prefix="nbsage-repack-") as tmp:
            original = Path(tmp) / "original.tar.gz"
            if is_local(self.model_data):
                original = Path(local_path(self.model_data)).expanduser()
                if not original.is_file():
                    raise ValidationError(f"model_data {self.model_data!r} is not a file; give a model.tar.gz")
                stat = original.stat()
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            else:
                session.artifacts.get_file(self.model_data, original)
            repacked = Path(tmp) / "model.tar.gz"
            replaced = {f"code/{arcname}" for _, arcname in code}
            try:
                with tarfile.open(original, "r:*") as src, tarfile.open(repacked, "w:gz", compresslevel=1) as dst:
                    for member in src:
                        name = member.name
                        while name.startswith("./"):
                            name = name[2:]
                        if name in ("", "."):
                            continue
                        in_code = name == "code" or name.startswith("code/")
                        # the SDK replaces code/ wholesale when a source_dir is given
                        if (self.source_dir and in_code) or name in replaced:
                            continue
                        member.name = name
                        dst.addfile(member, src.extractfile(member) if member.isfile() else None)
                    for path, arcname in code:
                        dst.add(path, arcname=f"code/{arcname}", recursive=False)
            except tarfile.TarError as exc:
                raise ValidationError(f"model_data {self.model_data!r} is not a readable model.tar.gz: {exc}") from None
            stem = Path(self.model_data.rstrip("/").rsplit("/", 1)[-1]).name.split(".")[0] or "model"
            filename = f"{stem}-repacked-{digest.hexdigest()[:12]}.tar.gz"
            if is_local(self.model_data):
                target = str(original.resolve().parent / filename)
            elif self.model_data.startswith(("http://", "https://")):
                target = session.artifacts.url("models", filename)
            else:
                target = self.model_data.rstrip("/").rsplit("/", 1)[0] + "/" + filename
            session.artifacts.put_file(repacked, target)
        return target

    def prepare(self) -> str:
        """The model data to serve: the original, or the repacked one when there is an entry_point."""
        if not self.entry_point:
            return self.model_data
        if self.repacked_model_data is None:
            self.repacked_model_data = self._repack()
        return self.repacked_model_data

    def deploy(self, initial_instance_count: int = 1, instance_type: str = "local", endpoint_name: str | None = None,
               serializer=None, deserializer=None, wait: bool = True, **kwargs):
        """Start an endpoint serving this model; returns a Predictor (predictor_cls) for it."""
        self.data_capture_config = kwargs.pop("data_capture_config", None)  # nbsage.serving.capture
        unsupported = sorted(k for k, v in kwargs.items() if v is not None and k not in ("accelerator_type", "tags",
                                                                                          "kms_key", "volume_size"))
        if unsupported:
            raise ValidationError(f"Model.deploy() does not take {', '.join(unsupported)} yet; it takes "
                                  "initial_instance_count, instance_type, endpoint_name, serializer, "
                                  "deserializer, data_capture_config and wait")
        from nbsage.serving.endpoints import deploy
        from nbsage.session import check_name, unique_name
        session = self._session()
        if endpoint_name is None:
            endpoint_name = unique_name(self.name or self.algorithm or "model")
        check_name(endpoint_name, "endpoint")
        model_data = self.prepare()
        deploy(session, endpoint_name, model_data, algorithm=self.algorithm,
               entry_point=self.server_entry_point, environment=self.env, instance_type=instance_type,
               initial_instance_count=initial_instance_count, wait=wait, image_uri=self.image_uri,
               accelerator_type=kwargs.get("accelerator_type"), data_capture_config=self.data_capture_config)
        self.endpoint_name = endpoint_name
        if self.predictor_cls is None:
            return None
        predictor = self.predictor_cls(endpoint_name, session)
        # a Predictor subclass keeps its own defaults, as in the SDK; the plain one gets the model's
        default_ser, default_de = _default_codecs(None if self.entry_point else self.algorithm,
                                                  sdk_image=_is_sdk_image(self.image_uri))
        if serializer is not None or self.predictor_cls is Predictor:
            predictor.serializer = serializer or default_ser
        if deserializer is not None or self.predictor_cls is Predictor:
            predictor.deserializer = deserializer or default_de
        predictor.data_capture_config = self.data_capture_config
        return predictor

    def create(self, instance_type: str | None = None, accelerator_type: str | None = None,
               serverless_inference_config=None, tags=None, accept_eula=None, model_reference_arn=None) -> None:
        """CreateModel: record this model under its name (generated when it has none), for endpoint
        configs (production_variant(model.name, ...)) and transform jobs to name."""
        from nbsage.transformer import register_model
        register_model(self, self.name)

    def transformer(self, instance_count: int = 1, instance_type: str = "local", strategy: str | None = None,
                    assemble_with: str | None = None, output_path: str | None = None, output_kms_key=None,
                    accept: str | None = None, env: dict | None = None, max_concurrent_transforms: int | None = None,
                    max_payload: int | None = None, tags=None, volume_kms_key=None, **kwargs):
        """A Transformer (batch transform) for this model; the model is recorded under its name first."""
        from nbsage.transformer import Transformer, register_model
        name = register_model(self)
        return Transformer(name, instance_count=instance_count, instance_type=instance_type, strategy=strategy,
                           assemble_with=assemble_with, output_path=output_path, output_kms_key=output_kms_key,
                           accept=accept, env=env, max_concurrent_transforms=max_concurrent_transforms,
                           max_payload=max_payload, tags=tags, volume_kms_key=volume_kms_key,
                           sagemaker_session=self._session(), **kwargs)

    def compile(self, target_instance_family: str, input_shape=None, output_path: str | None = None,
                role: str | None = None, tags=None, job_name: str | None = None, compile_max_run: int = 15 * 60,
                framework: str | None = None, framework_version: str | None = None, **kwargs) -> "Model":
        """Compile this model to ONNX for onnxruntime (Neo's local counterpart, nbsage.compilation): a
        compilation job is recorded, and this Model then serves the compiled model.tar.gz (as the SDK's
        compile returns the Model it compiled). A model or target that does not compile raises a
        CompilationError naming the part that is not supported."""
        from nbsage.compilation import CompilationError
        from nbsage.compilation.job import compile_model
        unsupported = sorted(k for k, v in kwargs.items() if v is not None)
        if unsupported:
            raise CompilationError(f"Model.compile() does not take {', '.join(unsupported)}: nbsage compiles for "
                                   "onnxruntime on this machine, named by target_instance_family (ml_c5, ...)")
        hint = f" ({self.entry_point})" if self.entry_point else ""
        job = compile_model(self._session(), self.model_data, None if self.entry_point else self.algorithm,
                            target_instance_family, input_shape=input_shape, output_path=output_path,
                            framework=framework, framework_version=framework_version, job_name=job_name, role=role,
                            compile_max_run=compile_max_run, model_hint=hint)
        self.model_data = job.model_data
        self._compilation_job_name = job.name
        self._is_compiled_model = True
        return self

    def delete_model(self) -> None:
        """Nothing to do: nbsage keeps no model resource apart from the artifact."""

    def __repr__(self) -> str:
        how = f"algorithm={self.algorithm!r}" if self.algorithm and not self.entry_point else \
            f"entry_point={self.entry_point!r}" if self.entry_point else "code/inference.py"
        return f"Model(model_data={self.model_data!r}, {how}, endpoint_name={self.endpoint_name!r})"


def _is_sdk_image(image_uri: str | None) -> bool:
    """An image URI as the SDK's image_uris give (a repository path or a tag), not a short name."""
    return bool(image_uri) and ("/" in image_uri or ":" in image_uri)
