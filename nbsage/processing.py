"""Processing jobs, shaped like the SageMaker Python SDK v2 `sagemaker.processing` module.

`ScriptProcessor(command=["python3"]).run(code="preprocess.py", inputs=[ProcessingInput(...)],
outputs=[ProcessingOutput(...)])` runs a processing script written for SageMaker unchanged: it reads
`/opt/ml/processing/input/...` and writes `/opt/ml/processing/output/...` as in a SageMaker
container (on Linux the job gets its own view of /opt/ml; see nbsage.runtime.processing for how,
and for the fallback where that is not possible). `Processor(entrypoint=[...])` runs any command.

Differences from SageMaker, on purpose: no container image is run (`image_uri` is recorded, and
the command runs with this environment's interpreter first on PATH, so `python3` has the kernel's
packages); a source that is a local path is read in place rather than uploaded first; an output
without a destination goes to `<artifact root>/processing/<job>/output/<name>`; `run()` returns the
ProcessingJob (the SDK returns None) and, like nbsage's training jobs, `wait()` raises JobFailed
when the job ends Failed or Stopped.
"""
from __future__ import annotations

import copy
import os
import shlex
from pathlib import Path

from nbsage.arns import arn, execution_role
from nbsage.errors import ValidationError
from nbsage.job import Job, WatchedJob, submit
from nbsage.runtime.processing import check_local_path
from nbsage.session import Session, check_name, unique_name
from nbsage.store.artifacts import is_local, local_path
from nbsage.store.metadata import iso
from nbsage.store.requests import ProcessingRequest

CODE_DIR = "/opt/ml/processing/input/code"
MAX_RUNTIME_LIMIT = 777600  # 9 days, SageMaker's limit
INPUT_MODES = ("File",)
UPLOAD_MODES = ("Continuous", "EndOfJob")
DATA_TYPES = ("S3Prefix",)
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")


def _choice(value, accepted: tuple, what: str, note: str = "") -> str:
    if value not in accepted:
        raise ValidationError(f"{what} {value!r} is not supported; use {' or '.join(map(repr, accepted))}{note}")
    return value


class ProcessingInput:
    """One input of a processing job: `source` (a path, a folder or an fsspec URL) copied to
    `destination` (a folder under /opt/ml/processing/) before the job starts."""

    def __init__(self, source=None, destination: str | None = None, input_name: str | None = None,
                 s3_data_type: str = "S3Prefix", s3_input_mode: str = "File",
                 s3_data_distribution_type: str = "FullyReplicated", s3_compression_type: str = "None",
                 s3_input=None, dataset_definition=None, app_managed: bool = False):
        self.source = source
        self.destination = destination
        self.input_name = input_name
        self.s3_data_type = s3_data_type
        self.s3_input_mode = s3_input_mode
        self.s3_data_distribution_type = s3_data_distribution_type
        self.s3_compression_type = s3_compression_type
        self.s3_input = s3_input
        self.dataset_definition = dataset_definition
        self.app_managed = app_managed

    def _to_request_dict(self) -> dict:
        """The ProcessingInputs entry (CreateProcessingJob shape)."""
        what = f"ProcessingInput {self.input_name!r}"
        if self.dataset_definition is not None:
            raise ValidationError(f"{what}: dataset_definition (Athena/Redshift) is not supported here; "
                                  "give a source path or URL")
        if self.s3_input is not None:  # a dict in API shape, or the SDK's S3Input object
            s3 = dict(self.s3_input) if isinstance(self.s3_input, dict) else self.s3_input._to_request_dict()
            if "S3Uri" not in s3:
                raise ValidationError(f"{what}: s3_input needs an S3Uri")
            s3["S3Uri"] = _source_uri(s3["S3Uri"], what)
        else:
            if self.source is None:
                raise ValidationError(f"{what}: source is required (a local path, a folder or an fsspec URL)")
            s3 = {"S3Uri": _source_uri(self.source, what), "LocalPath": self.destination,
                  "S3DataType": self.s3_data_type, "S3InputMode": self.s3_input_mode,
                  "S3DataDistributionType": self.s3_data_distribution_type,
                  "S3CompressionType": self.s3_compression_type}
        s3["LocalPath"] = check_local_path(s3.get("LocalPath") or "", f"{what} destination")
        _choice(s3.get("S3DataType", "S3Prefix"), DATA_TYPES, f"{what}: s3_data_type",
                " (manifest files are not read here)")
        _choice(s3.get("S3InputMode", "File"), INPUT_MODES, f"{what}: s3_input_mode",
                " (Pipe mode is not available for processing jobs on this place)")
        _choice(s3.get("S3DataDistributionType", "FullyReplicated"), DISTRIBUTIONS,
                f"{what}: s3_data_distribution_type")
        _choice(s3.get("S3CompressionType", "None"), ("None",), f"{what}: s3_compression_type",
                " (SageMaker accepts Gzip only with Pipe mode)")
        return {"InputName": self.input_name, "AppManaged": bool(self.app_managed), "S3Input": s3}

    def __repr__(self) -> str:
        return f"ProcessingInput({self.source!r}, {self.destination!r}, input_name={self.input_name!r})"


