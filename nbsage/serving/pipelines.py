"""Inference pipelines on an endpoint: each container's model staged in its own folder of one server.

`deploy(..., containers=[...])` (nbsage.serving.endpoints) calls `stage_pipeline` instead of
staging one model: every container's model.tar.gz is unpacked into `model/NN-<name>/model` and
`model/pipeline.json` lists the stages in order for the model server (nbsage.runtime.serial_pipeline),
which loads them all and calls them in memory. One process rather than a chain of servers: an extra
stage then adds its own work and nothing else (no HTTP hop, no second copy of the body).

A container is {"Name", "ModelDataUrl", "Algorithm", "EntryPoint", "Environment", "ImageUri"}
(CreateModel's Containers, with nbsage's algorithm and entry point in place of an image).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from nbsage.errors import ValidationError
from nbsage.runtime.layout import private_dir, private_tree
from nbsage.runtime.serial_pipeline import DEFAULT_ACCEPT_ENV, MAX_STAGES, PIPELINE_FILE

# what one container sets for itself alone; the rest of the Environments is the server's
PER_STAGE_ENV = ("SAGEMAKER_PROGRAM", "SAGEMAKER_SUBMIT_DIRECTORY", DEFAULT_ACCEPT_ENV, "SAGEMAKER_INFERENCE_OUTPUT")


def check_containers(containers: list[dict]) -> None:
    """1 to 15 containers, each with model data and something to serve it."""
    if not isinstance(containers, (list, tuple)) or not 1 <= len(containers) <= MAX_STAGES:
        count = len(containers) if isinstance(containers, (list, tuple)) else type(containers).__name__
        raise ValidationError(f"a pipeline model has 1 to {MAX_STAGES} containers (SageMaker's limit), got {count}")
    for i, c in enumerate(containers, 1):
        if not c.get("ModelDataUrl"):
            raise ValidationError(f"pipeline container {i} ({c.get('Name')!r}) has no ModelDataUrl (model_data)")


def server_environment(containers: list[dict]) -> dict:
    """The model server's environment: the containers' Environments merged in order, less the
    variables each stage keeps for itself (PER_STAGE_ENV)."""
    merged: dict = {}
    for c in containers:
        merged.update({k: v for k, v in (c.get("Environment") or {}).items() if k not in PER_STAGE_ENV})
    return merged


def _folder_name(index: int, name: str | None) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name or "")[:40].strip("-.") or "model"
    return f"{index + 1:02d}-{safe}"


def stage_pipeline(containers: list[dict], model_dir: Path, stage_one) -> Path:
    """Stage every container's model under model_dir and write model_dir/pipeline.json; returns model_dir.

    `stage_one(container, into)` unpacks one container's ModelDataUrl into the folder `into` and returns
    the model directory it made (an endpoint's and a transform job's staging differ; the layout does not)."""
    from nbsage.runtime.model_archive import check_model_dir
    model_dir = private_dir(Path(model_dir))
    stages = []
    for index, c in enumerate(containers):
        sub = _folder_name(index, c.get("Name"))
        staged = Path(stage_one(c, private_dir(model_dir / sub)))
        private_tree(staged)
        env = c.get("Environment") or {}
        entry_point = c.get("EntryPoint") or env.get("SAGEMAKER_PROGRAM") or None
        if c.get("Algorithm") and not entry_point:
            check_model_dir(staged, c["Algorithm"], str(c["ModelDataUrl"]))
        stages.append({"Name": c.get("Name") or sub, "Directory": staged.relative_to(model_dir).as_posix(),
                       "Algorithm": c.get("Algorithm"), "EntryPoint": entry_point, "Environment": env})
    (model_dir / PIPELINE_FILE).write_text(json.dumps(stages, indent=1))
    return model_dir
