"""Datasets for Model Monitor: a baseline file or an endpoint's captured records, as named columns.

A `Dataset` is column names and rows of raw text values (None where a value is missing); types are
inferred later, per column, as Model Monitor does. The baseline formats are the SDK's DatasetFormat:
`{"csv": {"header": bool, "output_columns_position": "START"|"END"}}` and `{"json": {"lines": bool}}`;
columns without a header are named `_c0`, `_c1`, ... as Model Monitor names them.

Captured records become rows as Model Monitor's `sagemakerCaptureJson` does: the request's records
(CSV lines, JSON lists/instances), each joined with its prediction from the response, the output
columns first ("START", the default) or last ("END"); the baseline's column names are given to them by
position. A request-only capture has no output columns, and so has a baseline the same width as the
requests (nbsage's one leniency: when the baseline is as wide as the request alone, the prediction is
left out rather than reported as an extra column).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from nbsage.errors import DataError, ValidationError

ACCEPTED_FORMATS = ("DatasetFormat.csv(header=True|False, output_columns_position='START'|'END') or "
                    "DatasetFormat.json(lines=True|False)")


@dataclass
class Dataset:
    """Named columns of raw values: rows[i][j] is the text of column j in record i, or None."""

    names: list[str]
    rows: list[list[str | None]] = field(default_factory=list)

    def column(self, index: int) -> list[str | None]:
        return [row[index] if index < len(row) else None for row in self.rows]


def positional_names(count: int, start: int = 0) -> list[str]:
    return [f"_c{i}" for i in range(start, start + count)]


def _text(value) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# ---- the baseline dataset -----------------------------------------------------------------------------
def check_format(dataset_format) -> tuple[str, dict]:
    """('csv'|'json', options) for an SDK DatasetFormat dict; ValidationError naming what is accepted."""
    if isinstance(dataset_format, dict) and len(dataset_format) == 1:
        kind, options = next(iter(dataset_format.items()))
        if kind in ("csv", "json") and isinstance(options, dict):
            position = str(options.get("output_columns_position", "START")).upper()
            if kind == "csv" and position not in ("START", "END"):
                raise ValidationError(f"dataset_format csv output_columns_position must be 'START' or 'END', "
                                      f"got {position!r}")
            return kind, options
    raise ValidationError(f"dataset_format {dataset_format!r} is not a baseline format nbsage reads; use "
                          f"{ACCEPTED_FORMATS}")


def read_baseline(name: str, data: bytes, dataset_format) -> Dataset:
    """The baseline dataset in `data` (the file called `name`); DataError naming the file, the line and
    what is accepted when it is not in the format declared."""
    kind, options = check_format(dataset_format)
    if data[:4] == b"PAR1":
        raise DataError(f"baseline dataset {name} is a Parquet file; baselines are read as {ACCEPTED_FORMATS}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"baseline dataset {name} is not text (byte {exc.start} is not UTF-8); baselines are "
                        f"read as {ACCEPTED_FORMATS}") from None
    if kind == "csv":
        return _read_csv(name, text, bool(options.get("header", True)))
    return _read_json(name, text, bool(options.get("lines", True)))


def _read_csv(name: str, text: str, header: bool) -> Dataset:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first:
        raise DataError(f"baseline dataset {name} is empty; it needs at least one record")
    if first[0] in "{[":
        raise DataError(f"baseline dataset {name} line 1 looks like JSON ({first[:40]!r}), not CSV; give "
                        "dataset_format=DatasetFormat.json(lines=True) for JSON Lines, or a CSV file")
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    names = [cell.strip() for cell in rows.pop(0)] if header else positional_names(len(rows[0]))
    if header and not rows:
        raise DataError(f"baseline dataset {name} has a header line and no records")
    width = len(names)
    for number, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise DataError(f"baseline dataset {name} record {number}: expected {width} columns "
                            f"({'the header' if header else 'as the first record'}), found {len(row)}")
    return Dataset(names, [[_text(cell.strip()) for cell in row] for row in rows])


def _read_json(name: str, text: str, lines: bool) -> Dataset:
    if lines:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((number, json.loads(line)))
            except ValueError as exc:
                raise DataError(f"baseline dataset {name} line {number} is not a JSON object ({exc}); "
                                "DatasetFormat.json(lines=True) reads one JSON object per line") from None
    else:
        try:
            whole = json.loads(text)
        except ValueError as exc:
            raise DataError(f"baseline dataset {name} is not JSON ({exc}); DatasetFormat.json(lines=False) "
                            "reads one JSON array of objects") from None
        records = list(enumerate(whole if isinstance(whole, list) else [whole], start=1))
    if not records:
        raise DataError(f"baseline dataset {name} is empty; it needs at least one record")
    names: list[str] = []
    for number, record in records:
        if not isinstance(record, dict):
            raise DataError(f"baseline dataset {name} record {number} is a {type(record).__name__}, not a JSON "
                            "object of feature names and values")
        names += [k for k in record if k not in names]
    return Dataset(names, [[_text(record.get(k)) for k in names] for _, record in records])


# ---- captured data -------------------------------------------------------------------------------------
def _decode(side: dict) -> tuple[str, object] | None:
    """('csv', text) or ('json', value) of one side of a capture record; None when it cannot be read."""
    encoding, data = side.get("encoding"), side.get("data", "")
    if encoding == "BASE64":
        return None  # opaque bytes (images, protobuf): nothing to take statistics of
    if encoding == "JSON":
        try:
            return "json", json.loads(data)
        except ValueError:
            return None
    return "csv", data


def _rows(decoded, expected: int | None = None) -> list[list[str | None]]:
    kind, value = decoded
    if kind == "csv":
        return [[_text(c.strip()) for c in row] for row in csv.reader(io.StringIO(value)) if row]
    if isinstance(value, dict):
        for key in ("instances", "predictions", "data"):
            if isinstance(value.get(key), list):
                value = value[key]
                break
        else:
            return [[_text(v) for v in value.values()]]
    if not isinstance(value, list):
        return [[_text(value)]]
    if value and all(not isinstance(v, (list, dict)) for v in value):
        # [p1, p2] answers two records when two were asked, else it is one record's values
        return [[_text(v)] for v in value] if expected not in (None, 1) and len(value) == expected \
            else [[_text(v) for v in value]]
    rows = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("features", item.get("values", list(item.values())))
        rows.append([_text(v) for v in item] if isinstance(item, list) else [_text(item)])
    return rows


def captured_rows(record: dict, width: int | None, output_first: bool = True) -> list[list[str | None]]:
    """The rows one capture record contributes: each request record with its prediction, output columns
    first (or last); `width` is the baseline's column count (to leave a prediction out when the baseline
    has none)."""
    data = record.get("captureData") or {}
    decoded_in = _decode(data["endpointInput"]) if data.get("endpointInput") else None
    inputs = _rows(decoded_in) if decoded_in else []
    decoded_out = _decode(data["endpointOutput"]) if data.get("endpointOutput") else None
    outputs = _rows(decoded_out, len(inputs) or None) if decoded_out else []
    if not inputs:
        return outputs
    if len(outputs) != len(inputs) or (width is not None and inputs and len(inputs[0]) == width):
        return inputs
    return [o + i if output_first else i + o for i, o in zip(inputs, outputs)]


def record_time(record: dict) -> datetime | None:
    text = (record.get("eventMetadata") or {}).get("inferenceTime")
    try:
        return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def captured_dataset(records, names: list[str], output_first: bool = True) -> Dataset:
    """The captured records as a Dataset named by the baseline's columns (extra ones `_c<n>`)."""
    rows = []
    for record in records:
        rows += captured_rows(record, len(names) or None, output_first)
    width = max((len(r) for r in rows), default=len(names))
    return Dataset(names[:width] + positional_names(width - len(names), len(names)) if width > len(names)
                   else list(names[:width]), rows)