class ProcessingOutput:
    """One output of a processing job: the files the job writes under `source` (a folder under
    /opt/ml/processing/) are uploaded to `destination` — at the end (EndOfJob) or while the job
    runs (Continuous)."""

    def __init__(self, source: str | None = None, destination: str | None = None,
                 output_name: str | None = None, s3_upload_mode: str = "EndOfJob", app_managed: bool = False,
                 feature_store_output=None):
        self.source = source
        self.destination = destination
        self.output_name = output_name
        self.s3_upload_mode = s3_upload_mode
        self.app_managed = app_managed
        self.feature_store_output = feature_store_output

    def _to_request_dict(self) -> dict:
        what = f"ProcessingOutput {self.output_name!r}"
        if self.feature_store_output is not None:
            raise ValidationError(f"{what}: feature_store_output is not supported here; give a destination")
        _choice(self.s3_upload_mode, UPLOAD_MODES, f"{what}: s3_upload_mode")
        destination = self.destination
        if is_local(str(destination)):
            destination = str(Path(local_path(str(destination))).expanduser().resolve())
        return {"OutputName": self.output_name, "AppManaged": bool(self.app_managed),
                "S3Output": {"S3Uri": destination, "LocalPath": check_local_path(self.source or "", f"{what} source"),
                             "S3UploadMode": self.s3_upload_mode}}

    def __repr__(self) -> str:
        return (f"ProcessingOutput({self.source!r}, {self.destination!r}, output_name={self.output_name!r}, "
                f"s3_upload_mode={self.s3_upload_mode!r})")


def _source_uri(source, what: str) -> str:
    """A local source as an absolute path (it must exist now); a URL as given."""
    source = os.fspath(source) if isinstance(source, os.PathLike) else source
    if not isinstance(source, str):
        raise ValidationError(f"{what}: source must be a path or a URL, not {type(source).__name__}")
    if not is_local(source):
        return source
    path = Path(local_path(source)).expanduser()
    if not path.exists():
        raise ValidationError(f"{what}: source {source} does not exist")
    return str(path.resolve())


