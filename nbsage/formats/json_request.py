"""application/json and application/jsonlines inference requests in SageMaker's common shapes.

One record is any of

    {"features": [1.5, 16.0, 14.0]}                                   dense
    {"data": {"features": {"values": [1.5, 16.0, 14.0]}}}             dense
    {"data": {"features": {"keys": [26, 182], "shape": [2000], "values": [1, 4]}}}   sparse

(the sparse form is also accepted directly under "features", and a bare list of numbers as a
dense record). application/json wraps records as `{"instances": [record, ...]}` (a single record,
or a top-level list of records, is accepted too); application/jsonlines holds one record per
line. Errors name the record (`instances[3]`, `line 4`) and say what is expected.
"""
from __future__ import annotations

import json

import numpy as np

from nbsage.errors import InvalidRequest

RECORD_SHAPES = ('{"features": [numbers]}, {"data": {"features": {"values": [numbers]}}} or, '
                 'sparse, {"data": {"features": {"keys": [indices], "shape": [feature_dim], '
                 '"values": [numbers]}}}')
EXPECTED = "expected " + RECORD_SHAPES

JSON = "application/json"
JSONLINES = "application/jsonlines"


class _Dense:
    __slots__ = ("values",)

    def __init__(self, values):
        self.values = values

    @property
    def width(self) -> int:
        return len(self.values)


class _Sparse:
    __slots__ = ("keys", "values", "width")

    def __init__(self, keys, values, width):
        self.keys, self.values, self.width = keys, values, width


def _fail(where: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {why}")


def _numbers(items, where: str, what: str) -> list:
    if not isinstance(items, list):
        raise _fail(where, f"{what} must be a list of numbers, found {type(items).__name__}; {EXPECTED}")
    for i, v in enumerate(items):
        if type(v) not in (int, float):
            raise _fail(where, f"{what}[{i}] = {json.dumps(v)} is not a number")
    return items


def _sparse(features: dict, where: str) -> _Sparse:
    missing = [k for k in ("keys", "shape", "values") if k not in features]
    if missing:
        raise _fail(where, f"sparse features need 'keys', 'shape' and 'values'; "
                           f"{', '.join(repr(m) for m in missing)} missing")
    shape = features["shape"]
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = [shape]
    if (not isinstance(shape, list) or len(shape) != 1 or type(shape[0]) is not int or shape[0] <= 0):
        raise _fail(where, f"'shape' = {json.dumps(features['shape'])} is not valid; expected a "
                           f"one-element list holding the number of features, e.g. [2000]")
    width = shape[0]
    keys = features["keys"]
    if not isinstance(keys, list):
        raise _fail(where, f"'keys' must be a list of feature indices, found {type(keys).__name__}")
    for i, k in enumerate(keys):
        if type(k) is not int or not 0 <= k < width:
            raise _fail(where, f"keys[{i}] = {json.dumps(k)} is not a feature index in [0, {width - 1}] "
                               f"(shape is [{width}])")
    values = _numbers(features["values"], where, "values")
    if len(values) != len(keys):
        raise _fail(where, f"'keys' has {len(keys)} entries and 'values' {len(values)}; they must pair up")
    if len(set(keys)) != len(keys):
        seen = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise _fail(where, f"key {dup} appears more than once")
    return _Sparse(keys, values, width)


def parse_record(record, where: str):
    """One record's features, dense or sparse; raises InvalidRequest naming `where`."""
    if isinstance(record, list):
        return _Dense(_numbers(record, where, "the record"))
    if not isinstance(record, dict):
        raise _fail(where, f"a record must be an object, found {type(record).__name__}; {EXPECTED}")
    if "features" in record:
        features = record["features"]
        what = "'features'"
    elif "data" in record:
        data = record["data"]
        if not isinstance(data, dict) or "features" not in data:
            raise _fail(where, f"'data' must be an object with 'features'; {EXPECTED}")
        features = data["features"]
        what = "'data.features'"
    else:
        keys = ", ".join(repr(k) for k in list(record)[:5]) or "no keys"
        raise _fail(where, f"the record has neither 'features' nor 'data' (it has {keys}); {EXPECTED}")
    if isinstance(features, list):
        return _Dense(_numbers(features, where, what))
    if isinstance(features, dict):
        if "keys" in features or "shape" in features:
            return _sparse(features, where)
        if "values" in features:
            return _Dense(_numbers(features["values"], where, f"{what}.values"))
        raise _fail(where, f"{what} must hold 'values' (dense) or 'keys', 'shape' and 'values' (sparse)")
    raise _fail(where, f"{what} must be a list of numbers or an object with 'values', found "
                       f"{type(features).__name__}; {EXPECTED}")


def _decode(body, content_type: str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"{content_type} request is not UTF-8 text (byte {e.start})") from None


def parse_json(body) -> list[tuple[str, object]]:
    """(where, record) pairs of an application/json body."""
    text = _decode(body, JSON)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"{JSON} request is not valid JSON: {e.msg} at line {e.lineno} "
                             f"column {e.colno}; expected {{\"instances\": [record, ...]}}") from None
    if isinstance(doc, dict) and "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise InvalidRequest(f"{JSON} request: 'instances' must be a list of records, found "
                                 f"{type(instances).__name__}")
        return [(f"instances[{i}]", r) for i, r in enumerate(instances)]
    if isinstance(doc, dict) and ("features" in doc or "data" in doc):
        return [("the record", doc)]
    if isinstance(doc, list):
        if doc and all(type(v) in (int, float) for v in doc):
            return [("the record", doc)]  # one dense row of numbers
        return [(f"record {i}", r) for i, r in enumerate(doc)]
    shown = ", ".join(repr(k) for k in list(doc)[:5]) if isinstance(doc, dict) else type(doc).__name__
    raise InvalidRequest(f"{JSON} request has no 'instances' (found {shown}); expected "
                         f"{{\"instances\": [record, ...]}} where each record is {RECORD_SHAPES}")


