"""Compilation jobs: CreateCompilationJob / DescribeCompilationJob, recorded in the store (kind 'compilation').

A compilation runs where it is asked for, in the calling process (converting a model takes seconds):
the model.tar.gz is unpacked, the algorithm's converter writes model.onnx, the compiled handler is
loaded and checked against the native model on rows drawn from the model itself (the parity goes into
the description), and a new model.tar.gz holding the original files, model.onnx and the manifest is
written to `<output_path>/model-<target>.tar.gz` (Neo's naming). A model that cannot be compiled ends
the job Failed with the reason, which the call raises as a CompilationError.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from nbsage.arns import arn, execution_role
from nbsage.compilation import MANIFEST, CompilationError, check_framework, check_target, converter
from nbsage.job import Job
from nbsage.store.metadata import iso

KIND = "compilation"
STATUS = {"InProgress": "INPROGRESS", "Completed": "COMPLETED", "Failed": "FAILED", "Stopping": "STOPPING",
          "Stopped": "STOPPED"}
# the largest |compiled - native| a compiled model may show on the parity rows
TOLERANCE = {"xgboost": 1e-5, "linear-learner": 1e-9, "blazingtext": 1e-5, "deepar": 1e-4,
             "object-detection": 1e-4}


def parse_input_shape(input_shape) -> dict | None:
    """DataInputConfig: a dict of input name -> shape, or its JSON text (as the SDK takes it)."""
    if input_shape is None or input_shape == "":
        return None
    if isinstance(input_shape, str):
        try:
            input_shape = json.loads(input_shape)
        except ValueError:
            raise CompilationError(f"input_shape {input_shape!r} is not JSON such as '{{\"data\": [1, 30]}}'") from None
    if not isinstance(input_shape, dict) or not all(isinstance(v, (list, tuple)) for v in input_shape.values()):
        raise CompilationError(f"input_shape {input_shape!r} is not a dict of input name -> shape, "
                               "such as {'data': [1, 30]}")
    return {str(k): [int(x) for x in v] for k, v in input_shape.items()}


def compile_model(session, model_data: str, algorithm: str | None, target_instance_family: str, input_shape=None,
                  output_path: str | None = None, framework: str | None = None, framework_version: str | None = None,
                  job_name: str | None = None, role: str | None = None, compile_max_run: int = 15 * 60,
                  model_hint: str = "") -> "CompilationJob":
    """Record and run a compilation job; returns its handle once it has Completed (else raises)."""
    from nbsage.session import check_name, unique_name
    target = check_target(target_instance_family)
    module = converter(algorithm, model_hint)
    check_framework(algorithm, framework)
    shape = parse_input_shape(input_shape)
    job_name = check_name(job_name) if job_name else unique_name(f"{algorithm}-compiled")
    output_path = (output_path or session.artifacts.url("compilation", job_name)).rstrip("/")
    request = {
        "CompilationJobName": job_name,
        "RoleArn": role or execution_role(),
        "InputConfig": {"S3Uri": str(model_data), "DataInputConfig": json.dumps(shape) if shape else None,
                        "Framework": (framework or algorithm).upper(), "FrameworkVersion": framework_version},
        "OutputConfig": {"S3OutputLocation": output_path, "TargetDevice": target},
        "StoppingCondition": {"MaxRuntimeInSeconds": int(compile_max_run)},
        "nbsage:Algorithm": algorithm,
    }
    session.store.create_job(job_name, request, "local", None, kind=KIND)
    session.store.update_job(job_name, start_time=time.time())
    try:
        artifact, report = _run(session, module, algorithm, str(model_data), shape, output_path, target)
    except Exception as exc:  # noqa: BLE001 - every failure ends the job with its reason
        reason = str(exc) if isinstance(exc, CompilationError) else f"{type(exc).__name__}: {exc}"
        session.store.set_status(job_name, "Failed", "Failed", reason, failure_reason=reason)
        raise CompilationError(f"compilation job {job_name!r} failed: {reason}") from None
    session.store.set_status(job_name, "Completed", "Completed", "the model was compiled to ONNX",
                             model_artifacts=artifact, output_artifacts=json.dumps(report))
    return CompilationJob(job_name, session)


def _run(session, module, algorithm, model_data, shape, output_path, target) -> tuple[str, dict]:
    from nbsage.runtime.packaging import pack_dir, unpack
    from nbsage.store.artifacts import is_local, local_path
    with tempfile.TemporaryDirectory(prefix="nbsage-compile-") as tmp:
        archive, out_dir = Path(tmp) / "model.tar.gz", Path(tmp) / "compiled"
        source = local_path(model_data) if is_local(model_data) else model_data
        if is_local(model_data) and Path(source).expanduser().is_dir():
            shutil.copytree(Path(source).expanduser(), out_dir)
        else:
            session.artifacts.get_file(str(Path(source).expanduser()) if is_local(model_data) else source, archive)
            unpack(archive, out_dir)
            archive.unlink()
        started = time.perf_counter()
        part = module.convert(out_dir, out_dir, shape)
        manifest = {"Framework": "ONNX", "Algorithm": algorithm, "TargetDevice": target, "Model": part}
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
        compile_seconds = time.perf_counter() - started
        report = parity(module, algorithm, out_dir)
        report["CompileSeconds"] = round(compile_seconds, 3)
        manifest["Parity"] = report
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
        pack_dir(out_dir, archive)
        artifact = session.artifacts.put_file(archive, f"{output_path}/model-{target}.tar.gz")
    return artifact, report


def parity(module, algorithm: str, model_dir: Path) -> dict:
    """The compiled handler against the native model on rows drawn from the model; a compiled model that
    differs by more than the algorithm's tolerance is refused, naming the difference."""
    from nbsage.compilation import runtime
    rows = module.parity_rows(model_dir)
    native = np.asarray(module.native_predictions(model_dir, rows), dtype=np.float64)
    compiled = np.asarray(module.compiled_predictions(runtime.load(model_dir, algorithm), rows), dtype=np.float64)
    diff = float(np.max(np.abs(compiled - native))) if native.size else 0.0
    scale = max(1.0, float(np.max(np.abs(native)))) if native.size else 1.0
    tolerance = TOLERANCE[algorithm] * scale
    if not diff <= tolerance:
        raise CompilationError(f"the ONNX model's outputs differ from the native {algorithm} model's by up to "
                               f"{diff:.3g} (more than {tolerance:.3g}) on {len(native)} rows drawn from the model: "
                               "this model is not supported by the compiler")
    return {"Rows": int(len(native)), "MaxAbsDiff": diff, "Tolerance": tolerance}