class Processor:
    """Runs a command as a processing job, like sagemaker.processing.Processor.

    nbsage runs no container images: `entrypoint` (the container's ENTRYPOINT) says what to run.
    """

    def __init__(self, role: str | None = None, image_uri: str | None = None, instance_count: int = 1,
                 instance_type: str = "local", entrypoint: list[str] | None = None, volume_size_in_gb: int = 30,
                 volume_kms_key=None, output_kms_key=None, max_runtime_in_seconds: int | None = None,
                 base_job_name: str | None = None, sagemaker_session: Session | None = None,
                 env: dict | None = None, tags: list | None = None, network_config=None,
                 command: list[str] | None = None, backend: str = "local", framework_version: str | None = None,
                 py_version: str | None = None, **kwargs):
        from nbsage import image_uris, sdk_arguments
        self.sdk_options = sdk_arguments.recorded(kwargs, sdk_arguments.PROCESSOR_RECORDED)
        self.sdk_options.update({k: v for k, v in (("volume_kms_key", volume_kms_key),
                                                   ("output_kms_key", output_kms_key)) if v is not None})
        accepted = sdk_arguments.accepted_keywords(type(self), sdk_arguments.PROCESSOR_RECORDED)
        sdk_arguments.refuse_unknown(f"{type(self).__name__}()", kwargs, accepted)
        self.framework_version, self.py_version = framework_version, py_version
        framework, version = image_uris.image_version(image_uri or "")
        image_uris.check_version(getattr(self, "_framework", None) or framework, framework_version or version,
                                 f"{type(self).__name__}({image_uri or ''})")
        self.role = role
        self.image_uri = image_uri
        self.instance_count = int(instance_count)
        self.instance_type = instance_type
        self.entrypoint = list(entrypoint) if entrypoint else (list(command) if command else None)
        self.volume_size_in_gb = volume_size_in_gb
        self.max_runtime_in_seconds = max_runtime_in_seconds
        self.base_job_name = base_job_name
        self.sagemaker_session = sagemaker_session or Session.default()
        self.env = dict(env or {})
        self.tags = tags or []
        self.network_config = network_config
        self.backend = backend
        self.jobs: list[ProcessingJob] = []
        self.latest_job: ProcessingJob | None = None
        self.arguments: list[str] | None = None
        self._check()

    def _check(self) -> None:
        if self.instance_count != 1:
            raise ValidationError(f"instance_count={self.instance_count}: processing jobs run on one instance "
                                  "on this place; use instance_count=1")
        if self.max_runtime_in_seconds is not None and not 1 <= int(self.max_runtime_in_seconds) <= MAX_RUNTIME_LIMIT:
            raise ValidationError(f"max_runtime_in_seconds={self.max_runtime_in_seconds} is outside "
                                  f"1..{MAX_RUNTIME_LIMIT}")
        if len(self.env) > 100 or any(len(str(k)) > 256 or len(str(v)) > 256 for k, v in self.env.items()):
            raise ValidationError("env: at most 100 variables, each name and value at most 256 characters")

    # ---- the request ----------------------------------------------------------------------------
    def _normalize_inputs(self, inputs) -> list[dict]:
        entries, names = [], set()
        for i, item in enumerate(inputs or [], start=1):
            if not isinstance(item, ProcessingInput):
                raise ValidationError(f"inputs[{i - 1}] is a {type(item).__name__}; give ProcessingInput objects")
            item = copy.copy(item)  # the caller's object stays as given, ready for the next run
            if item.input_name is None:
                item.input_name = f"input-{i}"
            entry = item._to_request_dict()
            entry["S3Input"]["S3Uri"] = self.sagemaker_session.resolve_uri(entry["S3Input"]["S3Uri"])
            if entry["InputName"] in names:
                raise ValidationError(f"two processing inputs are named {entry['InputName']!r}; names must be unique")
            names.add(entry["InputName"])
            entries.append(entry)
        _check_distinct_paths([e["S3Input"]["LocalPath"] for e in entries], "inputs")
        return entries

    def _normalize_outputs(self, outputs, job_name: str) -> list[dict]:
        entries, names = [], set()
        for i, item in enumerate(outputs or [], start=1):
            if not isinstance(item, ProcessingOutput):
                raise ValidationError(f"outputs[{i - 1}] is a {type(item).__name__}; give ProcessingOutput objects")
            item = copy.copy(item)
            if item.output_name is None:
                item.output_name = f"output-{i}"
            if item.output_name in names:
                raise ValidationError(f"two processing outputs are named {item.output_name!r}; names must be unique")
            names.add(item.output_name)
            if item.destination is None:
                item.destination = self.sagemaker_session.artifacts.url("processing", job_name, "output",
                                                                        item.output_name)
            entry = item._to_request_dict()
            entry["S3Output"]["S3Uri"] = self.sagemaker_session.resolve_uri(entry["S3Output"]["S3Uri"])
            entries.append(entry)
        _check_distinct_paths([e["S3Output"]["LocalPath"] for e in entries], "outputs")
        return entries

    def _request(self, job_name: str, inputs, outputs, arguments, entrypoint) -> dict:
        if not entrypoint:
            raise ValidationError("Processor needs entrypoint=[...] (the command to run, e.g. "
                                  "['python3', '/opt/ml/processing/input/code/run.py']): nbsage runs no container "
                                  "images, so an image's own ENTRYPOINT is not known; "
                                  "ScriptProcessor(command=['python3']).run(code='run.py') builds it for you")
        arguments = [str(a) for a in arguments] if arguments is not None else None
        if arguments is not None and (len(arguments) > 100 or any(len(a) > 256 for a in arguments)):
            raise ValidationError("arguments: at most 100 items, each at most 256 characters")
        app = {"ImageUri": self.image_uri or "nbsage-local", "ContainerEntrypoint": [str(e) for e in entrypoint]}
        if arguments:
            app["ContainerArguments"] = arguments
        request = {
            "ProcessingJobName": job_name,
            "ProcessingInputs": self._normalize_inputs(inputs),
            "ProcessingOutputConfig": {"Outputs": self._normalize_outputs(outputs, job_name)},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": self.instance_count,
                                                      "InstanceType": self.instance_type,
                                                      "VolumeSizeInGB": self.volume_size_in_gb}},
            "StoppingCondition": {"MaxRuntimeInSeconds": int(self.max_runtime_in_seconds or 86400)},
            "AppSpecification": app,
            "Environment": {str(k): str(v) for k, v in self.env.items()},
            "RoleArn": self.role or execution_role(),
            "Tags": self.tags,
        }
        if self.network_config is not None:
            request["NetworkConfig"] = self.network_config
        return request

    def _job_name(self, job_name: str | None, default_base: str) -> str:
        return check_name(job_name) if job_name else unique_name(self.base_job_name or default_base)

    # ---- actions ----------------------------------------------------------------------------------
    def run(self, inputs=None, outputs=None, arguments=None, wait: bool = True, logs: bool = True,
            job_name: str | None = None, experiment_config=None, kms_key=None) -> "ProcessingJob":
        """Record and start a processing job; with wait=True follow it until it ends."""
        name = self._job_name(job_name, "processing")
        request = self._request(name, inputs, outputs, arguments, self.entrypoint)
        return self._start(request, wait, logs)

    def _start(self, request: dict, wait: bool, logs: bool) -> "ProcessingJob":
        """CreateProcessingJob with the request built from the SDK's arguments, then follow it."""
        typed = ProcessingRequest.from_dict(request)
        submit(self.sagemaker_session, typed, self.backend)
        job = ProcessingJob(typed.name, self.sagemaker_session)
        self.jobs.append(job)
        self.latest_job = job
        self.arguments = list(typed.arguments) if typed.arguments is not None else None
        if wait:
            job.wait(logs=bool(logs) and logs != "None")
        return job


