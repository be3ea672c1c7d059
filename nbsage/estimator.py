"""Estimator: configure a training job, fit it, deploy the model — shaped like the SageMaker
Python SDK v2 `sagemaker.estimator.Estimator` (v3 moved to ModelTrainer; most notebooks use v2).

`Estimator("xgboost", hyperparameters={...})` runs a built-in algorithm;
`Estimator(entry_point="train.py", source_dir="src")` runs a SageMaker script-mode script unchanged.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nbsage.arns import execution_role
from nbsage import algorithms, image_uris, sdk_arguments
from nbsage.errors import ValidationError
from nbsage.inputs import channel_request, normalize_inputs, staging_dir_for
from nbsage.job import submit
from nbsage.session import Session, check_name, unique_name
from nbsage.store.requests import TrainingRequest
from nbsage.training_job import TrainingJob


class Estimator:
    """A training job's configuration; `fit` records and starts a job on a place.

    Takes the SDK v2's arguments in its order — `Estimator(image_uri, role, instance_count,
    instance_type, ...)` — where `image_uri` is a built-in algorithm's name (`"xgboost"`) or an
    image URI naming one (`image_uris.retrieve("xgboost", region, "1.7-1")`); nbsage's own shape
    `Estimator("xgboost", {"num_round": 50})` (hyperparameters second) works as well. SDK v1
    keywords (`train_instance_count`, ...) are mapped with the SDK's deprecation warning (see
    nbsage.sdk_arguments). Keywords for the place (`backend=`) are those it declares
    (`nbsage.places.options("kernel")`: gateway, kernel, connection_file, ...); any other keyword
    is an error naming it.
    """

    # the framework a subclass runs (sagemaker.sklearn.SKLearn sets "sklearn"): framework_version is
    # checked against that package's installed version
    _framework: str | None = None

    def __init__(self, algorithm_or_image: str | None = None, role=None, instance_count: int = 1,
                 instance_type: str = "local", *, hyperparameters: dict | None = None,
                 output_path: str | None = None, entry_point: str | None = None, source_dir: str | None = None,
                 metric_definitions: list[dict] | None = None, image_uri: str | None = None,
                 max_run: int = 86400, input_mode: str = "File",
                 base_job_name: str | None = None, sagemaker_session: Session | None = None,
                 environment: dict | None = None, checkpoint_s3_uri: str | None = None,
                 checkpoint_local_path: str | None = None, use_spot_instances: bool = False,
                 max_wait: int | None = None, tags: list | None = None, backend: str = "local",
                 volume_size: int = 30, container_log_level: int = 20, framework_version: str | None = None,
                 py_version: str | None = None, **kwargs):
        if isinstance(role, dict):  # nbsage's Estimator("xgboost", {...}): hyperparameters second
            if hyperparameters is not None:
                raise ValidationError("Estimator got hyperparameters twice (second argument and hyperparameters=)")
            role, hyperparameters = None, role
        v2 = sdk_arguments.renamed(kwargs)
        self.sdk_options = sdk_arguments.recorded(kwargs, sdk_arguments.ESTIMATOR_RECORDED)
        self.backend = backend
        self.backend_options = sdk_arguments.place_options(backend, kwargs)
        accepted = sdk_arguments.accepted_keywords(type(self), sdk_arguments.ESTIMATOR_RECORDED,
                                                   sdk_arguments.ESTIMATOR_RENAMED)
        sdk_arguments.refuse_unknown(f"{type(self).__name__}()", kwargs, accepted)
        image_uri = v2.pop("image_uri", image_uri)
        self.image = algorithm_or_image or image_uri
        self.entry_point = entry_point
        self.source_dir = source_dir
        if not self.image and not entry_point:
            raise ValidationError("Estimator needs a built-in algorithm (e.g. Estimator('xgboost', ...)) "
                                  f"or an entry_point script; built-ins are {', '.join(algorithms.names())}")
        self.algorithm = None
        if not entry_point:
            self.algorithm = algorithms.get(self.image)  # raises with did-you-mean
        self.session = sagemaker_session or Session.default()
        self._hyperparameters: dict[str, Any] = {}
        self.set_hyperparameters(**(hyperparameters or {}))
        self.instance_type = v2.pop("instance_type", instance_type) or "local"
        self.instance_count = int(v2.pop("instance_count", instance_count) or 1)
        self.output_path = output_path
        self.metric_definitions = metric_definitions
        self.role = role
        self.max_run = v2.pop("max_run", max_run)
        self.input_mode = input_mode
        self.base_job_name = base_job_name
        self.environment = environment or {}
        self.checkpoint_s3_uri = checkpoint_s3_uri
        self.checkpoint_local_path = checkpoint_local_path
        self.use_spot_instances = v2.pop("use_spot_instances", use_spot_instances)
        self.max_wait = v2.pop("max_wait", max_wait)
        self.tags = tags or []
        self.volume_size = v2.pop("volume_size", volume_size)
        self.sdk_options.update(v2)  # volume_kms_key under its v1 name
        self.container_log_level = container_log_level
        self.framework_version = framework_version
        self.py_version = py_version
        self.latest_training_job: TrainingJob | None = None
        self._check_static()
        self._check_versions()

    @property
    def sdk_image(self) -> str | None:
        """The image URI as a notebook gave it (`.../sagemaker-xgboost:1.7-1`), None for nbsage's short names."""
        return self.image if self.image and ("/" in self.image or ":" in self.image) else None

    def _check_versions(self) -> None:
        """Warn where the version asked for (in the image URI or framework_version) is not the one
        that will run here."""
        framework, version = image_uris.image_version(self.sdk_image or "")
        framework = self._framework or framework
        version = self.framework_version or version
        image_uris.check_version(framework, version, f"{type(self).__name__}({self.sdk_image or framework})")

    def _check_static(self) -> None:
        if self.instance_count < 1:
            raise ValidationError(f"instance_count must be at least 1, got {self.instance_count}")
        if not isinstance(self.max_run, int) or self.max_run < 1:
            raise ValidationError(f"max_run must be a positive number of seconds, got {self.max_run!r}")
        self._check_spot()
        if self.input_mode not in ("File", "Pipe", "FastFile"):
            raise ValidationError(f"input_mode {self.input_mode!r} is not valid; use File, Pipe or FastFile")

    def _check_entry_point(self) -> None:
        """The script must exist when the job starts (the SDK checks at fit: a notebook may write it
        with %%writefile after building the Estimator)."""
        if self.entry_point:
            src = Path(self.source_dir) if self.source_dir else None
            script = (src / self.entry_point) if src else Path(self.entry_point)
            if not script.exists():
                raise ValidationError(f"entry_point {str(script)!r} does not exist")

    def _check_spot(self) -> None:
        """StoppingCondition.MaxWaitTimeInSeconds: spot only, and at least MaxRuntimeInSeconds."""
        if self.max_wait is None:
            return
        if not self.use_spot_instances:
            raise ValidationError("max_wait (StoppingCondition.MaxWaitTimeInSeconds) applies to managed spot "
                                  "training only: set use_spot_instances=True or leave max_wait out")
        if not isinstance(self.max_wait, int) or isinstance(self.max_wait, bool) or self.max_wait < 1:
            raise ValidationError(f"max_wait must be a positive number of seconds, got {self.max_wait!r}")
        if self.max_wait < self.max_run:
            raise ValidationError(f"max_wait ({self.max_wait} s, MaxWaitTimeInSeconds) must be at least max_run "
                                  f"({self.max_run} s, MaxRuntimeInSeconds)")

    # ---- hyperparameters ------------------------------------------------------------------------
    def set_hyperparameters(self, **kwargs) -> None:
        if self.algorithm is not None:
            for name in kwargs:
                if not (name.startswith("_") or name.startswith("sagemaker_")):
                    self.algorithm.hyperparameter(name)  # unknown names fail now, with did-you-mean
        self._hyperparameters.update(kwargs)

    def hyperparameters(self) -> dict[str, str]:
        """The hyperparameters as hyperparameters.json strings (validated for built-ins)."""
        if self.algorithm is not None:
            return self.algorithm.to_strings(self._hyperparameters)
        # script mode: JSON-encoded, as the SDK does whenever source_dir/entry_point is set
        return {k: json.dumps(v) for k, v in self._hyperparameters.items()}

    # ---- the request ------------------------------------------------------------------------------
    def _request(self, job_name: str, inputs: dict) -> dict:
        self._check_spot()  # settings may have changed since __init__
        self._check_entry_point()
        staging = staging_dir_for(self.session, job_name)
        resolve = self.session.resolve_uri
        channels = [channel_request(name, value, staging, resolve) for name, value in inputs.items()]
        hps = self.hyperparameters()
        spec: dict = {"TrainingInputMode": self.input_mode}
        if self.algorithm is not None:
            self.algorithm.check_channels({c["ChannelName"]: c.get("ContentType") for c in channels})
            spec["TrainingImage"] = self.algorithm.name
            spec["MetricDefinitions"] = self.metric_definitions or []
        else:
            spec["TrainingImage"] = self.image or "script"
            spec["MetricDefinitions"] = self.metric_definitions or []
            hps.update({
                "sagemaker_program": json.dumps(Path(self.entry_point).name),
                "sagemaker_submit_directory": json.dumps(str(Path(self.source_dir or Path(self.entry_point).parent).resolve())),
                "sagemaker_container_log_level": str(self.container_log_level),
                "sagemaker_job_name": json.dumps(job_name),
                "sagemaker_region": json.dumps("local"),
            })
        request = {
            "TrainingJobName": job_name,
            "AlgorithmSpecification": spec,
            "HyperParameters": hps,
            "InputDataConfig": channels,
            # the SDK's default output path is the bucket with a trailing '/': so is ours
            "OutputDataConfig": {"S3OutputPath": resolve(self.output_path) if self.output_path
                                 else self.session.default_output_path() + "/"},
            "ResourceConfig": {"InstanceType": self.instance_type, "InstanceCount": self.instance_count,
                               "VolumeSizeInGB": self.volume_size},
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_run},
            "EnableManagedSpotTraining": bool(self.use_spot_instances),
            "Environment": {k: str(v) for k, v in self.environment.items()},
            "RoleArn": self.role or execution_role(),
            "Tags": self.tags,
        }
        if self.max_wait:
            request["StoppingCondition"]["MaxWaitTimeInSeconds"] = self.max_wait
        if self.checkpoint_s3_uri:
            request["CheckpointConfig"] = {"S3Uri": resolve(self.checkpoint_s3_uri),
                                           "LocalPath": self.checkpoint_local_path or "/opt/ml/checkpoints/"}
        if self.entry_point:
            source = self.source_dir or self.entry_point
            request["nbsage:SourceDir"] = str(Path(source).resolve())
        # what the notebook asked for, kept with the job (nbsage runs its own algorithm or the
        # installed framework; see _check_versions)
        versions = {"nbsage:ImageUri": self.sdk_image, "nbsage:FrameworkVersion": self.framework_version,
                    "nbsage:PyVersion": self.py_version}
        request.update({k: v for k, v in versions.items() if v})
        return request

    # ---- actions ----------------------------------------------------------------------------------
    def fit(self, inputs=None, wait: bool = True, logs: bool | str = True, job_name: str | None = None) -> TrainingJob:
        """Record and start a training job; with wait=True follow it live until it ends."""
        base = self.base_job_name or (self.algorithm.name if self.algorithm else Path(self.entry_point).stem)
        job_name = check_name(job_name) if job_name else unique_name(base)
        request = TrainingRequest.from_dict(self._request(job_name, normalize_inputs(inputs)))
        submit(self.session, request, self.backend, self.backend_options)
        self.latest_training_job = TrainingJob(job_name, self.session)
        if wait:
            self.latest_training_job.wait(logs=bool(logs) and logs != "None")
        return self.latest_training_job

    @classmethod
    def attach(cls, training_job_name: str, sagemaker_session: Session | None = None) -> "Estimator":
        """An Estimator for an existing job (its settings restored from the record)."""
        session = sagemaker_session or Session.default()
        job = TrainingJob(training_job_name, session)
        request = TrainingRequest.from_dict(job.request)
        hps = dict(request.hyperparameters)
        source = request.source_dir
        if "sagemaker_program" in hps:
            program = json.loads(hps.pop("sagemaker_program"))
            for k in [k for k in hps if k.startswith("sagemaker_")]:
                hps.pop(k)
            decoded = {}
            for k, v in hps.items():
                try:
                    decoded[k] = json.loads(v)
                except ValueError:
                    decoded[k] = v
            source_dir = source if source and Path(source).is_dir() else None
            est = cls(request.image, decoded,
                      entry_point=program if source_dir else (source or program), source_dir=source_dir,
                      sagemaker_session=session)
        else:
            with image_uris.already_checked():  # the job's versions were warned about when it was made
                est = cls(request.data.get("nbsage:ImageUri") or job.algorithm, hps, sagemaker_session=session)
        est.instance_type = request.instance_type
        est.instance_count = request.instance_count
        est.output_path = request.output_path or None
        est.metric_definitions = request.metric_definitions
        est.latest_training_job = job
        return est

    @property
    def model_data(self) -> str | None:
        """ModelArtifacts.S3ModelArtifacts of the latest job."""
        return self.latest_training_job.model_data if self.latest_training_job else None

    def create_model(self, entry_point: str | None = None, source_dir: str | None = None, **kwargs):
        from nbsage.model import Model
        job = self._completed_job()
        with image_uris.already_checked():  # this Estimator warned about its versions
            if self.algorithm is not None and entry_point is None:
                # an SDK image URI goes with the model: its Predictor gets the SDK's default codecs
                return Model(job.model_data, algorithm=self.algorithm.name, sagemaker_session=self.session,
                             image_uri=self.sdk_image, **kwargs)
            return Model(job.model_data, entry_point=entry_point or self.entry_point,
                         source_dir=source_dir or self.source_dir, sagemaker_session=self.session, **kwargs)

    def _completed_job(self) -> TrainingJob:
        job = self.latest_training_job
        if job is None:
            raise ValidationError("this Estimator has no training job yet: call fit() first, or Estimator.attach(name)")
        desc = job.describe()
        if desc["TrainingJobStatus"] == "Stopped" and desc["ModelArtifacts"]:
            return job  # stopped with the model it saved (save_model_on_termination), as SageMaker deploys it
        if desc["TrainingJobStatus"] != "Completed":
            raise ValidationError(f"training job {job.name!r} is {desc['TrainingJobStatus']}, not Completed: "
                                  "only a completed job has a model to deploy"
                                  + (f" ({desc['FailureReason']})" if desc.get("FailureReason") else ""))
        return job

    def compile_model(self, target_instance_family: str, input_shape=None, output_path: str | None = None,
                      framework: str | None = None, framework_version: str | None = None,
                      compile_max_run: int = 15 * 60, tags=None, job_name: str | None = None, **kwargs):
        """Compile the latest job's model to ONNX (nbsage.compilation); returns the compiled Model."""
        model = self.create_model().compile(
            target_instance_family, input_shape=input_shape, output_path=output_path, framework=framework,
            framework_version=framework_version, compile_max_run=compile_max_run, tags=tags,
            job_name=job_name, role=self.role, **kwargs)
        if not hasattr(self, "_compiled_models"):
            self._compiled_models = {}
        self._compiled_models[target_instance_family] = model
        return model

    def _compiled_model_for(self, instance_type: str):
        family = "_".join(instance_type.split(".")[:-1]) if instance_type.startswith("ml.") else instance_type
        compiled = getattr(self, "_compiled_models", {})
        if family not in compiled:
            made = ", ".join(compiled) or "none yet"
            raise ValidationError(f"no model was compiled for {family!r} (instance type {instance_type!r}); call "
                                  f"compile_model(target_instance_family={family!r}, ...) first (compiled for: {made})")
        return compiled[family]

    def deploy(self, initial_instance_count: int = 1, instance_type: str = "local", serializer=None,
               deserializer=None, endpoint_name: str | None = None, wait: bool = True,
               entry_point: str | None = None, source_dir: str | None = None, **kwargs):
        """Start an endpoint for the latest job's model; returns a Predictor. With use_compiled_model=True
        (as the SDK), the model compile_model made for the instance type's family (ml.c5.xlarge -> ml_c5)."""
        if kwargs.pop("use_compiled_model", False):
            model = self._compiled_model_for(instance_type)
        else:
            model = self.create_model(entry_point=entry_point, source_dir=source_dir)
        return model.deploy(initial_instance_count=initial_instance_count, instance_type=instance_type,
                            serializer=serializer, deserializer=deserializer, endpoint_name=endpoint_name,
                            wait=wait, **kwargs)

    def transformer(self, instance_count: int = 1, instance_type: str = "local", strategy: str | None = None,
                    assemble_with: str | None = None, output_path: str | None = None, output_kms_key=None,
                    accept: str | None = None, env: dict | None = None, max_concurrent_transforms: int | None = None,
                    max_payload: int | None = None, tags=None, role=None, volume_kms_key=None,
                    model_name: str | None = None, entry_point: str | None = None, **kwargs):
        """A Transformer (batch transform) for the latest job's model, recorded under the job's name
        (or `model_name`), as the SDK does."""
        model = self.create_model(entry_point=entry_point, name=model_name or self._completed_job().name)
        return model.transformer(instance_count=instance_count, instance_type=instance_type, strategy=strategy,
                                 assemble_with=assemble_with, output_path=output_path, output_kms_key=output_kms_key,
                                 accept=accept, env=env, max_concurrent_transforms=max_concurrent_transforms,
                                 max_payload=max_payload, tags=tags, volume_kms_key=volume_kms_key, **kwargs)

    def __repr__(self) -> str:
        what = self.algorithm.name if self.algorithm else f"entry_point={self.entry_point!r}"
        return f"Estimator({what}, hyperparameters={self._hyperparameters!r}, instance_type={self.instance_type!r})"
