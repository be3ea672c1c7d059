"""A job's request, typed: one small dataclass per job kind over the stored JSON.

The store keeps what SageMaker's Create*Job calls take (the CreateTrainingJob / CreateProcessingJob
shape), because DescribeTrainingJob answers with it and staging reads its channels as SageMaker
names them. Everything that decides something from it (the places' checks, the supervisors, the
job handles) reads these fields instead, parsed once here: `request_for(kind, data)` or
`TrainingRequest.from_dict(data)`. `kind` is the one way to tell a job's kind; a later kind
(transform, tuning) is one more subclass named in `KINDS`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Channel:
    """One training channel (InputDataConfig item)."""

    name: str
    uri: str
    content_type: str | None = None
    input_mode: str | None = None

    @classmethod
    def from_dict(cls, item: dict) -> "Channel":
        source = (item.get("DataSource") or {}).get("S3DataSource") or {}
        return cls(item["ChannelName"], source.get("S3Uri", ""), item.get("ContentType"), item.get("InputMode"))


@dataclass(frozen=True)
class Checkpoint:
    """CheckpointConfig: where checkpoints are mirrored, and the folder in the job they come from."""

    uri: str
    local_path: str | None = None


@dataclass(frozen=True)
class JobRequest:
    """What every kind of job has: a name, instances, an environment and a runtime limit."""

    kind: ClassVar[str] = ""
    data: dict = field(repr=False)  # the stored JSON, as recorded (staging reads the channels in it)
    name: str = ""
    instance_count: int = 1
    instance_type: str = "local"
    environment: dict = field(default_factory=dict)
    max_runtime: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "JobRequest":
        raise NotImplementedError

    @classmethod
    def from_json(cls, text: str) -> "JobRequest":
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        return self.data

    # the request's fields that Describe*Job repeats, with SageMaker's value for an absent one
    DESCRIBED: ClassVar[dict] = {}

    def described(self) -> dict:
        """The request's own fields as Describe*Job answers with them."""
        return {k: self.data.get(k, default) for k, default in self.DESCRIBED.items()}

    def artifact_uris(self) -> list[str]:
        """Every URI the job writes to or reads from besides the artifact root (for a place's checks)."""
        return []

    @property
    def is_multi_host(self) -> bool:
        return self.instance_count > 1


@dataclass(frozen=True)
class TrainingRequest(JobRequest):
    """CreateTrainingJob."""

    kind: ClassVar[str] = "training"
    DESCRIBED: ClassVar[dict] = {
        "HyperParameters": {}, "RoleArn": "", "AlgorithmSpecification": {}, "InputDataConfig": [],
        "OutputDataConfig": {}, "ResourceConfig": {}, "StoppingCondition": {}, "CheckpointConfig": None,
        "EnableManagedSpotTraining": False, "Environment": {}}
    channels: tuple[Channel, ...] = ()
    output_path: str = ""
    checkpoint: Checkpoint | None = None
    managed_spot: bool = False
    max_wait: float | None = None
    metric_definitions: list | None = None
    source_dir: str | None = None  # the script's folder (script mode), shipped with the job
    hyperparameters: dict = field(default_factory=dict)
    image: str | None = None  # the built-in algorithm's name, or the script's image

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingRequest":
        resources = data.get("ResourceConfig") or {}
        stopping = data.get("StoppingCondition") or {}
        spec = data.get("AlgorithmSpecification") or {}
        ckpt = data.get("CheckpointConfig") or {}
        return cls(
            data=data, name=data.get("TrainingJobName", ""),
            instance_count=int(resources.get("InstanceCount", 1) or 1),
            instance_type=resources.get("InstanceType") or "local",
            environment=dict(data.get("Environment") or {}),
            max_runtime=stopping.get("MaxRuntimeInSeconds"),
            channels=tuple(Channel.from_dict(c) for c in data.get("InputDataConfig") or []),
            output_path=(data.get("OutputDataConfig") or {}).get("S3OutputPath", ""),
            checkpoint=Checkpoint(ckpt["S3Uri"], ckpt.get("LocalPath")) if ckpt.get("S3Uri") else None,
            managed_spot=bool(data.get("EnableManagedSpotTraining")),
            max_wait=stopping.get("MaxWaitTimeInSeconds"),
            metric_definitions=spec.get("MetricDefinitions"),
            source_dir=data.get("nbsage:SourceDir"),
            hyperparameters=dict(data.get("HyperParameters") or {}),
            image=spec.get("AlgorithmName") or spec.get("TrainingImage"),
        )

    def artifact_uris(self) -> list[str]:
        return [self.output_path]


