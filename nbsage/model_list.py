"""ListModels: the models this machine's store knows, in DescribeModel's shape.

nbsage keeps no model resource apart from the artifact, so a model is what SageMaker would have
recorded one for: every training job's model artifact (named after its job, as the SDK's
`estimator.deploy()` names the model it creates), a model recorded by name (CreateModel, where the
store keeps such records), and the model of an endpoint deployed from a `Model(model_data=...)` that
no job here made (named after the endpoint). Each lists the endpoints serving it.
"""
from __future__ import annotations

import json

from nbsage.arns import arn
from nbsage.store.metadata import iso

LIST_LIMIT = 200


def list_models(session, limit: int = LIST_LIMIT) -> list[dict]:
    """DescribeModel-shaped records, newest first: ModelName, ModelArn, PrimaryContainer (Image,
    ModelDataUrl), CreationTime, and nbsage:Source / nbsage:Endpoints (what made it, what serves it)."""
    store = session.store
    serving: dict[str, list[str]] = {}
    for endpoint in session.list_endpoints():
        if endpoint.get("ModelDataUrl"):
            serving.setdefault(endpoint["ModelDataUrl"], []).append(endpoint["EndpointName"])
    models = []
    # recorded models (CreateModel), where this store keeps them
    for name in getattr(store, "model_names", lambda: [])():
        config = store.find_model(name) or {}
        url = config.get("ModelDataUrl")
        models.append(_model(name, config.get("Algorithm") or config.get("ImageUri") or "", url, None,
                             "CreateModel", serving.get(url, [])))
    for record in store.list_jobs(limit=limit, kind="training"):
        url = record.get("model_artifacts")
        if not url:
            continue
        model = _model(record["name"], _image(record), url, record["end_time"] or record["creation_time"],
                       f"training job {record['name']}", serving.get(url, []))
        model.update({"nbsage:TrainingJobName": record["name"], "nbsage:TrainingJobStatus": record["status"]})
        models.append(model)
    made = {m["PrimaryContainer"]["ModelDataUrl"] for m in models}
    for url, endpoints in serving.items():
        if url not in made:
            models.append(_model(endpoints[0], "", url, None, f"endpoint {endpoints[0]}", endpoints))
    return models[:limit]


def _model(name: str, image: str, url: str | None, created: float | None, source: str, endpoints) -> dict:
    return {"ModelName": name, "ModelArn": arn("model", name),
            "PrimaryContainer": {"Image": image, "ModelDataUrl": url}, "CreationTime": iso(created),
            "nbsage:Source": source, "nbsage:Endpoints": list(endpoints)}


def _image(record: dict) -> str:
    """The algorithm (or script) a training job ran: the model's image, in nbsage's words."""
    try:
        request = json.loads(record["request"])
    except (TypeError, ValueError):
        return ""
    program = request.get("HyperParameters", {}).get("sagemaker_program")
    if program:
        try:
            return json.loads(program)
        except ValueError:
            return program
    return request.get("AlgorithmSpecification", {}).get("TrainingImage", "")