class ScriptProcessor(Processor):
    """Runs a script as a processing job, like sagemaker.processing.ScriptProcessor: the script is
    an input named `code` at /opt/ml/processing/input/code/, run as `command + [script] + arguments`."""

    def __init__(self, role: str | None = None, image_uri: str | None = None, command: list[str] | None = None,
                 instance_count: int = 1, instance_type: str = "local", **kwargs):
        kwargs.pop("entrypoint", None)
        super().__init__(role=role, image_uri=image_uri, instance_count=instance_count,
                         instance_type=instance_type, **kwargs)
        self.command = list(command) if command else ["python3"]

    def run(self, code: str | None = None, inputs=None, outputs=None, arguments=None, wait: bool = True,
            logs: bool = True, job_name: str | None = None, experiment_config=None, kms_key=None) -> "ProcessingJob":
        """Record and start the script `code` (a local file or a URL) as a processing job."""
        if not code:
            raise ValidationError("ScriptProcessor.run needs code=: the path or URL of the script to run")
        code = os.fspath(code)
        script = Path(local_path(code)).name if is_local(code) else code.rstrip("/").rsplit("/", 1)[-1]
        name = self._job_name(job_name, Path(script).stem)
        inputs = list(inputs or [])
        if any(i.input_name == "code" for i in inputs if isinstance(i, ProcessingInput)):
            raise ValidationError("an input is named 'code'; ScriptProcessor uses that name for the script")
        path = Path(local_path(code)).expanduser() if is_local(code) else None
        if path is not None and not path.is_file():
            raise ValidationError(f"code: {code} is not a file; give the path of the script to run")
        inputs.append(ProcessingInput(source=code, destination=CODE_DIR, input_name="code"))
        request = self._request(name, inputs, outputs, arguments, self.command + [f"{CODE_DIR}/{script}"])
        if path is not None:
            # a copy in the artifact store, as the SDK uploads the code: the job stays reproducible
            artifacts = self.sagemaker_session.artifacts
            request["ProcessingInputs"][-1]["S3Input"]["S3Uri"] = artifacts.put_file(
                path, artifacts.url("processing", name, "input", "code", script))
        return self._start(request, wait, logs)


def _check_distinct_paths(paths: list[str], what: str) -> None:
    seen = set()
    for p in paths:
        if p in seen:
            raise ValidationError(f"two {what} use the same path {p}; each needs its own folder")
        seen.add(p)


