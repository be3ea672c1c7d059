"""The input objects of a transform job and where each one's `.out` goes.

`S3Prefix`: every object whose key starts with S3Uri (a local path, a folder, or any fsspec URL,
s3:// included); `ManifestFile`: S3Uri is a manifest, `[{"prefix": "s3://b/p/"}, "a.csv", "dir/b.csv"]`.
For `s3://b/in/dir/data.csv` under S3Uri `s3://b/in` the output is `<S3OutputPath>/dir/data.csv.out`:
the object's path relative to the prefix, with `.out` appended. An object given exactly (the
prefix is the object itself) keeps its file name.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from nbsage.errors import DataError, ValidationError

DATA_TYPES = ("S3Prefix", "ManifestFile")
COMPRESSION_TYPES = ("None", "Gzip")
_HIDDEN = (".", "_")  # .crc, _SUCCESS, .ipynb_checkpoints: written beside data by tools, never data


@dataclass(frozen=True)
class InputObject:
    url: str  # what fsspec opens
    relative: str  # the name under the prefix; the output is <output_path>/<relative>.out
    size: int


def _fs(url: str):
    import fsspec
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as e:
        raise ValidationError(f"cannot read {url}: {e}") from None


def _url(fs, path: str) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


def list_objects(uri: str, data_type: str = "S3Prefix") -> list[InputObject]:
    """The job's input objects, in key order."""
    if data_type == "ManifestFile":
        return _manifest_objects(uri)
    uri = os.path.expanduser(uri)
    fs, path = _fs(uri)
    try:
        if fs.isfile(path):
            return [InputObject(_url(fs, path), path.rstrip("/").rsplit("/", 1)[-1], fs.size(path))]
        found = fs.find(path.rstrip("/"), detail=True) if fs.isdir(path) else {}
        base = path.rstrip("/")
        if not found:  # a key prefix, not a folder: s3://b/in/part- matches part-0.csv, part-1.csv
            parent = base.rsplit("/", 1)[0] if "/" in base else base
            found = {p: info for p, info in fs.find(parent, detail=True).items() if p.startswith(base)} \
                if fs.isdir(parent) else {}
            base = parent
    except (OSError, ValueError) as e:
        raise DataError(f"the transform input {uri} cannot be listed: {e}") from None
    objects = []
    for p, info in sorted(found.items()):
        relative = p[len(base):].lstrip("/")
        if info.get("type", "file") != "file" or any(part.startswith(_HIDDEN) for part in relative.split("/")):
            continue
        objects.append(InputObject(_url(fs, p), relative, int(info.get("size") or 0)))
    if not objects:
        raise DataError(f"the transform input {uri} holds no objects (S3Prefix: a file, a folder or a key prefix)")
    return objects


def _manifest_objects(uri: str) -> list[InputObject]:
    import fsspec
    try:
        with fsspec.open(os.path.expanduser(uri), "rt") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"the manifest {uri} cannot be read as JSON: {e}") from None
    if not (isinstance(manifest, list) and manifest and isinstance(manifest[0], dict) and "prefix" in manifest[0]):
        raise DataError(f'the manifest {uri} is not a ManifestFile: expected [{{"prefix": "s3://bucket/path/"}}, '
                        '"relative/key-1", "relative/key-2", ...]')
    prefix = str(manifest[0]["prefix"])
    objects = []
    for i, key in enumerate(manifest[1:], start=2):
        if not isinstance(key, str) or not key:
            raise DataError(f"the manifest {uri} item {i}: {key!r} is not an object key (a relative path string)")
        url = os.path.expanduser(prefix.rstrip("/") + "/" + key.lstrip("/"))
        fs, path = _fs(url)
        try:
            size = fs.size(path)
        except (OSError, FileNotFoundError):
            raise DataError(f"the manifest {uri} item {i}: {url} does not exist") from None
        objects.append(InputObject(_url(fs, path), key.lstrip("/"), int(size or 0)))
    return objects


def open_object(obj: InputObject, compression_type: str = "None"):
    """A binary stream over the object, decompressed as it is read when CompressionType is Gzip."""
    import fsspec
    return fsspec.open(obj.url, "rb", compression="gzip" if compression_type == "Gzip" else None).open()
