"""PipelineModel: several models called in order behind one endpoint, shaped like the SageMaker Python
SDK v2's `sagemaker.pipeline.PipelineModel` (SageMaker's Inference Pipelines).

`PipelineModel(models=[preprocessor, xgb], name=...)`: each model's response becomes the next one's
request (its Content-Type passed along), up to 15 models. `deploy(...)` starts one endpoint serving
them all (nbsage.serving.pipelines: one model server process, the stages called in memory);
`transformer(...)` runs a batch transform through them. One difference from the SDK: with no
predictor_cls, `deploy` returns an nbsage Predictor (the SDK returns None), its serializer the first
model's request type and its deserializer the last model's response type.
"""
from __future__ import annotations

from nbsage.errors import ValidationError
from nbsage.predictor import Predictor

MAX_MODELS = 15  # SageMaker's limit on a pipeline model's containers


class PipelineModel:
    """A serial inference pipeline of nbsage Models (built-in algorithms or inference scripts)."""

    def __init__(self, models: list, role: str | None = None, predictor_cls=Predictor, name: str | None = None,
                 vpc_config: dict | None = None, sagemaker_session=None, enable_network_isolation: bool = False):
        from nbsage.model import Model
        models = list(models or [])
        if not 1 <= len(models) <= MAX_MODELS:
            raise ValidationError(f"PipelineModel takes 1 to {MAX_MODELS} models (SageMaker's limit on a "
                                  f"pipeline's containers), got {len(models)}")
        for i, model in enumerate(models, 1):
            if not isinstance(model, Model):
                raise ValidationError(f"models[{i - 1}] is a {type(model).__name__}, not an nbsage Model; "
                                      "give Model(...) objects (estimator.create_model() makes one)")
        if name is not None:
            from nbsage.session import check_name
            check_name(name, "model")
        self.models = models
        self.role = role  # accepted for SDK compatibility; nothing here needs an IAM role
        self.predictor_cls = predictor_cls
        self.name = name
        self.vpc_config = vpc_config
        self.enable_network_isolation = enable_network_isolation
        self.sagemaker_session = sagemaker_session
        self.endpoint_name: str | None = None

    def _session(self):
        if self.sagemaker_session is None:
            self.sagemaker_session = self.models[0]._session()
        return self.sagemaker_session

    def pipeline_container_def(self, instance_type: str | None = None) -> list[dict]:
        """CreateModel's Containers: one per model, in order (model data repacked with its code)."""
        containers = []
        names = set()
        for i, model in enumerate(self.models, 1):
            if model.sagemaker_session is None:
                model.sagemaker_session = self._session()
            name = model.name or model.algorithm or (model.entry_point and model.entry_point.rsplit(".", 1)[0]) \
                or f"model-{i}"
            if name in names:
                name = f"{name}-{i}"
            names.add(name)
            containers.append({"Name": name, "ModelDataUrl": model.prepare(), "Algorithm": model.algorithm,
                               "EntryPoint": model.server_entry_point, "Environment": dict(model.env),
                               "ImageUri": model.image_uri})
        return containers

    def deploy(self, initial_instance_count: int = 1, instance_type: str = "local", serializer=None,
               deserializer=None, endpoint_name: str | None = None, wait: bool = True,
               accelerator_type: str | None = None, tags=None, kms_key=None, volume_size=None,
               data_capture_config=None, **kwargs):
        """Start one endpoint serving the models in order; returns a Predictor (predictor_cls)."""
        unsupported = sorted(k for k, v in kwargs.items() if v is not None)
        if unsupported:
            raise ValidationError(f"PipelineModel.deploy() does not take {', '.join(unsupported)} yet; it takes "
                                  "initial_instance_count, instance_type, serializer, deserializer, "
                                  "endpoint_name, wait, accelerator_type and data_capture_config")
        from nbsage.serving.endpoints import deploy
        from nbsage.serving.pipelines import server_environment
        from nbsage.session import check_name, unique_name
        session = self._session()
        endpoint_name = endpoint_name or unique_name(self.name or "pipeline")
        check_name(endpoint_name, "endpoint")
        containers = self.pipeline_container_def(instance_type)
        deploy(session, endpoint_name, containers[0]["ModelDataUrl"], environment=server_environment(containers),
               instance_type=instance_type, initial_instance_count=initial_instance_count, wait=wait,
               containers=containers, accelerator_type=accelerator_type, data_capture_config=data_capture_config)
        self.endpoint_name = endpoint_name
        if self.predictor_cls is None:
            return None
        predictor = self.predictor_cls(endpoint_name, session)
        if serializer is not None or self.predictor_cls is Predictor:
            predictor.serializer = serializer or self._default_serializer()
        if deserializer is not None or self.predictor_cls is Predictor:
            predictor.deserializer = deserializer or self._default_deserializer()
        return predictor

    def _default_serializer(self):
        from nbsage.model import _default_codecs
        first = self.models[0]
        return _default_codecs(None if first.entry_point else first.algorithm)[0]

    def _default_deserializer(self):
        from nbsage.model import _default_codecs
        last = self.models[-1]
        return _default_codecs(None if last.entry_point else last.algorithm)[1]

    def transformer(self, instance_count: int, instance_type: str, strategy: str | None = None,
                    assemble_with: str | None = None, output_path: str | None = None,
                    output_kms_key: str | None = None, accept: str | None = None, env: dict | None = None,
                    max_concurrent_transforms: int | None = None, max_payload: int | None = None,
                    tags=None, volume_kms_key: str | None = None, **kwargs):
        """A Transformer running batch transforms through this pipeline (nbsage.transformer): every batch of
        records goes through the models in order, in one model server per instance staged and served as the
        pipeline's endpoint is (nbsage.serving.pipelines, nbsage.runtime.serial_pipeline). Other keywords
        are the Transformer's (backend="dask", scheduler=...)."""
        from nbsage.transformer import Transformer
        return Transformer(self._model_name_for_transform(), instance_count, instance_type, strategy=strategy,
                           assemble_with=assemble_with, output_path=output_path, output_kms_key=output_kms_key,
                           accept=accept, env=env, max_concurrent_transforms=max_concurrent_transforms,
                           max_payload=max_payload, tags=tags, volume_kms_key=volume_kms_key,
                           sagemaker_session=self._session(), **kwargs)

    def _model_name_for_transform(self) -> str:
        """CreateModel with Containers: the pipeline recorded under its name, for the Transformer to find
        (a model record with Containers is staged and served as a pipeline: nbsage.transform.servers)."""
        from nbsage.session import check_name, unique_name
        self.name = self.name or unique_name("pipeline")
        check_name(self.name, "model")
        self._session().store.put_model(self.name, {"ModelName": self.name,
                                                    "Containers": self.pipeline_container_def()})
        return self.name

    def delete_model(self) -> None:
        """Nothing to do: nbsage keeps no model resource apart from the artifacts."""

    def __repr__(self) -> str:
        return f"PipelineModel(models={len(self.models)}, name={self.name!r}, endpoint_name={self.endpoint_name!r})"
