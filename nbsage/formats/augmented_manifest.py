"""Augmented manifest files: S3DataType `AugmentedManifestFile`, with `AttributeNames`.

The manifest is JSON Lines, one object per example, e.g.

    {"source-ref": "s3://bucket/images/1.jpg", "bounding-box": {"annotations": [...]}, "is-a-cat": 1}

and the channel's `AttributeNames` pick, in order, what each example delivers. In Pipe mode
SageMaker streams, per line and per attribute: for a name ending in `-ref` the bytes of the object
it points to, otherwise the attribute's JSON value; with `RecordWrapperType=RecordIO` each of
those is one RecordIO record (content type `application/x-recordio`), so
`["image-ref", "is-a-cat"]` arrives as `rec(image1.jpg) rec("1") rec(image2.jpg) rec("0") ...`.

Here:
* `iter_manifest` reads manifests (File mode, or before streaming), checking every line holds
  every attribute; `write_stream` writes what Pipe mode delivers (for a place's Pipe feeder);
  `iter_stream` reads such a stream back, grouping records per line.
* `AugmentedManifestFormat` is the registry's reader for channels whose S3DataType is
  AugmentedManifestFile; its Tables hold the first attribute as features and a dict of the others
  as labels, one entry per manifest line.

A `-ref` is any fsspec URL (`s3://...`, `file://...`), an absolute path, or a path relative to the
manifest's folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from nbsage.errors import DataError
from nbsage.formats import DEFAULT_BATCH_ROWS, Format, Table, register
from nbsage.formats import compression
from nbsage.formats.recordio_protobuf import MAGIC, _iter_payloads_at, frame_parts

RECORDIO = "application/x-recordio"
JSONLINES = "application/jsonlines"
MAX_ATTRIBUTES = 16  # the API's limit on AttributeNames


def check_attribute_names(attribute_names) -> list[str]:
    """AttributeNames as a list of 1 to 16 non-empty strings."""
    if isinstance(attribute_names, str) or not attribute_names:
        raise DataError("an augmented manifest needs AttributeNames: a list of 1 to 16 attribute names, "
                        "e.g. ['source-ref', 'class']")
    names = list(attribute_names)
    if len(names) > MAX_ATTRIBUTES:
        raise DataError(f"AttributeNames holds {len(names)} names; SageMaker accepts at most {MAX_ATTRIBUTES}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise DataError(f"AttributeNames entry {name!r} is not an attribute name")
    return names


def is_ref(name: str) -> bool:
    """Attributes named `...-ref` point to an object whose bytes are delivered."""
    return name.endswith("-ref")


def iter_manifest(files: Iterable, attribute_names) -> Iterator[tuple[Path, int, dict]]:
    """(manifest, line number, {name: value}) for each line, holding exactly the AttributeNames."""
    from nbsage.formats import jsonlines
    names = check_attribute_names(attribute_names)
    for path, lineno, record in jsonlines.iter_records(files):
        where = f"{path} line {lineno}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: a manifest line must be a JSON object, found {type(record).__name__}")
        missing = [n for n in names if n not in record]
        if missing:
            have = ", ".join(repr(k) for k in list(record)[:8])
            raise DataError(f"{where}: record has no attribute {', '.join(repr(m) for m in missing)} (it has {have}); "
                            f"AttributeNames are {names}, and every line of the manifest needs each of them")
        yield path, lineno, {n: record[n] for n in names}


def read_ref(uri, where: str, base: Path | None = None) -> bytes:
    """The bytes a `-ref` attribute points to; errors name the manifest line and the reference."""
    if not isinstance(uri, str) or not uri:
        raise DataError(f"{where}: a '-ref' attribute must hold a URI string, found {json.dumps(uri)}")
    try:
        if "://" in uri:
            import fsspec
            with fsspec.open(uri, "rb") as f:
                return f.read()
        path = Path(uri)
        if not path.is_absolute() and base is not None:
            path = base / path
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{where}: {uri} does not exist") from None
    except (OSError, ValueError, ImportError) as e:
        raise DataError(f"{where}: cannot read {uri} ({type(e).__name__}: {e})") from None


def attribute_payload(name: str, value, where: str, base: Path | None = None) -> bytes:
    """What Pipe mode delivers for one attribute: the object's bytes for `-ref`, else the JSON value."""
    if is_ref(name):
        return read_ref(value, where, base)
    return json.dumps(value, separators=(",", ":")).encode()


def write_stream(manifests: Iterable, attribute_names, out: BinaryIO, record_wrapper: str | None = "RecordIO") -> int:
    """Write the Pipe-mode stream of manifests to `out`; returns the number of lines streamed.

    record_wrapper "RecordIO" frames each attribute as one RecordIO record (dmlc framing, as
    MXNet-based algorithms read it); None writes the payloads back to back, as SageMaker does.
    """
    if record_wrapper not in (None, "None", "RecordIO"):
        raise DataError(f"RecordWrapperType {record_wrapper!r} is not valid; use 'RecordIO' or 'None'")
    wrap = record_wrapper == "RecordIO"
    lines = 0
    for path, lineno, values in iter_manifest(manifests, attribute_names):
        where = f"{path} line {lineno}"
        for name, value in values.items():
            payload = attribute_payload(name, value, where, path.parent)
            out.write(frame_parts(payload) if wrap else payload)
        lines += 1
    return lines