class ProcessingJob(Job):
    """A processing job in the store: describe (DescribeProcessingJob shape), wait, logs, stop (nbsage.job)."""

    kind = "processing"
    status_field = "ProcessingJobStatus"

    def __init__(self, name: str, session: Session | None = None):
        super().__init__(name, session)
        self.sagemaker_session = self.session

    @classmethod
    def from_processing_name(cls, sagemaker_session: Session | None, processing_job_name: str) -> "ProcessingJob":
        """The SDK's way to get a handle on an existing job."""
        return cls(processing_job_name, sagemaker_session)

    def describe(self) -> dict:
        """DescribeProcessingJob."""
        from nbsage.backends.processing_job import read_outcome
        job = self._record()
        outcome = read_outcome(job["output_artifacts"])
        desc = {
            "ProcessingJobName": self.name,
            "ProcessingJobArn": arn("processing-job", self.name),
            "ProcessingJobStatus": job["status"],
            **ProcessingRequest.from_json(job["request"]).described(),
            "CreationTime": iso(job["creation_time"]),
            "ProcessingStartTime": iso(job["start_time"]),
            "ProcessingEndTime": iso(job["end_time"]),
            "LastModifiedTime": iso(job["last_modified"]),
            "nbsage:SecondaryStatus": job["secondary_status"],
            "nbsage:Backend": job["backend"],
            "nbsage:JobRoot": job["root"],
        }
        if outcome.get("ExitMessage"):
            desc["ExitMessage"] = outcome["ExitMessage"]
        if job["failure_reason"]:
            desc["FailureReason"] = job["failure_reason"]
        return desc

    @property
    def inputs(self) -> list[ProcessingInput]:
        """The inputs as ProcessingInput objects (source = the S3Uri staged)."""
        items = ProcessingRequest.from_json(self._record()["request"]).inputs
        return [ProcessingInput(i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"], i["InputName"]) for i in items]

    @property
    def outputs(self) -> list[ProcessingOutput]:
        """The outputs as ProcessingOutput objects (destination = where the files are uploaded)."""
        items = ProcessingRequest.from_json(self._record()["request"]).outputs
        return [ProcessingOutput(o["S3Output"]["LocalPath"], o["S3Output"]["S3Uri"], o["OutputName"],
                                 o["S3Output"].get("S3UploadMode", "EndOfJob")) for o in items]

    def output(self, name: str) -> str:
        """The destination URI of the output called `name`."""
        outputs = {o.output_name: o.destination for o in self.outputs}
        if name not in outputs:
            from nbsage.errors import did_you_mean
            raise ValidationError(f"processing job {self.name!r} has no output {name!r}"
                                  f"{did_you_mean(name, outputs)}; outputs are {', '.join(outputs) or 'none'}")
        return outputs[name]

    def watched(self) -> WatchedJob:
        return WatchedJob(self)

    def __repr__(self) -> str:
        desc = self.describe()
        text = f"ProcessingJob({self.name!r}, status={desc['ProcessingJobStatus']}"
        if desc.get("FailureReason"):
            text += f", reason={desc['FailureReason']!r}"
        if desc.get("ExitMessage"):
            text += f", exit_message={desc['ExitMessage']!r}"
        outputs = ", ".join(f"{o['OutputName']}={o['S3Output']['S3Uri']!r}"
                            for o in desc["ProcessingOutputConfig"].get("Outputs", []))
        return text + (f", outputs: {outputs}" if outputs else "") + ")"

    def _repr_html_(self) -> str:
        from html import escape
        desc = self.describe()
        status, secondary = desc["ProcessingJobStatus"], desc["nbsage:SecondaryStatus"]
        rows = [("Status", status + (f" ({secondary})" if secondary and secondary != status else "")),
                ("Entrypoint", " ".join(desc["AppSpecification"].get("ContainerEntrypoint") or []
                                        + (desc["AppSpecification"].get("ContainerArguments") or [])))]
        rows += [(f"Input {i['InputName']}", f"{i['S3Input']['S3Uri']} → {i['S3Input']['LocalPath']}")
                 for i in desc["ProcessingInputs"]]
        rows += [(f"Output {o['OutputName']}", f"{o['S3Output']['LocalPath']} → {o['S3Output']['S3Uri']} "
                                               f"({o['S3Output']['S3UploadMode']})")
                 for o in desc["ProcessingOutputConfig"].get("Outputs", [])]
        if desc.get("ExitMessage"):
            rows.append(("Exit message", desc["ExitMessage"]))
        if desc.get("FailureReason"):
            rows.append(("Failure reason", desc["FailureReason"]))
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>"
                       f"{escape(str(v))}</td></tr>" for k, v in rows)
        return f"<div><b>Processing job {escape(self.name)}</b><table>{body}</table></div>"


# ---- framework processors: the SDK's SKLearnProcessor and FrameworkProcessor ---------------------
class SKLearnProcessor(ScriptProcessor):
    """A ScriptProcessor for scikit-learn scripts, like sagemaker.sklearn.processing.SKLearnProcessor:
    `python3 <code> <arguments>` with this environment's scikit-learn (framework_version is
    recorded, and a major version other than the installed one is a warning)."""

    _framework = "sklearn"

    def __init__(self, framework_version: str, role: str | None = None, instance_type: str = "local",
                 instance_count: int = 1, command: list[str] | None = None, **kwargs):
        kwargs.setdefault("image_uri", f"sagemaker-scikit-learn:{framework_version}")
        super().__init__(role=role, command=command or ["python3"], instance_count=instance_count or 1,
                         instance_type=instance_type or "local", framework_version=framework_version, **kwargs)


class FrameworkProcessor(ScriptProcessor):
    """Runs a script from a source_dir as a processing job, like sagemaker.processing.FrameworkProcessor.

    The source_dir (with `dependencies` beside its files) is the input `code` at
    /opt/ml/processing/input/code/, and the job runs `cd` there, then `command + [code] + arguments`,
    as the SDK's runproc.sh does. One difference: a requirements.txt in source_dir is not installed
    (the job runs with this environment's packages; a line in the log says so).
    """

    def __init__(self, estimator_cls, framework_version: str, role: str | None = None,
                 instance_count: int = 1, instance_type: str = "local", py_version: str = "py3",
                 image_uri: str | None = None, command: list[str] | None = None, code_location: str | None = None,
                 **kwargs):
        framework = getattr(estimator_cls, "_framework", None)
        if framework is None:
            raise ValidationError(f"estimator_cls {estimator_cls!r} is not a framework estimator; give "
                                  "sagemaker.sklearn.SKLearn, sagemaker.pytorch.PyTorch or sagemaker.xgboost.XGBoost")
        self._framework = framework  # the version check (Processor) reads it
        self.estimator_cls = estimator_cls
        self.code_location = code_location
        super().__init__(role=role, image_uri=image_uri or f"{estimator_cls.image_repository}:{framework_version}",
                         command=command or ["python3"], instance_count=instance_count or 1,
                         instance_type=instance_type or "local", framework_version=framework_version,
                         py_version=py_version, **kwargs)

    def run(self, code: str | None = None, source_dir: str | None = None, dependencies: list | None = None,
            git_config=None, inputs=None, outputs=None, arguments=None, wait: bool = True, logs: bool = True,
            job_name: str | None = None, experiment_config=None, kms_key=None) -> "ProcessingJob":
        """Record and start `code` (a file in source_dir, or a local script) as a processing job."""
        from nbsage.framework import code_folder
        if not code:
            raise ValidationError("FrameworkProcessor.run needs code=: the script to run (a file in source_dir)")
        if git_config is not None:
            raise ValidationError("git_config: nbsage does not clone repositories; clone it and give "
                                  "source_dir the local folder")
        code = os.fspath(code)
        if source_dir is not None:
            folder = Path(source_dir).expanduser()
            if not (folder / code).is_file():
                raise ValidationError(f"code {code!r} was not found in source_dir {source_dir!r}")
        elif not Path(code).expanduser().is_file():
            raise ValidationError(f"code: {code} is not a file; give the path of the script to run "
                                  "(or its name inside source_dir)")
        folder = code_folder(self.sagemaker_session, code, os.fspath(source_dir) if source_dir else None,
                             dependencies)
        script = code if folder and source_dir else Path(code).name
        inputs = list(inputs or [])
        if any(i.input_name == "code" for i in inputs if isinstance(i, ProcessingInput)):
            raise ValidationError("an input is named 'code'; FrameworkProcessor uses that name for source_dir")
        source = folder if folder else str(Path(code).expanduser().resolve())
        inputs.append(ProcessingInput(source=source, destination=CODE_DIR, input_name="code"))
        name = self._job_name(job_name, Path(script).stem)
        notice = ("echo 'nbsage: requirements.txt in source_dir is not installed; the job runs with the "
                  "packages of this environment'; " if folder and (Path(folder) / "requirements.txt").is_file() else "")
        runproc = f'{notice}cd {CODE_DIR} && exec {" ".join(shlex.quote(c) for c in self.command)} ' \
                  f'{shlex.quote(script)} "$@"'
        request = self._request(name, inputs, outputs, arguments, ["/bin/sh", "-c", runproc, "runproc"])
        return self._start(request, wait, logs)
