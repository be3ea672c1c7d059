"""Object2Vec's endpoint: pair scores, or encoder embeddings when an instance has one input.

Requests are `application/json` `{"instances": [{"in0": [...], "in1": [...]}, ...]}` or
`application/jsonlines` (one instance per line). An instance with both inputs is scored:
`{"scores": [p0, p1, ...]}` (num_classes probabilities; one value for regression, as SageMaker's
"the length is 1"); an instance with only `in0` (or only `in1`) gets that encoder's embedding,
`{"embeddings": [...]}` (enc_dim values). The answer is `{"predictions": [...]}` or one object per
line, as Accept asks. `Content-Type: ...; infer_max_seqlens=<FWD>,<BCK>` caps the in0/in1 lengths
(1..5000 each, never above the trained max_seq_len). `Accept: ...; verbose=true` also returns each
scored pair's two embeddings, `in0_embedding` and `in1_embedding` (nbsage's reading of SageMaker's
verbose responses, as IP Insights gives them). INFERENCE_PREFERRED_MODE (classification or
embedding) is accepted; SageMaker uses it to choose which network stays on the GPU, nbsage keeps
both.
"""
from __future__ import annotations

import os

import numpy as np

from nbsage import formats
from nbsage.algorithms.object2vec.predictor import Object2VecPredictor
from nbsage.algorithms.object2vec.records import INPUTS, Limits, tokens
from nbsage.errors import InvalidRequest
from nbsage.inference_contract import InferenceHandler, check_content_type, parse_accept

PREFERRED_MODE_ENV = "INFERENCE_PREFERRED_MODE"
PREFERRED_MODES = ("classification", "embedding")
INSTANCE = '{"in0": [token ids], "in1": [token ids]} (or only one of them for its embedding)'


def _parameters(header: str | None) -> dict[str, str]:
    """{name: value} of a header's `; name=value` parameters, names lower-cased."""
    out = {}
    for part in (header or "").split(";")[1:]:
        if "=" in part:
            name, value = part.split("=", 1)
            out[name.strip().lower()] = value.strip().strip('"')
    return out


def max_seqlens(content_type: str | None, trained: tuple[int, int]) -> tuple[int, int]:
    """The in0/in1 length caps: infer_max_seqlens=<FWD>,<BCK> when given (1..5000), else the trained ones."""
    value = _parameters(content_type).get("infer_max_seqlens")
    if value is None:
        return trained
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and 1 <= int(p) <= 5000 for p in parts):
        raise InvalidRequest(f"Content-Type parameter infer_max_seqlens={value!r} is not valid; expected "
                             "<FWD-LENGTH>,<BCK-LENGTH>, two integers from 1 to 5000, e.g. infer_max_seqlens=20,20")
    return min(int(parts[0]), trained[0]), min(int(parts[1]), trained[1])


def _floats(values) -> list[float]:
    return np.asarray(values, dtype=np.float64).round(8).tolist()


class Object2VecHandler(InferenceHandler):
    """Answers /invocations for a trained Object2Vec model."""

    content_types = ("application/json", "application/jsonlines")
    accepts = ("application/json", "application/jsonlines")
    default_accept = "application/json"

    def __init__(self, predictor: Object2VecPredictor):
        self.predictor = predictor
        c = predictor.config
        self.limits = tuple(Limits(c.encoder(i).vocab_size, c.encoder(i).max_seq_len) for i in (0, 1))
        mode = os.environ.get(PREFERRED_MODE_ENV, "")
        if mode and mode not in PREFERRED_MODES:
            raise InvalidRequest(f"{PREFERRED_MODE_ENV}={mode!r} is not valid; expected one of "
                                 f"{', '.join(PREFERRED_MODES)}")

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        ct = check_content_type(content_type, self.content_types)
        acc = parse_accept(accept, self.accepts, self.default_accept)
        verbose = _parameters(accept).get("verbose", "").lower() == "true"
        caps = max_seqlens(content_type, (self.limits[0].max_seq_len, self.limits[1].max_seq_len))
        return self.answer(body, ct, acc, caps, verbose), acc

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        caps = (self.limits[0].max_seq_len, self.limits[1].max_seq_len)
        return self.answer(body, content_type, accept, caps, False)

    def parse_instance(self, obj, where: str, caps: tuple[int, int]) -> dict:
        """{'in0': ids, 'in1': ids} with the inputs present, checked and truncated."""
        if not isinstance(obj, dict):
            raise InvalidRequest(f"{where}: an instance must be a JSON object {INSTANCE}, found "
                                 f"{type(obj).__name__}")
        present = [k for k in INPUTS if k in obj]
        if not present:
            keys = ", ".join(repr(k) for k in list(obj)[:5]) or "no keys"
            raise InvalidRequest(f"{where}: the instance has neither 'in0' nor 'in1' (it has {keys}); "
                                 f"expected {INSTANCE}")
        return {k: tokens(obj[k], k, where, self.limits[int(k[-1])], InvalidRequest)[:caps[int(k[-1])]]
                for k in present}

    def answer(self, body: bytes, content_type: str, accept: str, caps: tuple[int, int], verbose: bool) -> bytes:
        request = formats.read_request(body, content_type, expect="instance")
        instances = [self.parse_instance(obj, where, caps) for where, obj in request.instances]
        out: list[dict] = [{} for _ in instances]
        pairs = [i for i, x in enumerate(instances) if len(x) == 2]
        if pairs:
            a = [instances[i]["in0"] for i in pairs]
            b = [instances[i]["in1"] for i in pairs]
            for i, scores in zip(pairs, self.predictor.score(a, b)):
                out[i]["scores"] = _floats(scores)
            if verbose:
                for key, which, seqs in (("in0_embedding", 0, a), ("in1_embedding", 1, b)):
                    for i, e in zip(pairs, self.predictor.embed(which, seqs)):
                        out[i][key] = _floats(e)
        for which, key in enumerate(INPUTS):
            single = [i for i, x in enumerate(instances) if len(x) == 1 and key in x]
            if single:
                for i, e in zip(single, self.predictor.embed(which, [instances[i][key] for i in single])):
                    out[i]["embeddings"] = _floats(e)
        return formats.write_records(out, accept)


def load(model_dir: str) -> Object2VecHandler:
    """The handler for a model directory written by Object2Vec training (CPU unless a GPU endpoint)."""
    from nbsage.algorithms.torch_device import set_threads
    set_threads()
    device = os.environ.get("NBSAGE_INFERENCE_DEVICE") or "cpu"  # cuda on a GPU endpoint (nbsage.serving.gpu)
    return Object2VecHandler(Object2VecPredictor.load(model_dir, device=device))