def parse_jsonlines(body) -> list[tuple[str, object]]:
    """(where, record) pairs of an application/jsonlines body, one record per non-empty line."""
    text = _decode(body, JSONLINES)
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"line {lineno}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{JSONLINES} request line {lineno} is not valid JSON: {e.msg} at "
                                 f"column {e.colno}; each line holds one record, {EXPECTED}") from None
    return out


def read_instances(body, content_type: str = JSON, num_features: int | None = None,
                   sparse: bool | None = False):
    """Feature rows of a JSON or JSON Lines request: float32 ndarray [n, d] (CSR if sparse=True).

    sparse=None keeps the request's own form, as text/libsvm requests keep theirs: CSR when any
    record is sparse (an absent key stays absent, which XGBoost reads as missing, not 0), dense
    otherwise.

    num_features, when known (the model's feature_dim), is checked against every record;
    otherwise all records must have the width of the first.
    """
    base = (content_type or JSON).split(";")[0].strip().lower()
    if base in (JSONLINES, "application/jsonl", "application/x-jsonlines"):
        pairs, kind = parse_jsonlines(body), JSONLINES
    elif base == JSON:
        pairs, kind = parse_json(body), JSON
    else:
        raise InvalidRequest(f"content type {content_type!r} is not JSON; expected {JSON} or {JSONLINES}")
    if not pairs:
        raise InvalidRequest(f"{kind} request has no records")
    records = []
    width = num_features
    for where, raw in pairs:
        rec = parse_record(raw, f"{kind} request, {where}")
        if width is None:
            width, first = rec.width, where
        if rec.width != width:
            expected = (f"the model expects {num_features} (feature_dim)" if num_features is not None
                        else f"{first} has {width}")
            raise InvalidRequest(f"{kind} request, {where}: has {rec.width} features; {expected}")
        records.append(rec)
    as_sent = sparse is None
    if as_sent:
        sparse = any(isinstance(rec, _Sparse) for rec in records)
    if not sparse:
        out = np.zeros((len(records), width), dtype=np.float32)
        for i, rec in enumerate(records):
            if isinstance(rec, _Dense):
                out[i] = rec.values
            elif rec.keys:
                out[i, rec.keys] = rec.values
        return out
    from scipy import sparse as sp
    indptr, indices, values = [0], [], []
    for rec in records:
        if isinstance(rec, _Dense):
            row = np.asarray(rec.values, dtype=np.float32)
            nz = np.arange(row.size) if as_sent else np.flatnonzero(row)
            indices.extend(nz.tolist())
            values.extend(row[nz].tolist())
        else:
            order = np.argsort(rec.keys, kind="stable")
            indices.extend(np.asarray(rec.keys)[order].tolist())
            values.extend(np.asarray(rec.values, dtype=np.float32)[order].tolist())
        indptr.append(len(indices))
    return sp.csr_matrix((np.asarray(values, dtype=np.float32), np.asarray(indices, dtype=np.int64),
                          np.asarray(indptr, dtype=np.int64)), shape=(len(records), width))


