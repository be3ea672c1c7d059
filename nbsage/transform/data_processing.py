"""DataProcessing: InputFilter, JoinSource=Input and OutputFilter, as SageMaker's batch transform applies them.

Per record (text/csv, application/json, application/jsonlines only):

1. `InputFilter` selects what the model gets. A CSV row is read as a JSON array of its cells,
   so only index paths apply to it (`$[1:]` drops an ID column).
2. `JoinSource=Input` joins the *original* record with the model's answer for it: a CSV row gets
   the answer's cells appended; a JSON object gets the answer under `SageMakerOutput`; any other
   JSON value becomes `{"SageMakerInput": <record>, "SageMakerOutput": <answer>}`.
3. `OutputFilter` selects from the joined record (`$[0,-1]`, `$['id','SageMakerOutput']`).

The JSONPath subset is the one SageMaker documents: `$`, `.name`, `.*`, `[*]`, `['a','b']`,
`[i,j]` (negative indices count from the end) and `[start:end]`, which may be mixed (`$[0,5:]`).
Slices include their end index, as SageMaker documents (`$[1:3]` is the 2nd to the 4th column),
unlike Python's. The parser is ours: jsonpath-ng (the maintained Python JSONPath library) refuses
SageMaker's own example `$[0,5:]`, and its match lists lose the shape (an array stays an array,
`['a','b']` an object) that the joined output keeps.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

from nbsage.errors import DataError, ValidationError

CONTENT_TYPES = ("text/csv", "application/json", "application/jsonlines")
JOIN_SOURCES = ("Input", "None")
_MAX_LENGTH = 63  # SageMaker's limit on a JSONPath (DataProcessing.InputFilter/OutputFilter)
_TOKEN = re.compile(r"""
    \.(?P<name>[A-Za-z_][\w-]*)          # .name
  | \.\*                                 # .*   (wildcard)
  | \[\s*\*\s*\]                         # [*]  (wildcard)
  | \[(?P<keys>\s*(?:'[^']*'|"[^"]*")\s*(?:,\s*(?:'[^']*'|"[^"]*")\s*)*)\]    # ['a','b']
  | \[(?P<items>\s*-?\d*\s*(?::\s*-?\d*\s*)?(?:,\s*-?\d*\s*(?::\s*-?\d*\s*)?)*)\]  # [0,3:5,-1]
""", re.VERBOSE)
_ACCEPTED = ("accepted: $, .name, .*, [*], ['a','b'], [i,j] (negative allowed) and [start:end] (end included), "
             "e.g. '$[1:]', '$.features', \"$['id','SageMakerOutput']\", '$[0,-1]'")


@dataclass(frozen=True)
class _Step:
    kind: str  # "field", "fields", "wildcard", "items"
    names: tuple = ()
    items: tuple = ()  # ints, or (start, end) pairs with None for an open end
    single: bool = False  # one name / one index: the value itself, not a list of one


class JSONPath:
    """A parsed SageMaker JSONPath; `select(value)` applies it."""

    def __init__(self, text: str, field: str = "JSONPath"):
        self.text, self.field = text, field
        self.steps = _parse(text, field)

    @property
    def is_root(self) -> bool:
        return not self.steps

    def select(self, value):
        for step in self.steps:
            value = _apply(step, value, self.text)
        return value

    def __repr__(self) -> str:
        return f"JSONPath({self.text!r})"


def _parse(text: str, field: str) -> list[_Step]:
    if not isinstance(text, str):
        raise ValidationError(f"{field} must be a JSONPath string, got {type(text).__name__}; {_ACCEPTED}")
    source = text.strip()
    if len(source) > _MAX_LENGTH:
        raise ValidationError(f"{field} {text!r} is {len(source)} characters long; SageMaker allows {_MAX_LENGTH}")
    if not source.startswith("$"):
        raise ValidationError(f"{field} {text!r} does not parse: a JSONPath starts with '$'; {_ACCEPTED}")
    steps, pos = [], 1
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ValidationError(f"{field} {text!r} does not parse at character {pos + 1} "
                                  f"({source[pos:pos + 10]!r}); {_ACCEPTED}")
        if m.group("name"):
            steps.append(_Step("field", (m.group("name"),), single=True))
        elif m.group("keys") is not None:
            names = tuple(k.strip()[1:-1] for k in re.findall(r"'[^']*'|\"[^\"]*\"", m.group("keys")))
            steps.append(_Step("fields", names, single=len(names) == 1))
        elif m.group("items") is not None:
            steps.append(_items_step(m.group("items"), text, field))
        else:
            steps.append(_Step("wildcard"))
        pos = m.end()
    return steps


def _items_step(raw: str, text: str, field: str) -> _Step:
    items = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise ValidationError(f"{field} {text!r} does not parse: an empty index in '[{raw}]'; {_ACCEPTED}")
        if ":" in part:
            start, end = (p.strip() for p in part.split(":", 1))
            items.append((int(start) if start else None, int(end) if end else None))
        else:
            items.append(int(part))
    return _Step("items", items=tuple(items), single=len(items) == 1 and isinstance(items[0], int))


def _apply(step: _Step, value, text: str):
    if step.kind in ("field", "fields"):
        if not isinstance(value, dict):
            raise DataError(f"JSONPath {text!r} selects the key {step.names[0]!r} from a "
                            f"{_kind(value)}, which has no keys")
        missing = [n for n in step.names if n not in value]
        if missing:
            raise DataError(f"JSONPath {text!r}: the record has no key {missing[0]!r} "
                            f"(its keys are {', '.join(map(repr, list(value)[:10])) or 'none'})")
        return value[step.names[0]] if step.single else {n: value[n] for n in step.names}
    if step.kind == "wildcard":
        return list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list) else [value]
    if not isinstance(value, list):
        raise DataError(f"JSONPath {text!r} selects indices from a {_kind(value)}; indices apply to arrays "
                        "(a CSV row, a JSON array)")
    picked = []
    n = len(value)
    for item in step.items:
        if isinstance(item, int):
            if not -n <= item < n:
                raise DataError(f"JSONPath {text!r}: index {item} is outside the record's {n} "
                                f"{'column' if n == 1 else 'columns'}")
            picked.append(value[item])
            continue
        start, end = item
        if end is not None:  # SageMaker's slices include the end index
            end = None if end == -1 else end + 1
        picked.extend(value[start:end])
    return picked[0] if step.single else picked


def _kind(value) -> str:
    return {dict: "JSON object", list: "array", str: "string"}.get(type(value), type(value).__name__)


# ---- records in a content type -----------------------------------------------------------------------
def parse_record(raw: bytes, content_type: str):
    """One record as SageMaker reads it for DataProcessing: a CSV row as an array of its cells (text kept
    as written), a JSON record as its value."""
    text = raw.decode("utf-8")
    if content_type == "text/csv":
        return next(csv.reader([text]), [])
    return json.loads(text)


def write_record(value, content_type: str) -> bytes:
    """A record back in its content type: CSV cells comma-joined (quoted only where needed), JSON compact."""
    if content_type == "text/csv":
        cells = value if isinstance(value, list) else [value]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow([c if isinstance(c, str) else _cell(c) for c in cells])
        return out.getvalue().encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _cell(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def join(record, answer, content_type: str):
    """JoinSource=Input: the original record joined with the model's answer for it."""
    if content_type == "text/csv":
        record = record if isinstance(record, list) else [record]
        return record + (answer if isinstance(answer, list) else [answer])
    if isinstance(record, dict):
        if "SageMakerOutput" in record:
            raise DataError("the input record already has a key 'SageMakerOutput', where JoinSource=Input puts "
                            "the model's answer; rename it")
        return {**record, "SageMakerOutput": answer}
    return {"SageMakerInput": record, "SageMakerOutput": answer}


def split_answer(body: bytes, accept: str, count: int) -> list:
    """The model's answer for a batch of `count` records, one item per record (to join or filter each).

    CSV and JSON Lines answer one line per record; a JSON answer is an array of one item per record,
    or an object whose one list value (`{"predictions": [...]}`) has one item per record."""
    if accept in ("text/csv", "application/jsonlines"):
        lines = [line for line in body.decode("utf-8").splitlines() if line.strip()]
        items = [parse_record(line.encode(), accept) for line in lines]
        if accept == "text/csv" and count == 1 and len(items) > 1:  # one record answered over several lines
            items = [[cell for row in items for cell in row]]
    else:
        value = json.loads(body.decode("utf-8")) if body.strip() else []
        if count == 1 and not (isinstance(value, list) and len(value) == 1):
            items = [value]
        elif isinstance(value, list):
            items = value
        elif isinstance(value, dict) and len([v for v in value.values() if isinstance(v, list)]) == 1:
            items = next(v for v in value.values() if isinstance(v, list))
        else:
            items = [value]
    if len(items) != count:
        raise DataError(f"the model answered {len(items)} {accept} records for a request of {count}; "
                        "JoinSource and OutputFilter need one answer per record")
    return items


@dataclass(frozen=True)
class DataProcessing:
    """A job's DataProcessing, parsed; `active` is False for the defaults (nothing to do per record)."""

    input_filter: JSONPath
    output_filter: JSONPath
    join_source: str = "None"

    @classmethod
    def from_request(cls, data: dict | None) -> "DataProcessing":
        data = data or {}
        join_source = data.get("JoinSource") or "None"
        if join_source not in JOIN_SOURCES:
            raise ValidationError(f"JoinSource {join_source!r} is not supported; use 'Input' or 'None'")
        return cls(JSONPath(data.get("InputFilter") or "$", "InputFilter"),
                   JSONPath(data.get("OutputFilter") or "$", "OutputFilter"), join_source)

    @property
    def active(self) -> bool:
        return not (self.input_filter.is_root and self.output_filter.is_root and self.join_source == "None")

    def check(self, content_type: str | None, accept: str | None, split_type: str, assemble_with: str) -> None:
        """SageMaker's rules for DataProcessing, before anything runs."""
        if not self.active:
            return
        for what, value in (("ContentType", content_type), ("Accept", accept)):
            if (value or "").split(";")[0].strip() not in CONTENT_TYPES:
                raise ValidationError(f"DataProcessing (input_filter/output_filter/join_source) needs {what} in "
                                      f"{', '.join(CONTENT_TYPES)}; got {value!r}")
        if self.join_source == "Input":
            if split_type != "Line" and (content_type or "").startswith(("text/csv", "application/jsonlines")):
                raise ValidationError("join_source='Input' on CSV or JSON Lines needs split_type='Line' "
                                      f"(got {split_type!r}) so each record is joined with its own answer")
            if split_type == "Line" and assemble_with != "Line":
                raise ValidationError("join_source='Input' with split_type='Line' needs assemble_with='Line', as "
                                      "SageMaker requires")
