"""Transformer: batch transform, shaped like the SageMaker Python SDK v2's `sagemaker.transformer.Transformer`.

`Transformer(model_name, instance_count=2, strategy="MultiRecord", assemble_with="Line").transform(
"data/", content_type="text/csv", split_type="Line")` runs a transform job: every input object's
records through the model, one `<object>.out` per object under `output_path`. `model_name` names a
model recorded by `model.transformer(...)` / `estimator.transformer(...)` / `PipelineModel.transformer(...)`
(CreateModel's role; a pipeline's record has Containers, served as its endpoint serves them), or a
completed training job of a built-in algorithm.

A transform job is a job like the others (nbsage.job): recorded in the store, run by a place
(`backend="local"`: InstanceCount model servers on this machine; `backend="dask"`: the input objects
spread over the workers of a Dask cluster, each running a model server), listed by `%sm_jobs
--kind transform` and `nbsage jobs --kind transform`, followed live by the notebook monitor.

Differences from the SDK, on purpose: `transform()` returns the TransformJob (the SDK returns None;
`latest_transform_job` is there too) and `wait()` raises JobFailed when the job did not complete.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from nbsage.arns import arn
from nbsage.errors import ValidationError, did_you_mean
from nbsage.job import Job, WatchedJob, submit
from nbsage.session import Session, check_name, unique_name
from nbsage.store.artifacts import is_local, local_path
from nbsage.store.metadata import iso
from nbsage.store.requests import TransformRequest
from nbsage.transform.inputs import COMPRESSION_TYPES, DATA_TYPES
from nbsage.transform.records import BATCH_STRATEGIES, SPLIT_TYPES

ASSEMBLE_WITH = ("None", "Line")
MAX_PAYLOAD_MB = 100  # SageMaker's limit, and on MaxConcurrentTransforms × MaxPayloadInMB


def _choice(value, accepted: tuple, what: str) -> str:
    if value not in accepted:
        raise ValidationError(f"{what} {value!r} is not supported; use {' or '.join(map(repr, accepted))}"
                              f"{did_you_mean(str(value), accepted)}")
    return value


def _absolute(uri: str, what: str, must_exist: bool = True) -> str:
    """A local path made absolute (the job's processes run elsewhere); URLs as given."""
    uri = os.fspath(uri)
    if not is_local(uri):
        return uri
    path = Path(local_path(uri)).expanduser().resolve()
    if must_exist and not path.exists() and not path.parent.is_dir():
        raise ValidationError(f"{what} {uri!r} does not exist; give a file, a folder or a key prefix "
                              "(or any fsspec URL, s3:// included)")
    return str(path)


def _base(model_name: str) -> str:
    """'xgboost' from a generated 'xgboost-2026-12-03-10-32-04-789' (so job names do not stack timestamps)."""
    return re.sub(r"-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3}.*$", "", model_name) or "transform"


# ---- models: what ModelName names ----------------------------------------------------------------------
def register_model(model, name: str | None = None) -> str:
    """CreateModel: record a nbsage.model.Model's container under a name; returns the name."""
    session = model._session()
    name = name or model.name or unique_name(model.algorithm or "model")
    check_name(name, "model")
    session.store.put_model(name, {
        "ModelName": name, "ModelDataUrl": model.prepare(),
        "Algorithm": None if model.entry_point else model.algorithm,
        "EntryPoint": model.server_entry_point, "Environment": dict(model.env), "ImageUri": model.image_uri})
    model.name = name
    return name


def resolve_model(session: Session, model_name: str) -> dict:
    """The container of the model called `model_name`: a recorded model, else a completed training job's."""
    config = session.store.find_model(model_name)
    if config is not None:
        return config
    from nbsage.errors import JobError
    try:
        job = session.store.get_job(model_name)
    except JobError:
        job = None
    if job is not None and job["kind"] == "training" and job["model_artifacts"]:
        from nbsage import algorithms
        from nbsage.store.requests import request_of
        image = request_of(job).image
        if image and algorithms.is_builtin(image):
            return {"ModelName": model_name, "ModelDataUrl": job["model_artifacts"],
                    "Algorithm": algorithms.canonical_name(image), "EntryPoint": None, "Environment": {}}
        raise ValidationError(f"training job {model_name!r} ran a script: its model needs the inference code; use "
                              "estimator.transformer(...) or Model(..., entry_point=...).transformer(...)")
    known = session.store.model_names()
    raise ValidationError(f"no model named {model_name!r}{did_you_mean(model_name, known)}; name a model made by "
                          "model.transformer()/estimator.transformer() or a completed training job of a built-in "
                          "algorithm" + (f" (models: {', '.join(known[:10])})" if known else ""))


class Transformer:
    """A transform job's configuration; `transform` records and starts a job on a place."""

    def __init__(self, model_name: str, instance_count: int = 1, instance_type: str = "local",
                 strategy: str | None = None, assemble_with: str | None = None, output_path: str | None = None,
                 output_kms_key: str | None = None, accept: str | None = None,
                 max_concurrent_transforms: int | None = None, max_payload: int | None = None,
                 tags: list | None = None, env: dict | None = None, base_transform_job_name: str | None = None,
                 sagemaker_session: Session | None = None, volume_kms_key: str | None = None,
                 backend: str = "local", **kwargs):
        from nbsage import sdk_arguments
        # a place's options (backend="dask", scheduler=...), checked by the place when the job is submitted;
        # any other keyword is refused now, by name, as Estimator and Model refuse theirs
        backend_options = sdk_arguments.place_options(backend, kwargs)
        sdk_arguments.refuse_unknown(f"{type(self).__name__}()", kwargs, sdk_arguments.accepted_keywords(type(self)))
        if not model_name:
            raise ValidationError("Transformer needs model_name: a model from model.transformer() or "
                                  "estimator.transformer(), or a completed training job")
        self.model_name = model_name
        self.instance_count = int(instance_count)
        self.instance_type = instance_type
        self.strategy = strategy
        self.assemble_with = assemble_with
        self.output_path = output_path
        self.output_kms_key = output_kms_key
        self.accept = accept
        self.max_concurrent_transforms = max_concurrent_transforms
        self.max_payload = max_payload
        self.tags = tags or []
        self.env = dict(env or {})
        self.base_transform_job_name = base_transform_job_name
        self.sagemaker_session = sagemaker_session or Session.default()
        self.volume_kms_key = volume_kms_key
        self.backend = backend
        self.backend_options = backend_options
        self.latest_transform_job: TransformJob | None = None
        self._current_job_name: str | None = None
        self._check()

    def _check(self) -> None:
        if self.instance_count < 1:
            raise ValidationError(f"instance_count must be at least 1, got {self.instance_count}")
        if self.strategy is not None:
            _choice(self.strategy, BATCH_STRATEGIES, "strategy")
        if self.assemble_with is not None:
            _choice(self.assemble_with, ASSEMBLE_WITH, "assemble_with")
        if self.max_payload is not None and not 0 <= float(self.max_payload) <= MAX_PAYLOAD_MB:
            raise ValidationError(f"max_payload must be between 0 and {MAX_PAYLOAD_MB} (MB), got {self.max_payload}")
        if self.max_concurrent_transforms is not None and int(self.max_concurrent_transforms) < 0:
            raise ValidationError(f"max_concurrent_transforms must be 0 or more, got {self.max_concurrent_transforms}")
        if self.max_payload and self.max_concurrent_transforms and \
                float(self.max_payload) * int(self.max_concurrent_transforms) > MAX_PAYLOAD_MB:
            raise ValidationError(f"max_concurrent_transforms × max_payload is {self.max_concurrent_transforms} × "
                                  f"{self.max_payload} MB, more than SageMaker's {MAX_PAYLOAD_MB} MB")
        if len(self.env) > 16:
            raise ValidationError(f"env has {len(self.env)} variables; a transform job takes at most 16")

    # ---- CreateTransformJob --------------------------------------------------------------------------
    def _request(self, job_name: str, data: str, data_type: str, content_type, compression_type, split_type,
                 input_filter, output_filter, join_source, model_client_config) -> dict:
        session = self.sagemaker_session
        _choice(data_type, DATA_TYPES, "data_type")
        _choice(compression_type or "None", COMPRESSION_TYPES, "compression_type")
        _choice(split_type or "None", SPLIT_TYPES, "split_type")
        if data is None or str(data) == "":
            raise ValidationError("transform() needs data: a file, a folder, a key prefix or a manifest (any fsspec "
                                  "URL, s3:// included)")
        # s3://<default bucket>/... is the artifact store's (nbsage.store.buckets), as for every SDK-shaped class
        data = session.resolve_uri(data)
        output_path = session.resolve_uri(self.output_path) if self.output_path else \
            session.artifacts.url("transform", job_name)
        output_path = _absolute(output_path, "output_path", must_exist=False)
        model = resolve_model(session, self.model_name)
        request = {
            "TransformJobName": job_name,
            "ModelName": self.model_name,
            "MaxConcurrentTransforms": int(self.max_concurrent_transforms or 0),
            "MaxPayloadInMB": self.max_payload if self.max_payload is not None else 6,
            "ModelClientConfig": dict(model_client_config or {}),
            "Environment": {str(k): str(v) for k, v in self.env.items()},
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": data_type,
                                                "S3Uri": _absolute(str(data), "data")}},
                "ContentType": content_type, "CompressionType": compression_type or "None",
                "SplitType": split_type or "None"},
            "TransformOutput": {"S3OutputPath": output_path, "Accept": self.accept,
                                "AssembleWith": self.assemble_with or "None", "KmsKeyId": self.output_kms_key},
            "TransformResources": {"InstanceType": self.instance_type, "InstanceCount": self.instance_count,
                                   "VolumeKmsKeyId": self.volume_kms_key},
            "DataProcessing": {"InputFilter": input_filter or "$", "OutputFilter": output_filter or "$",
                               "JoinSource": join_source or "None"},
            "Tags": self.tags,
            "nbsage:Model": model,
        }
        if self.strategy:
            request["BatchStrategy"] = self.strategy
        return request

    def transform(self, data, data_type: str = "S3Prefix", content_type: str | None = None,
                  compression_type: str | None = None, split_type: str | None = None, job_name: str | None = None,
                  input_filter: str | None = None, output_filter: str | None = None, join_source: str | None = None,
                  experiment_config=None, model_client_config: dict | None = None,
                  batch_data_capture_config=None, wait: bool = True, logs: bool = True) -> "TransformJob":
        """Record and start a transform job over `data`; with wait=True follow it until it ends."""
        from nbsage.transform.data_processing import DataProcessing
        from nbsage.transform.job import check_request
        from nbsage.transform.outputs import OutputPath
        if join_source is not None:
            _choice(join_source, ("Input", "None"), "join_source")
        DataProcessing.from_request({"InputFilter": input_filter, "OutputFilter": output_filter,
                                     "JoinSource": join_source})  # a filter that does not parse: refused now
        if batch_data_capture_config is not None:
            raise ValidationError("batch_data_capture_config is not supported by nbsage's batch transform yet")
        name = check_name(job_name) if job_name else unique_name(self.base_transform_job_name or _base(self.model_name))
        request = TransformRequest.from_dict(self._request(name, data, data_type, content_type, compression_type,
                                                           split_type, input_filter, output_filter, join_source,
                                                           model_client_config))
        check_request(request)
        if is_local(request.input_uri):  # a local input with nothing to transform is refused now, not as a job
            from nbsage.errors import DataError
            from nbsage.transform.inputs import list_objects
            try:
                list_objects(request.input_uri, request.data_type)
            except DataError as e:
                raise ValidationError(str(e)) from None
        if is_local(request.output_path):
            try:
                OutputPath(request.output_path, None, Path(".")).check()
            except Exception as e:
                raise ValidationError(str(e)) from None
        submit(self.sagemaker_session, request, self.backend, self.backend_options)
        job = TransformJob(name, self.sagemaker_session)
        self.latest_transform_job = job
        self._current_job_name = name
        if self.output_path is None:
            self.output_path = request.output_path
        if wait:
            job.wait(logs=bool(logs) and logs != "None")
        return job

    # ---- the latest job ------------------------------------------------------------------------------
    def _latest(self) -> "TransformJob":
        if self.latest_transform_job is None:
            raise ValidationError("this Transformer has no transform job yet: call transform() first, "
                                  "or Transformer.attach(name)")
        return self.latest_transform_job

    def wait(self, logs: bool = True) -> dict:
        """Block until the latest job ends; raise JobFailed if it did not complete."""
        return self._latest().wait(logs=logs)

    def describe(self) -> dict:
        """DescribeTransformJob of the latest job."""
        return self._latest().describe()

    def stop_transform_job(self, wait: bool = True) -> None:
        job = self._latest()
        job.stop()
        if wait:
            job.wait_quietly()

    @classmethod
    def attach(cls, transform_job_name: str, sagemaker_session: Session | None = None) -> "Transformer":
        """A Transformer for an existing transform job, configured as that job was."""
        job = TransformJob(transform_job_name, sagemaker_session)
        desc = job.describe()
        out, resources = desc["TransformOutput"], desc["TransformResources"]
        transformer = cls(desc["ModelName"], instance_count=resources.get("InstanceCount", 1),
                          instance_type=resources.get("InstanceType", "local"), strategy=desc.get("BatchStrategy"),
                          assemble_with=out.get("AssembleWith"), output_path=out.get("S3OutputPath"),
                          accept=out.get("Accept"), max_concurrent_transforms=desc.get("MaxConcurrentTransforms"),
                          max_payload=desc.get("MaxPayloadInMB"), env=desc.get("Environment"),
                          sagemaker_session=job.session, backend=desc.get("nbsage:Backend") or "local")
        transformer.latest_transform_job = job
        transformer._current_job_name = job.name
        return transformer

    def __repr__(self) -> str:
        return (f"Transformer(model_name={self.model_name!r}, instance_count={self.instance_count}, "
                f"strategy={self.strategy!r}, output_path={self.output_path!r})")


