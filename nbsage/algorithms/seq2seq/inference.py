"""Seq2Seq's endpoint, in SageMaker's three request formats.

* application/json: `{"instances": [{"data": "source words"}, ...]}` -> `{"predictions": [{"target":
  "target words"}, ...]}`. Words are split on whitespace and mapped with the model's vocab.src.json
  (unknown words become <unk>). `"configuration": {"attention_matrix": "true"}` — on an instance, or
  once at the top level for all — adds `"matrix"`, the attention weights [target words][source
  words] of the translation.
* application/jsonlines (batch transform): `{"source": "..."}` per line -> `{"target": "..."}` per line.
* application/x-recordio-protobuf: one Record per sentence with int32 `features["source"]` ids ->
  one Record per translation with int32 `features["target"]` ids (ids outside the source vocabulary
  are refused naming the record).

All sentences of a request are translated together (beam search, `beam_size` of the job, or
`"beam_size"` in the configuration).
"""
from __future__ import annotations

import io
import json
import os

import numpy as np

from nbsage import formats
from nbsage.algorithms.seq2seq.records import check_ids
from nbsage.algorithms.seq2seq.translator import Translator
from nbsage.errors import DataError, InvalidRequest, did_you_mean
from nbsage.inference_contract import InferenceHandler

JSON, JSONLINES, RECORDIO = "application/json", "application/jsonlines", "application/x-recordio-protobuf"
CONFIG_KEYS = ("attention_matrix", "beam_size")
MAX_BEAM = 100


def parse_configuration(config, where: str) -> dict:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidRequest(f"{where}: 'configuration' must be a JSON object such as {{\"attention_matrix\": \"true\"}}")
    for key in config:
        if key not in CONFIG_KEYS:
            raise InvalidRequest(f"{where}: {key!r} is not a Seq2Seq inference setting; settings are "
                                 f"{', '.join(CONFIG_KEYS)}{did_you_mean(str(key), CONFIG_KEYS)}")
    out = {}
    if "attention_matrix" in config:
        value = config["attention_matrix"]
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise InvalidRequest(f"{where}: attention_matrix = {json.dumps(value)} is not valid; expected \"true\" or \"false\"")
        out["attention_matrix"] = text == "true"
    if "beam_size" in config:
        value = config["beam_size"]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_BEAM:
            raise InvalidRequest(f"{where}: beam_size = {json.dumps(config['beam_size'])} is not valid; expected an "
                                 f"integer from 1 to {MAX_BEAM}")
        out["beam_size"] = value
    return out


class Seq2SeqHandler(InferenceHandler):
    content_types = (JSON, JSONLINES, RECORDIO)
    accepts = (JSON, JSONLINES, RECORDIO)
    default_accept = JSON

    def __init__(self, translator: Translator):
        self.translator = translator

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        if content_type == RECORDIO:
            outputs = self._translate_records(body)
            if accept == RECORDIO:
                return _encode_targets([ids for ids, _ in outputs])
            vocab = self.translator.target_vocab
            return formats.write_records([{"target": vocab.decode(ids)} for ids, _ in outputs], accept)
        request = formats.read_request(body, content_type, expect='{"data": "source sentence"}')
        top = parse_configuration(request.configuration, "configuration")
        key = "source" if request.per_line else "data"
        sentences, configs = [], []
        for where, instance in request.instances:
            if not isinstance(instance, dict) or not isinstance(instance.get(key), str):
                found = (", ".join(map(repr, list(instance)[:5])) if isinstance(instance, dict)
                         else type(instance).__name__)
                raise InvalidRequest(f"{where}: expected {{\"{key}\": \"source sentence\"}} (a string of "
                                     f"space-separated words), found {found or 'an empty object'}")
            sentences.append(instance[key])
            configs.append({**top, **parse_configuration(instance.get("configuration"), where)})
        if not sentences:
            raise InvalidRequest("the request holds no instances to translate")
        results = self._translate([self.translator.source_vocab.encode(s) for s in sentences], configs)
        if accept == RECORDIO:
            return _encode_targets([ids for ids, _ in results])
        vocab = self.translator.target_vocab
        predictions = []
        for (ids, weights), config in zip(results, configs):
            prediction = {"target": vocab.decode(ids)}
            if config.get("attention_matrix"):
                prediction["matrix"] = np.round(weights.astype(np.float64), 6).tolist()
            predictions.append(prediction)
        return formats.write_records(predictions, accept)

    def _translate(self, sources: list, configs: list[dict]) -> list:
        """Sentences grouped by beam size (one batched beam search per size), answers in request order."""
        out: list = [None] * len(sources)
        beams = [c.get("beam_size") or self.translator.settings["beam_size"] for c in configs]
        for beam in sorted(set(beams)):
            index = [i for i, b in enumerate(beams) if b == beam]
            for i, result in zip(index, self.translator.translate_ids([sources[i] for i in index], beam)):
                out[i] = result
        return out

    def _translate_records(self, body: bytes) -> list:
        from nbsage.formats import recordio_protobuf
        try:
            records = recordio_protobuf.read_records(body)
        except DataError as e:
            raise InvalidRequest(str(e)) from None
        if not records:
            raise InvalidRequest(f"{RECORDIO} request holds no records")
        size = len(self.translator.source_vocab)
        sources = []
        for index, record in enumerate(records):
            where = f"{RECORDIO} request, record {index}"
            value = record.features["source"] if "source" in record.features else None
            if value is None or value.WhichOneof("value") != "int32_tensor":
                raise InvalidRequest(f"{where}: expected int32 token ids in features['source'] "
                                     f"(found {', '.join(sorted(record.features)) or 'no features'})")
            ids = np.asarray(value.int32_tensor.values, dtype=np.int64)
            try:
                check_ids(ids, size, where, "source", "vocab.src.json")
            except DataError as e:
                raise InvalidRequest(str(e)) from None
            sources.append(ids.tolist())
        return self._translate(sources, [{} for _ in sources])


def _encode_targets(targets: list[list[int]]) -> bytes:
    from nbsage.formats.recordio_protobuf import write_record
    from nbsage.formats.record_pb2 import Record
    out = io.BytesIO()
    for ids in targets:
        r = Record()
        r.features["target"].int32_tensor.values.extend(ids)
        write_record(out, r.SerializeToString())
    return out.getvalue()


def load(model_dir: str) -> Seq2SeqHandler:
    """The handler for a model directory written by Seq2Seq training."""
    from nbsage.algorithms.torch_device import set_threads
    set_threads()
    device = os.environ.get("NBSAGE_INFERENCE_DEVICE") or "cpu"  # cuda on a GPU endpoint (nbsage.serving.gpu)
    return Seq2SeqHandler(Translator.load(model_dir, device=device))