class CompilationJob(Job):
    """A compilation job in the store: describe() in DescribeCompilationJob's shape."""

    kind = KIND
    status_field = "CompilationJobStatus"

    def _record(self) -> dict:
        return self._store.get_job(self.name)  # runs in the caller: no process for a place to check

    def describe(self) -> dict:
        """DescribeCompilationJob."""
        job = self._record()
        request = json.loads(job["request"])
        desc = {
            "CompilationJobName": self.name,
            "CompilationJobArn": arn("compilation-job", self.name),
            "CompilationJobStatus": STATUS.get(job["status"], job["status"].upper()),
            "CompilationStartTime": iso(job["start_time"]),
            "CompilationEndTime": iso(job["end_time"]),
            "StoppingCondition": request.get("StoppingCondition", {}),
            "CreationTime": iso(job["creation_time"]),
            "LastModifiedTime": iso(job["last_modified"]),
            "RoleArn": request.get("RoleArn"),
            "InputConfig": request.get("InputConfig", {}),
            "OutputConfig": request.get("OutputConfig", {}),
            "ModelArtifacts": {"S3ModelArtifacts": job["model_artifacts"]} if job["model_artifacts"] else {},
            "InferenceImage": f"nbsage-onnxruntime/{request.get('nbsage:Algorithm')}",
        }
        if job["failure_reason"]:
            desc["FailureReason"] = job["failure_reason"]
        if job["output_artifacts"]:
            desc["nbsage:Parity"] = json.loads(job["output_artifacts"])
        return desc

    @property
    def model_data(self) -> str | None:
        return self._record()["model_artifacts"]

    def wait(self, logs: bool = True, raise_on_failure: bool = True) -> dict:
        """A compilation has ended when its call returns: the description, or the failure raised."""
        desc = self.describe()
        if raise_on_failure and desc["CompilationJobStatus"] != "COMPLETED":
            raise CompilationError(f"compilation job {self.name!r} ended {desc['CompilationJobStatus']}: "
                                   f"{desc.get('FailureReason') or 'no reason recorded'}")
        return desc
