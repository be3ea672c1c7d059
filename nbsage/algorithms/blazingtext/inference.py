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

from nbsage.algorithms.blazingtext.model import ClassifierModel, WordVectors, load_model
from nbsage.errors import InvalidRequest
from nbsage.inference_contract import InferenceHandler, check_content_type

JSON = "application/json"
JSONLINES = "application/jsonlines"
MAX_K = 1_000_000


def _text(body: bytes | str, content_type: str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"{content_type} request is not UTF-8 text (byte {e.start})") from None


def _k(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise InvalidRequest(f"{where}: k must be a positive whole number of labels to return, "
                             f"found {value!r}")
    return int(min(value, MAX_K))


def parse_json(body, expect: str) -> tuple[list[str], int]:
    """(instances, k) of an application/json request."""
    try:
        doc = json.loads(_text(body, JSON))
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"{JSON} request is not valid JSON: {e.msg} at line {e.lineno} column "
                             f"{e.colno}; expected {{\"instances\": [{expect}, ...]}}") from None
    if not isinstance(doc, dict) or "instances" not in doc:
        found = ", ".join(map(repr, list(doc)[:5])) if isinstance(doc, dict) else type(doc).__name__
        raise InvalidRequest(f"{JSON} request has no 'instances' (found {found}); BlazingText expects "
                             f"{{\"instances\": [{expect}, ...]}}")
    instances = doc["instances"]
    if not isinstance(instances, list):
        raise InvalidRequest(f"{JSON} request: 'instances' must be a list of {expect}s, found "
                             f"{type(instances).__name__}")
    for i, item in enumerate(instances):
        if not isinstance(item, str):
            raise InvalidRequest(f"{JSON} request, instances[{i}]: expected a {expect} (a string), "
                                 f"found {type(item).__name__} {json.dumps(item)[:60]}")
    config = doc.get("configuration") or {}
    if not isinstance(config, dict):
        raise InvalidRequest(f"{JSON} request: 'configuration' must be an object like {{\"k\": 2}}")
    k = _k(config.get("k", 1), f"{JSON} request, configuration") if "k" in config else 1
    return instances, k


def parse_jsonlines(body, expect: str) -> list[tuple[str, int]]:
    """(source, k) per line of an application/jsonlines request."""
    out = []
    for lineno, line in enumerate(_text(body, JSONLINES).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{JSONLINES} request line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{where} is not valid JSON: {e.msg} at column {e.colno}; each line "
                                 f"holds {{\"source\": \"{expect}\", \"k\": 1}}") from None
        if isinstance(record, str):
            out.append((record, 1))
            continue
        if not isinstance(record, dict) or not isinstance(record.get("source", record.get("word")), str):
            raise InvalidRequest(f"{where}: expected {{\"source\": \"{expect}\"}} with an optional "
                                 f"\"k\", found {line.strip()[:80]}")
        source = record.get("source", record.get("word"))
        out.append((source, _k(record["k"], where) if "k" in record else 1))
    return out


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
        expect = "text" if self.is_classifier else "word"
        if content_type == JSONLINES:
            records = parse_jsonlines(body, expect)
            results = self._answer([s for s, _ in records], [k for _, k in records])
            return ("\n".join(json.dumps(r) for r in results) + ("\n" if results else "")).encode()
        instances, k = parse_json(body, expect)
        return json.dumps(self._answer(instances, [k] * len(instances))).encode()

    def _answer(self, texts: list[str], ks: list[int]) -> list[dict]:
        if not texts:
            return []
        if not self.is_classifier:
            return [{"vector": [float(x) for x in self.model.vector(w.strip())], "word": w} for w in texts]
        top = self.model.predict(texts, max(ks))
        return [{"label": labels[:k], "prob": probs[:k]} for (labels, probs), k in zip(top, ks)]


def load(model_dir) -> BlazingTextHandler:
    """The handler for a BlazingText model directory (model.bin, or word2vec vectors files)."""
    return BlazingTextHandler(load_model(model_dir))
