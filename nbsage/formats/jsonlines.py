"""application/jsonlines: one JSON value per line, read as a stream; gzip by suffix or magic bytes.

Generic: it yields `(line number, parsed value)` and leaves the meaning of a record to the
algorithm (DeepAR parses `start`/`target`/`cat`/`dynamic_feat` on top of it). Blank lines are
skipped; a line that is not JSON raises a `DataError` naming the file and line.
"""
from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from nbsage.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
CONTENT_TYPE = "application/jsonlines"


def is_gzip(path: str | os.PathLike) -> bool:
    """True for a `.gz` name or a file that starts with gzip's magic bytes."""
    path = Path(path)
    if path.suffix == ".gz":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError:
        return False


def open_text(path: str | os.PathLike):
    """A text stream over a plain or gzipped file (UTF-8)."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _parse(line: str, where: str, lineno: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as e:
        raise DataError(f"{where} line {lineno}: not valid JSON ({e}); "
                        "JSON Lines files hold one JSON object per line") from None


def iter_lines(lines: Iterable[str], where: str) -> Iterator[tuple[int, Any]]:
    """(1-based line number, value) for each non-blank line; `where` names the source in errors."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        yield lineno, _parse(line, where, lineno)


def iter_file(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Stream the values of one JSON Lines file (plain or gzipped)."""
    try:
        with open_text(path) as f:
            yield from iter_lines(f, str(path))
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
        raise DataError(f"{path}: could not be read as {'gzipped ' if is_gzip(path) else ''}"
                        f"JSON Lines ({e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e}); JSON Lines files are UTF-8") from None


def iter_files(files: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, int, Any]]:
    """(file, line number, value) across several files, in order."""
    for path in files:
        for lineno, value in iter_file(path):
            yield Path(path), lineno, value


def body_text(body: bytes | str, where: str = "request") -> str:
    """A request body as text: gunzipped when it starts with gzip's magic bytes, then UTF-8."""
    if isinstance(body, (bytes, bytearray)):
        if body[:2] == GZIP_MAGIC:
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as e:
                raise DataError(f"{where}: not a valid gzip stream ({e})") from None
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{where}: not UTF-8 text ({e})") from None
    return body


def iter_body(body: bytes | str, where: str = "request") -> Iterator[tuple[int, Any]]:
    """The values of a JSON Lines request body (gzipped bodies are accepted too)."""
    yield from iter_lines(body_text(body, where).splitlines(), where)


def dumps(values: Iterable[Any]) -> str:
    """JSON Lines text: one compact JSON value per line, newline-terminated."""
    return "".join(json.dumps(v, separators=(",", ":")) + "\n" for v in values)


# ---- labelled rows: the application/jsonlines Format (added for nbsage.formats' registry) --------
# Training records are {"features": [...], "label": 1.0} (optionally "weight"); "features" also
# takes the inference shapes ({"values": [...]}, sparse {"keys", "shape", "values"}, or "data").
RECORD_SHAPE = '{"features": [numbers], "label": number} (sparse: "features": {"keys", "shape", "values"})'


def require_fields(value: Any, fields: Iterable[str], where: str, shape: str = "") -> dict:
    """The record as a dict holding every field, or a DataError naming `where` and the missing field."""
    if not isinstance(value, dict):
        raise DataError(f"{where}: a record must be a JSON object, found {type(value).__name__}"
                        + (f"; records are {shape}" if shape else ""))
    missing = [f for f in fields if f not in value]
    if missing:
        have = ", ".join(repr(k) for k in list(value)[:6]) or "no fields"
        raise DataError(f"{where}: record has no {' or '.join(repr(m) for m in missing)} field (it has {have})"
                        + (f"; records are {shape}" if shape else ""))
    return value


def iter_records(files: Iterable[str | os.PathLike], required: Iterable[str] = ()) -> Iterator[tuple[Path, int, dict]]:
    """(file, line number, record) of JSON Lines files, each record checked to hold `required` fields.

    Gzip is found by magic bytes as well as by suffix; a `.gz` that is not gzip names the file.
    """
    from nbsage.formats import compression
    required = tuple(required)
    for path in files:
        path = Path(path)
        try:
            with compression.open_text(path) as f:
                for lineno, value in iter_lines(f, str(path)):
                    if required:
                        require_fields(value, required, f"{path} line {lineno}")
                    yield path, lineno, value
        except compression.GZIP_ERRORS as e:
            raise compression.corrupt(path, e) from None
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text ({e}); JSON Lines files are UTF-8") from None


def _number(value: Any, where: str, field: str) -> float:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if type(value) not in (int, float):
        raise DataError(f"{where}: {field!r} = {json.dumps(value)} is not a number")
    return float(value)


def _rows_to_table(rows, labelled: bool, weights: bool, num_features: int | None):
    import numpy as np

    from nbsage.formats import Table
    dense = not any(hasattr(r, "keys") for r, _, _, _ in rows)
    n = len(rows)
    if dense:
        width = num_features if num_features is not None else rows[0][0].width
        for r, _, _, where in rows:
            if r.width != width:
                expected = "num_features" if num_features is not None else f"as in {rows[0][3]}"
                raise DataError(f"{where}: {r.width} features, expected {width} ({expected})")
    else:
        width = max([num_features or 0] + [r.width for r, _, _, _ in rows])
    if dense:
        features = np.asarray([r.values for r, _, _, _ in rows], dtype=np.float32).reshape(n, width)
    else:
        import scipy.sparse as sp
        indptr = np.zeros(n + 1, dtype=np.int64)
        cols, vals = [], []
        for i, (r, _, _, _) in enumerate(rows):
            k = r.keys if hasattr(r, "keys") else range(len(r.values))
            cols.extend(k)
            vals.extend(r.values)
            indptr[i + 1] = len(cols)
        features = sp.csr_matrix((np.asarray(vals, dtype=np.float32), np.asarray(cols, dtype=np.int64), indptr),
                                 shape=(n, width))
        features.sum_duplicates()
    labels = np.asarray([y for _, y, _, _ in rows], dtype=np.float32) if labelled else None
    w = np.asarray([x for _, _, x, _ in rows], dtype=np.float32) if labelled and weights else None
    return Table(features, labels, w)


def _parse_row(value: Any, where: str, labelled: bool, weights: bool):
    from nbsage.errors import InvalidRequest
    from nbsage.formats import json_request
    fields = ("label",) if labelled else ()
    if isinstance(value, dict) and "features" not in value and "data" not in value:
        require_fields(value, ("features",) + fields, where, RECORD_SHAPE)
    if labelled:
        require_fields(value, fields, where, RECORD_SHAPE)
    try:
        row = json_request.parse_record(value, where)
    except InvalidRequest as e:
        raise DataError(str(e)) from None
    label = _number(value["label"], where, "label") if labelled else None
    weight = _number(value.get("weight", 1.0), where, "weight") if labelled and weights else 1.0
    return row, label, weight, where


def iter_table_batches(files: Iterable[str | os.PathLike], batch_rows: int | None = None, *, labelled: bool = True,
                       weights: bool = False, num_features: int | None = None):
    """Labelled rows of JSON Lines files as Tables of batch_rows records (read as a stream)."""
    from nbsage.formats import DEFAULT_BATCH_ROWS
    rows_per = batch_rows or DEFAULT_BATCH_ROWS
    for path in files:
        rows = []
        for _, lineno, value in iter_records([path]):
            rows.append(_parse_row(value, f"{path} line {lineno}", labelled, weights))
            if len(rows) == rows_per:
                yield _rows_to_table(rows, labelled, weights, num_features)
                rows = []
        if rows:
            yield _rows_to_table(rows, labelled, weights, num_features)


def write_rows(obj, path_or_file, labels=None, weights=None) -> None:
    """Rows as JSON Lines: {"features": [...], "label": y}; sparse rows as {"keys", "shape", "values"}."""
    from nbsage.formats import as_rows, check_labels, compression
    rows, _ = as_rows(obj, "application/jsonlines writer")
    labels = check_labels(labels, rows.shape[0])
    weights = check_labels(weights, rows.shape[0])
    out, close = compression.open_output(path_or_file)
    try:
        d = rows.shape[1]
        for start in range(0, rows.shape[0], 4096):
            part = rows[start:start + 4096]
            lines = []
            for i in range(part.shape[0]):
                if hasattr(part, "tocsr"):
                    lo, hi = part.indptr[i], part.indptr[i + 1]
                    rec: dict = {"features": {"keys": part.indices[lo:hi].tolist(), "shape": [d],
                                              "values": part.data[lo:hi].tolist()}}
                else:
                    rec = {"features": part[i].tolist()}
                if labels is not None:
                    rec["label"] = labels[start + i].item()
                if weights is not None:
                    rec["weight"] = weights[start + i].item()
                lines.append(json.dumps(rec, separators=(",", ":")))
            out.write(("\n".join(lines) + "\n").encode())
    finally:
        if close:
            out.close()


from nbsage.formats import Format, register  # noqa: E402  (kept with the Format it serves)


@register
class JsonLinesFormat(Format):
    """application/jsonlines: one record per line, {"features": [...], "label": y}."""

    content_type = CONTENT_TYPE
    suffix = ".jsonl"
    sparse = True

    def read_file(self, path, batch_rows, *, labelled=True, weights=False, num_features=None, **options):
        return iter_table_batches([path], batch_rows, labelled=labelled, weights=weights,
                                  num_features=num_features)

    def read_features(self, body, num_features=None):
        from nbsage.formats import json_request
        return json_request.read_instances(body, CONTENT_TYPE, num_features=num_features, sparse=None)

    def write(self, obj, path_or_file, labels=None, weights=None, **options):
        write_rows(obj, path_or_file, labels=labels, weights=weights)

    def write_channel(self, data, path, *, labelled: bool = True) -> None:
        """One JSON object per row, keyed by column name (DeepAR's `{"start", "target"}` records
        come from a DataFrame with those columns)."""
        from nbsage.formats import as_frame
        as_frame(data).to_json(path, orient="records", lines=True)

    def read_frame(self, data: bytes, name: str, header: bool | None = None):
        """One row per line (a file holding one JSON array is read as that array)."""
        import pandas as pd
        text = data.decode("utf-8")
        return pd.read_json(io.StringIO(text), lines=not text.lstrip().startswith("["))

    def read_request(self, body, expect: str = "record"):
        """One instance per line, as batch transform sends them (a gzipped body is accepted too)."""
        from nbsage.errors import InvalidRequest
        from nbsage.formats import Request
        try:
            text = body_text(body, f"{CONTENT_TYPE} request")
        except DataError as e:
            raise InvalidRequest(str(e)) from None
        instances = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{CONTENT_TYPE} request line {lineno}"
            try:
                instances.append((where, json.loads(line)))
            except json.JSONDecodeError as e:
                raise InvalidRequest(f"{where} is not valid JSON: {e.msg} at column {e.colno}; each line "
                                     f"holds one {expect}") from None
        return Request(instances, None, per_line=True)

    def write_records(self, records, *, column=None, envelope=None) -> bytes:
        """One compact JSON object per line, newline-terminated."""
        return dumps(records).encode()

    def decode(self, body: bytes):
        """A list of the values on non-empty lines."""
        return [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