from nbsage.formats import Format, register  # noqa: E402  (kept with the Format it serves)


@register
class JsonRequestFormat(Format):
    """application/json: an inference request `{"instances": [record, ...]}`; not a channel format."""

    content_type = JSON
    suffix = ".json"
    not_a_table = ("an inference request ({\"instances\": [...]}), not a channel file: tables are written "
                   "as application/jsonlines")

    def read_file(self, path, batch_rows, **options):
        from nbsage.errors import UnsupportedContentType
        raise UnsupportedContentType(f"{path}: application/json is an inference request format, not a channel "
                                     "format; write training records as application/jsonlines (one per line)")

    def read_features(self, body, num_features=None):
        return read_instances(body, JSON, num_features=num_features, sparse=None)

    def read_frame(self, data: bytes, name: str, header: bool | None = None):
        """A JSON document (an array of row objects, or an object of columns) as a DataFrame."""
        import io

        import pandas as pd
        return pd.read_json(io.StringIO(data.decode("utf-8")), lines=False)

    def read_request(self, body, expect: str = "record"):
        """`{"instances": [...], "configuration": {...}}`; the configuration is optional."""
        from nbsage.formats import Request
        text = _decode(body, JSON)
        shape = f'{{"instances": [{expect}, ...]}}'
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"{JSON} request is not valid JSON: {e.msg} at line {e.lineno} column "
                                 f"{e.colno}; expected {shape}") from None
        if not isinstance(doc, dict) or "instances" not in doc:
            found = ", ".join(map(repr, list(doc)[:5])) if isinstance(doc, dict) else type(doc).__name__
            raise InvalidRequest(f"{JSON} request has no 'instances' (found {found}); expected {shape}")
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise InvalidRequest(f"{JSON} request: 'instances' must be a list of {expect}s, found "
                                 f"{type(instances).__name__}")
        return Request([(f"instances[{i}]", v) for i, v in enumerate(instances)], doc.get("configuration"))

    def write_records(self, records, *, column=None, envelope="predictions") -> bytes:
        """`{"predictions": [...]}` (or the bare list when envelope is None), compact."""
        doc = records if envelope is None else {envelope: records}
        return json.dumps(doc, separators=(",", ":")).encode()

    def read_array(self, body):
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
        try:
            return np.array(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None

    def write_array(self, prediction) -> bytes:
        return json.dumps(prediction, default=_jsonable).encode("utf-8")

    def decode_array(self, body: bytes, dtype=None, allow_pickle: bool = False):
        return np.array(json.loads(body.decode("utf-8")), dtype=dtype)

    def decode_frame(self, body: bytes):
        """An object of columns, a list of rows, or one value as a one-row frame."""
        import pandas as pd
        data = json.loads(body.decode("utf-8"))
        if isinstance(data, dict):
            return pd.DataFrame(data)
        return pd.DataFrame(data if isinstance(data, list) else [data])

    def decode(self, body: bytes):
        from nbsage.errors import DataError
        try:
            return json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"the response ({JSON}) is not valid JSON: {exc}; it begins {body[:80]!r}") from None


def _jsonable(obj):
    """numpy arrays and scalars, sets and tuples as JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