class TransformJob(Job):
    """A transform job in the store: describe (DescribeTransformJob shape), wait, logs, stop (nbsage.job)."""

    kind = "transform"
    status_field = "TransformJobStatus"

    def describe(self) -> dict:
        """DescribeTransformJob, with nbsage's progress (records and objects done) beside it."""
        from nbsage.transform.job import read_outcome
        job = self._record()
        outcome = read_outcome(job["output_artifacts"])
        request = TransformRequest.from_json(job["request"])
        desc = {
            "TransformJobName": self.name,
            "TransformJobArn": arn("transform-job", self.name),
            "TransformJobStatus": job["status"],
            **request.described(),
            "CreationTime": iso(job["creation_time"]),
            "TransformStartTime": iso(job["start_time"]),
            "TransformEndTime": iso(job["end_time"]),
            "LastModifiedTime": iso(job["last_modified"]),
            "nbsage:SecondaryStatus": job["secondary_status"],
            "nbsage:Backend": job["backend"],
            "nbsage:RecordsTransformed": outcome.get("RecordsTransformed", 0),
            "nbsage:ObjectsTransformed": outcome.get("ObjectsTransformed", 0),
            "nbsage:ObjectsFailed": outcome.get("ObjectsFailed", 0),
            "nbsage:ObjectsTotal": outcome.get("ObjectsTotal", job["progress_total"] or 0),
            "nbsage:Progress": (job["progress_step"], job["progress_total"]),
        }
        if desc.get("BatchStrategy") is None:
            desc.pop("BatchStrategy")
        if job["failure_reason"]:
            desc["FailureReason"] = job["failure_reason"]
        return desc

    @property
    def output_path(self) -> str:
        return self.describe()["TransformOutput"]["S3OutputPath"]

    def outputs(self) -> list[str]:
        """The `.out` files written (the first 1,000)."""
        from nbsage.transform.job import read_outcome
        return list(read_outcome(self._record()["output_artifacts"]).get("Outputs") or [])

    def watched(self) -> WatchedJob:
        return WatchedJob(self, _records_done)

    def __repr__(self) -> str:
        desc = self.describe()
        text = (f"TransformJob({self.name!r}, status={desc['TransformJobStatus']}, "
                f"records={desc['nbsage:RecordsTransformed']}, objects={desc['nbsage:ObjectsTransformed']}/"
                f"{desc['nbsage:ObjectsTotal']}, output_path={desc['TransformOutput'].get('S3OutputPath')!r}")
        if desc.get("FailureReason"):
            text += f", reason={desc['FailureReason']!r}"
        return text + ")"


def _records_done(desc: dict) -> list[dict]:
    """What a transform job's display ends with: records and input objects transformed."""
    return [{"MetricName": "records transformed", "Value": desc["nbsage:RecordsTransformed"]},
            {"MetricName": "objects transformed", "Value": desc["nbsage:ObjectsTransformed"]}]
