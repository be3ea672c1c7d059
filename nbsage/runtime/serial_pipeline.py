"""A serial inference pipeline served by one model server process (SageMaker's Inference Pipelines).

SageMaker runs each of a pipeline model's 2-15 containers on the same instance and passes a
request through them in order: stage k's response body and Content-Type become stage k+1's request.
Here the stages are loaded into the one model server, each from its own folder, and called in
order in memory: no extra HTTP hop, no extra serialization beyond what each stage itself does, so
an extra stage costs only its own parse, predict and format.

Headers between stages, as nbsage documents them: stage k+1's Content-Type is the Content-Type stage
k answered; an intermediate stage is asked for its own SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT when its
container sets one, else `*/*` (its own default); only the last stage gets the client's Accept. The
custom-attributes header reaches every stage; the answer's extra headers are the last stage's.

A stage that fails fails the request with its own status, and the message names the stage (its
position and model name): `pipeline stage 2 of 2 (model 'xgb', xgboost) ...`. A stage that answers a
content type the next stage cannot read is named with both types.

The layout of the model directory: `pipeline.json` holds the stages in order ({"Name", "Directory",
"Algorithm", "EntryPoint", "Environment"}); each stage's model is unpacked into its Directory.
Each stage is loaded with its container's Environment set, so a loader that reads its settings from
the environment (SAGEMAKER_INFERENCE_OUTPUT, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT) gets its own.
Two inference scripts in one process share sys.modules: helper modules of the same name in two
stages' code/ folders are a known limit (the scripts themselves may share a name).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from nbsage.errors import NBSageError, UnsupportedContentType, ValidationError

PIPELINE_FILE = "pipeline.json"
MAX_STAGES = 15  # SageMaker's limit on a pipeline model's containers
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
ANY = "*/*"


class PipelineStageError(NBSageError):
    """A stage of a serial pipeline failed; `status` is the stage's own HTTP status."""

    def __init__(self, message: str, status: int, stage: int):
        super().__init__(message)
        self.status, self.stage = status, stage


class Stage:
    """One container of the pipeline: its loaded handler and the headers it is called with."""

    def __init__(self, index: int, count: int, spec: dict, handler):
        self.index, self.count = index, count
        self.name = spec.get("Name") or f"stage-{index + 1}"
        self.what = spec.get("Algorithm") or (f"inference code {spec['EntryPoint']}" if spec.get("EntryPoint")
                                              else "inference code")
        self.handler = handler
        self.default_accept = (spec.get("Environment") or {}).get(DEFAULT_ACCEPT_ENV) or None
        self.empty_body_status = getattr(handler, "empty_body_status", 400)

    @property
    def label(self) -> str:
        return f"pipeline stage {self.index + 1} of {self.count} (model {self.name!r}, {self.what})"

    def call(self, body: bytes, content_type, accept, headers: dict) -> tuple[bytes, str, dict | None]:
        invoke_request = getattr(self.handler, "invoke_request", None)
        if invoke_request is not None:
            return invoke_request(body, content_type, accept, headers)
        out, out_type = self.handler.invoke(body, content_type, accept)
        return out, out_type, None


@contextmanager
def _environment(values: dict):
    """The container's Environment in os.environ while its stage loads, then the server's again."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({str(k): str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class SerialPipelineHandler:
    """Calls the stages in order; each answer becomes the next stage's request."""

    def __init__(self, stages: list[Stage]):
        self.stages = stages
        first = stages[0].handler
        self.content_types = getattr(first, "content_types", ())
        self.accepts = getattr(stages[-1].handler, "accepts", ())
        self.empty_body_status = stages[0].empty_body_status

    def invoke(self, body: bytes, content_type, accept) -> tuple[bytes, str]:
        out, out_type, _ = self.invoke_request(body, content_type, accept, {})
        return out, out_type

    def invoke_request(self, body: bytes, content_type, accept, headers: dict) -> tuple[bytes, str, dict | None]:
        from nbsage.runtime.serve import error_status, one_line, request_body
        last = len(self.stages) - 1
        extra = None
        previous = None
        for stage in self.stages:
            if stage.index == last:
                stage_accept = accept if accept and accept.strip() != ANY else (stage.default_accept or accept)
            else:
                stage_accept = stage.default_accept or ANY
            if previous is not None:
                body = request_body(body, content_type)
                if not body:
                    raise PipelineStageError(
                        f"{previous.label} answered an empty body ({content_type or 'no Content-Type'}); "
                        f"{stage.label} has nothing to read", 500, previous.index)
            try:
                body, out_type, extra = stage.call(body, content_type, stage_accept, headers)
            except Exception as exc:  # noqa: BLE001 - the stage's failure, named, with its status
                status = error_status(exc)
                if previous is not None and isinstance(exc, UnsupportedContentType):
                    message = (f"{stage.label} cannot read {content_type!r}, the content type {previous.label} "
                               f"answered: {one_line(exc)}; make the earlier stage answer a type this one reads "
                               f"(its output_fn, or {DEFAULT_ACCEPT_ENV} in its env)")
                else:
                    message = f"{stage.label} failed: {one_line(exc)}"
                if status >= 500:
                    import sys
                    import traceback
                    print(f"nbsage model server: {message}", file=sys.stderr)
                    traceback.print_exc(file=sys.stderr)
                    sys.stderr.flush()
                raise PipelineStageError(message, status, stage.index) from None
            if isinstance(body, str):
                body = body.encode("utf-8")
            content_type = out_type
            previous = stage
        return body, content_type, extra


def read_stages(model_dir: str | os.PathLike) -> list[dict]:
    """The stage list of a pipeline model directory, checked."""
    path = Path(model_dir) / PIPELINE_FILE
    try:
        stages = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{path} is not a readable pipeline description: {exc}") from None
    if not isinstance(stages, list) or not 1 <= len(stages) <= MAX_STAGES:
        raise ValidationError(f"{path}: a pipeline has 1 to {MAX_STAGES} stages")
    return stages


def load(model_dir: str | os.PathLike) -> SerialPipelineHandler:
    """Load every stage of the pipeline in `model_dir` (see the module docstring for its layout)."""
    from nbsage.runtime.serve import load_handler, one_line
    specs = read_stages(model_dir)
    stages = []
    for index, spec in enumerate(specs):
        folder = Path(model_dir) / spec["Directory"]
        env = {k: v for k, v in (spec.get("Environment") or {}).items() if k != "SAGEMAKER_PROGRAM"}
        probe = Stage(index, len(specs), spec, None)
        try:
            with _environment(env):
                handler = load_handler(folder, spec.get("Algorithm"), spec.get("EntryPoint"))
        except Exception as exc:  # noqa: BLE001 - the stage that did not load, named
            raise PipelineStageError(f"{probe.label} failed to load: {one_line(exc)}", 500, index) from exc
        stages.append(Stage(index, len(specs), spec, handler))
    return SerialPipelineHandler(stages)
