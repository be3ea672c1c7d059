"""BlazingText endpoints: word-vector lookups (Word2Vec) and text classification (supervised).

Requests, as SageMaker's BlazingText answers them:

* application/json, Word2Vec: `{"instances": ["awesome", "blazing"]}` ->
  `[{"vector": [...], "word": "awesome"}, ...]`; a word not in the vocabulary gets a zero
  vector, or the mean of its character n-gram vectors when the model was trained with subwords.
* application/json, supervised: `{"instances": ["the movie was excellent", ...],
  "configuration": {"k": 2}}` (k optional, default 1) -> `[{"label": ["__label__1", ...],
  "prob": [0.98, ...]}, ...]`, the k most probable labels first.
* application/jsonlines (batch transform): one `{"source": "...", "k": 2}` per line -> one
  result object per line (Word2Vec lines are `{"source": "word"}`).

Texts are split on whitespace: send them tokenised as the training data was. The response has
the request's content type: BlazingText ignores an Accept that differs from the Content-Type.
"""
from __future__ import annotations

import json

from nbsage import formats
from nbsage.algorithms.blazingtext.model import ClassifierModel, WordVectors, load_model
from nbsage.errors import InvalidRequest
from nbsage.inference_contract import InferenceHandler, check_content_type

JSON = "application/json"
JSONLINES = "application/jsonlines"
MAX_K = 1_000_000


def _k(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise InvalidRequest(f"{where}: k must be a positive whole number of labels to return, "
                             f"found {value!r}")
    return int(min(value, MAX_K))


def parse_request(body, content_type: str, expect: str) -> list[tuple[str, int]]:
    """(text, k) per instance: JSON's `{"instances": [...], "configuration": {"k": 2}}`, or one
    `{"source": "...", "k": 2}` (or a bare string) per JSON Lines line."""
    request = formats.read_request(body, content_type, expect)
    if request.per_line:
        return [_line_instance(record, where, expect) for where, record in request.instances]
    for where, item in request.instances:
        if not isinstance(item, str):
            raise InvalidRequest(f"{JSON} request, {where}: expected a {expect} (a string), "
                                 f"found {type(item).__name__} {json.dumps(item)[:60]}")
    config = request.configuration or {}
    if not isinstance(config, dict):
        raise InvalidRequest(f"{JSON} request: 'configuration' must be an object like {{\"k\": 2}}")
    k = _k(config.get("k", 1), f"{JSON} request, configuration") if "k" in config else 1
    return [(text, k) for _, text in request.instances]


def _line_instance(record, where: str, expect: str) -> tuple[str, int]:
    if isinstance(record, str):
        return record, 1
    if not isinstance(record, dict) or not isinstance(record.get("source", record.get("word")), str):
        raise InvalidRequest(f"{where}: expected {{\"source\": \"{expect}\"}} with an optional "
                             f"\"k\", found {json.dumps(record)[:80]}")
    source = record.get("source", record.get("word"))
    return source, _k(record["k"], where) if "k" in record else 1


class BlazingTextHandler(InferenceHandler):
    """Answers /invocations for a Word2Vec or a classifier model."""

    content_types = (JSON, JSONLINES)
    accepts = (JSON, JSONLINES)
    default_accept = JSON

    def __init__(self, model: WordVectors | ClassifierModel):
        self.model = model
        self.is_classifier = isinstance(model, ClassifierModel)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        ct = check_content_type(content_type, self.content_types)
        return self.predict(body, ct, ct), ct

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        instances = parse_request(body, content_type, "text" if self.is_classifier else "word")
        results = self._answer([s for s, _ in instances], [k for _, k in instances])
        return formats.write_records(results, accept, envelope=None)

    def _answer(self, texts: list[str], ks: list[int]) -> list[dict]:
        if not texts:
            return []
        if not self.is_classifier:
            return [{"vector": [float(x) for x in self.model.vector(w.strip())], "word": w} for w in texts]
        top = self.model.predict(texts, max(ks))
        return [{"label": labels[:k], "prob": probs[:k]} for (labels, probs), k in zip(top, ks)]


def load(model_dir) -> BlazingTextHandler:
    """The handler for a BlazingText model directory (model.bin, or word2vec vectors files)."""
    import os
    model = load_model(model_dir)
    if os.environ.get("NBSAGE_INFERENCE_DEVICE") == "cuda":  # a GPU endpoint (nbsage.serving.gpu)
        from nbsage.algorithms.blazingtext.cuda_inference import on_device
        model = on_device(model, "cuda")
    return BlazingTextHandler(model)