@dataclass(frozen=True)
class ProcessingRequest(JobRequest):
    """CreateProcessingJob."""

    kind: ClassVar[str] = "processing"
    DESCRIBED: ClassVar[dict] = {
        "ProcessingInputs": [], "ProcessingOutputConfig": {"Outputs": []}, "ProcessingResources": {},
        "StoppingCondition": {}, "AppSpecification": {}, "Environment": {}, "RoleArn": None}
    inputs: tuple[dict, ...] = ()  # ProcessingInputs items
    outputs: tuple[dict, ...] = ()  # ProcessingOutputConfig.Outputs items
    entrypoint: tuple[str, ...] = ()
    arguments: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "ProcessingRequest":
        cluster = (data.get("ProcessingResources") or {}).get("ClusterConfig") or {}
        app = data.get("AppSpecification") or {}
        arguments = app.get("ContainerArguments")
        return cls(
            data=data, name=data.get("ProcessingJobName", ""),
            instance_count=int(cluster.get("InstanceCount", 1) or 1),
            instance_type=cluster.get("InstanceType") or "local",
            environment=dict(data.get("Environment") or {}),
            max_runtime=(data.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
            inputs=tuple(data.get("ProcessingInputs") or []),
            outputs=tuple((data.get("ProcessingOutputConfig") or {}).get("Outputs") or []),
            entrypoint=tuple(app.get("ContainerEntrypoint") or []),
            arguments=tuple(arguments) if arguments is not None else None,
        )

    def artifact_uris(self) -> list[str]:
        return ([(i.get("S3Input") or {}).get("S3Uri", "") for i in self.inputs]
                + [(o.get("S3Output") or {}).get("S3Uri", "") for o in self.outputs])


@dataclass(frozen=True)
class TuningRequest(JobRequest):
    """CreateHyperParameterTuningJob: the search (HyperParameterTuningJobConfig), the trials' training
    request (TrainingJobDefinition, a CreateTrainingJob request less its name) and the place the trials
    run on (`nbsage:Place`, `nbsage:PlaceOptions`)."""

    kind: ClassVar[str] = "tuning"
    DESCRIBED: ClassVar[dict] = {"HyperParameterTuningJobConfig": {}, "TrainingJobDefinition": {},
                                 "WarmStartConfig": None}
    config: dict = field(default_factory=dict)
    definition: dict = field(default_factory=dict)
    place: str = "local"
    place_options: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "TuningRequest":
        definition = data.get("TrainingJobDefinition") or {}
        resources = definition.get("ResourceConfig") or {}
        return cls(data=data, name=data.get("HyperParameterTuningJobName", ""),
                   instance_count=int(resources.get("InstanceCount", 1) or 1),
                   instance_type=resources.get("InstanceType") or "local",
                   config=data.get("HyperParameterTuningJobConfig") or {}, definition=definition,
                   place=data.get("nbsage:Place") or "local", place_options=data.get("nbsage:PlaceOptions") or {})

    def artifact_uris(self) -> list[str]:
        return [(self.definition.get("OutputDataConfig") or {}).get("S3OutputPath", "")]


@dataclass(frozen=True)
class TransformRequest(JobRequest):
    """CreateTransformJob (the model it runs, resolved when the job was created, under nbsage:Model)."""

    kind: ClassVar[str] = "transform"
    DESCRIBED: ClassVar[dict] = {
        "ModelName": "", "MaxConcurrentTransforms": 0, "ModelClientConfig": {}, "MaxPayloadInMB": 6,
        "BatchStrategy": None, "Environment": {}, "TransformInput": {}, "TransformOutput": {},
        "TransformResources": {}, "DataProcessing": {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None"}}
    model: dict = field(default_factory=dict)  # {"ModelDataUrl", "Algorithm", "EntryPoint", "Environment"}
    input_uri: str = ""
    data_type: str = "S3Prefix"
    output_path: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> "TransformRequest":
        resources = data.get("TransformResources") or {}
        source = ((data.get("TransformInput") or {}).get("DataSource") or {}).get("S3DataSource") or {}
        return cls(
            data=data, name=data.get("TransformJobName", ""),
            instance_count=int(resources.get("InstanceCount", 1) or 1),
            instance_type=resources.get("InstanceType") or "local",
            environment=dict(data.get("Environment") or {}),
            model=dict(data.get("nbsage:Model") or {}),
            input_uri=source.get("S3Uri", ""), data_type=source.get("S3DataType") or "S3Prefix",
            output_path=(data.get("TransformOutput") or {}).get("S3OutputPath", ""),
        )

    def artifact_uris(self) -> list[str]:
        return [self.input_uri, self.output_path, self.model.get("ModelDataUrl", ""),
                *(c.get("ModelDataUrl", "") for c in self.model.get("Containers") or ())]


@dataclass(frozen=True)
class CompilationRequest(JobRequest):
    """CreateCompilationJob (nbsage.compilation.job)."""

    kind: ClassVar[str] = "compilation"
    DESCRIBED: ClassVar[dict] = {"InputConfig": {}, "OutputConfig": {}, "StoppingCondition": {}, "RoleArn": None}

    @classmethod
    def from_dict(cls, data: dict) -> "CompilationRequest":
        return cls(data=data, name=data.get("CompilationJobName", ""),
                   max_runtime=(data.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"))


KINDS: dict[str, type[JobRequest]] = {"training": TrainingRequest, "processing": ProcessingRequest,
                                      "tuning": TuningRequest, "transform": TransformRequest,
                                      "compilation": CompilationRequest}


def request_for(kind: str, data: dict | str) -> JobRequest:
    """The typed request of a job of `kind` from its stored JSON (text or dict)."""
    cls = KINDS.get(kind)
    if cls is None:
        from nbsage.errors import JobError
        raise JobError(f"{kind!r} is not a job kind nbsage knows; kinds are {', '.join(KINDS)}")
    return cls.from_dict(json.loads(data) if isinstance(data, str) else data)


def request_of(job: dict) -> JobRequest:
    """The typed request of a job's record."""
    return request_for(job["kind"], job["request"])