def _decode(name: str, payload: bytes, where: str):
    if is_ref(name):
        return payload
    try:
        return json.loads(payload)
    except ValueError as e:
        raise DataError(f"{where}: attribute {name!r} is not JSON ({e}); non-'-ref' attributes are delivered "
                        "as their JSON value") from None


def _group(payloads: Iterator[tuple[str, bytes]], names: list[str]) -> Iterator[tuple[str, dict]]:
    """(where, {name: value}) from a flat sequence of (where, payload), len(names) per manifest line."""
    current: dict = {}
    first = ""
    for where, payload in payloads:
        name = names[len(current)]
        if not current:
            first = where
        current[name] = _decode(name, payload, where)
        if len(current) == len(names):
            yield first, current
            current = {}
    if current:
        raise DataError(f"{first}: the stream ends inside a manifest line: {len(current)} of the {len(names)} "
                        f"attributes {names} arrived; a truncated stream, or AttributeNames that do not match it")


def iter_stream(src, attribute_names, source: str | None = None) -> Iterator[dict]:
    """{name: value} per manifest line of a RecordIO-wrapped Pipe stream (path or binary file).

    `-ref` attributes come back as bytes, the others as their decoded JSON value.
    """
    names = check_attribute_names(attribute_names)
    if isinstance(src, (str, os.PathLike)):
        with compression.open_binary(src) as f:
            yield from iter_stream(f, names, source or str(src))
        return
    name = source or getattr(src, "name", "stream")
    payloads = ((f"{name} record {i}", p) for i, _, p in _iter_payloads_at(src, name, 0, 0))
    for _, values in _group(payloads, names):
        yield values


def _is_recordio(path: Path) -> bool:
    with compression.open_binary(path) as f:
        return f.read(4) == MAGIC.to_bytes(4, "little")


MANIFEST_SUFFIXES = (".manifest", ".jsonl", ".json")


def _is_manifest(path: Path, names: list[str]) -> bool:
    """A manifest by its name, or a file whose first line is a JSON object holding every attribute."""
    stem = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    if Path(stem).suffix.lower() in MANIFEST_SUFFIXES:
        return True
    with compression.open_binary(path) as f:
        first = f.readline(1 << 20)
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and all(n in record for n in names)


@register
class AugmentedManifestFormat(Format):
    """A channel with S3DataType AugmentedManifestFile, read as examples of its AttributeNames.

    Files may be manifests (JSON Lines; File mode), RecordIO-wrapped Pipe streams, or the records
    of such a stream spooled one file each; pass `attribute_names=[...]` to read them.
    """

    content_type = RECORDIO
    aliases = (JSONLINES,)
    s3_data_type = "AugmentedManifestFile"
    suffix = ".manifest"
    tabular = False
    not_a_table = ("a manifest of labelled objects (JSON Lines, or RecordIO of its AttributeNames), "
                   "not rows of numbers")

    def _chunks(self, files, batch_rows, *, attribute_names=None, **options) -> Iterator[Table]:
        names = check_attribute_names(attribute_names)
        batch_rows = batch_rows or DEFAULT_BATCH_ROWS
        features, labels = [], []
        for where, values in _group(self._payloads(files, names), names):
            features.append(values[names[0]])
            labels.append({n: values[n] for n in names[1:]})
            if len(features) == batch_rows:
                yield Table(features, labels)
                features, labels = [], []
        if features:
            yield Table(features, labels)

    def _payloads(self, files, names) -> Iterator[tuple[str, bytes]]:
        for path in files:
            path = Path(path)
            if path.stat().st_size == 0:
                continue
            if _is_recordio(path):
                with compression.open_binary(path) as f:
                    for i, _, payload in _iter_payloads_at(f, str(path), 0, 0):
                        yield f"{path} record {i}", payload
            elif _is_manifest(path, names):
                for manifest, lineno, values in iter_manifest([path], names):
                    where = f"{manifest} line {lineno}"
                    for name, value in values.items():
                        yield where, attribute_payload(name, value, where, manifest.parent)
            else:  # one spooled record of a Pipe stream
                yield str(path), path.read_bytes()

    def write(self, obj, path_or_file, labels=None, attribute_names=None, **options) -> None:
        """Write examples as a JSON Lines manifest: `obj` a list of dicts (or of first-attribute values
        with `labels` a list of dicts of the other attributes)."""
        from nbsage.formats import jsonlines
        records = []
        for i, item in enumerate(obj):
            record = dict(item) if isinstance(item, dict) else {}
            if not isinstance(item, dict):
                if not attribute_names:
                    raise DataError("writing an augmented manifest from values needs attribute_names")
                record[attribute_names[0]] = item
            if labels is not None:
                record.update(labels[i])
            records.append(record)
        out, close = compression.open_output(path_or_file)
        try:
            out.write(jsonlines.dumps(records).encode())
        finally:
            if close:
                out.close()
