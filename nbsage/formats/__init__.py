"""Readers and writers, one class per content type, found by content type.

Every algorithm and the model server read data through here:

    fmt = format_for("text/csv")                       # a Format
    for x, y in fmt.iter_batches(files, batch_rows=65536):   # a channel larger than memory
        ...
    table = read_table(files, "text/csv")              # the whole channel: Table(features, labels, weights)
    write(x, "train.csv.gz", "text/csv", labels=y)     # dense, scipy.sparse or DataFrame

The API and the algorithms never branch on a content type's name; they ask its Format:

    write_channel(frame, staging, "train", "text/csv")  # data in memory as a channel file (TrainingInput, upload_data)
    read_frame(data, "part-0.csv", "text/csv")          # a file as a DataFrame (nbsage.load)
    read_features(body, content_type)                   # an inference request's feature rows
    read_request(body, content_type)                    # its instances and configuration (DeepAR, BlazingText)
    write_records(records, accept, column="score")      # a response body
    decode_array(body, ct) / decode_frame / decode      # a response body in the client (deserializers)

`ALIASES` is the one table of other spellings (`csv`, `text/csv; label_size=1`, ...) and
`normalize_content_type` the one normaliser; `SUFFIXES` maps file names to content types.
`registered()` lists every Format, so contract tests run over all of them.

A content type's module defines a `Format` subclass and registers it with `@register`; modules are
imported when their content type is first asked for (pyarrow, scipy and Pillow load where they
read, not at `import nbsage`). Augmented manifests are chosen by the channel's S3DataType
(`format_for(ct, s3_data_type="AugmentedManifestFile")`), as SageMaker does. Errors are
`DataError`s naming the file, the line or record, and the rule that was broken.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from nbsage.errors import (DataError, InvalidRequest, NBSageError, UnsupportedAccept, UnsupportedContentType,
                           ValidationError)
# the rows every format shares, importable from here as the format modules always have
from nbsage.formats.rows import (Table, _concat_records, _rebatch, _stack, as_frame, as_rows,  # noqa: F401
                                 check_labels, describe_files, label_first, label_first_frame, source_name)

DEFAULT_BATCH_ROWS = 65536

# content type -> module under nbsage.formats (imported on first use; the module registers its Format)
_MODULES = {
    "text/csv": "text_csv",
    "text/libsvm": "text_libsvm",
    "application/x-parquet": "parquet",
    "application/x-recordio-protobuf": "recordio_protobuf",
    "application/jsonlines": "jsonlines",
    "application/json": "json_request",
    "application/x-image": "image",
    "image/jpeg": "image",
    "image/png": "image",
    "application/x-recordio": "recordio_image",
    "application/x-npy": "numpy_arrays",
    "application/x-npz": "numpy_arrays",
}
# S3DataType -> module: the data type, not the content type, says a channel is an augmented manifest
_DATA_TYPE_MODULES = {"AugmentedManifestFile": "augmented_manifest"}

# names SageMaker (or its users) write for the same content type
ALIASES = {
    "csv": "text/csv",
    "libsvm": "text/libsvm",
    "text/x-libsvm": "text/libsvm",
    "parquet": "application/x-parquet",
    "recordio-protobuf": "application/x-recordio-protobuf",
    "application/jsonl": "application/jsonlines",
    "application/x-jsonlines": "application/jsonlines",
    "jsonlines": "application/jsonlines",
    "image/jpg": "image/jpeg",
    "recordio": "application/x-recordio",
}

# file suffix -> the content type `load` reads a file of that name as (`.gz` is looked through)
SUFFIXES = {
    ".csv": "text/csv", ".tsv": "text/csv", ".txt": "text/csv",
    ".libsvm": "text/libsvm", ".svm": "text/libsvm",
    ".parquet": "application/x-parquet", ".pq": "application/x-parquet",
    ".jsonl": "application/jsonlines", ".json": "application/jsonlines", ".ndjson": "application/jsonlines",
    ".pbr": "application/x-recordio-protobuf", ".rec": "application/x-recordio-protobuf",
    ".recordio": "application/x-recordio-protobuf", ".protobuf": "application/x-recordio-protobuf",
}

# (content type, S3DataType) -> Format instance
_FORMATS: dict[tuple[str, str], "Format"] = {}


class MissingDependency(NBSageError, ImportError):
    """An optional package a format needs is not installed; the message gives the pip command."""


@dataclass
class Request:
    """An inference request's instances, as `(where, value)` pairs for error messages.

    application/json sends `{"instances": [...], "configuration": {...}}`; application/jsonlines one
    instance per line, as batch transform sends them, with no configuration (per_line True).
    """

    instances: list
    configuration: Any = None
    per_line: bool = False


class Format:
    """A content type's reader and writer.

    Subclasses implement `read_file` (one file's rows, in chunks) and `write`; `iter_batches` and
    `read_table` are built on `read_file` here, once for every format: files in order, empty
    files skipped, the same width across files, batches of exactly `batch_rows` rows.
    """

    content_type: str = ""
    aliases: tuple[str, ...] = ()
    s3_data_type: str = "S3Prefix"
    suffix: str = ""            # what a writer names its file
    sparse: bool = False        # reads and writes scipy.sparse matrices
    tabular: bool = True        # rows of numbers (features, label); False: images, manifests
    not_a_table: str = ""       # why a table of numbers cannot round-trip through this format ("" if it can)

    # ---- reading ------------------------------------------------------------------------------
    def read_file(self, path: Path, batch_rows: int | None, *, labelled: bool = True, weights: bool = False,
                  num_features: int | None = None, **options) -> Iterator[Table]:
        """One file's rows as Tables of about `batch_rows` rows (None: whatever is fastest)."""
        raise NotImplementedError

    def iter_batches(self, files: Iterable, batch_rows: int = DEFAULT_BATCH_ROWS, *, labelled: bool = True,
                     weights: bool = False, num_features: int | None = None, **options) -> Iterator[Table]:
        """Tables of `batch_rows` rows (the last may be shorter) across files, read as a stream."""
        if batch_rows is not None and (isinstance(batch_rows, bool) or not isinstance(batch_rows, int)
                                       or batch_rows < 1):
            raise ValidationError(f"batch_rows must be a positive integer, got {batch_rows!r}")
        chunks = self._chunks(list(files), batch_rows, labelled=labelled, weights=weights,
                              num_features=num_features, **options)
        if not self.tabular or batch_rows is None:
            return chunks
        return _rebatch(chunks, batch_rows)

    def read_table(self, files: Iterable, *, labelled: bool = True, weights: bool = False,
                   num_features: int | None = None, **options) -> Table:
        """Every row of the files, stacked into one Table."""
        files = [Path(f) for f in files]
        parts = list(self._chunks(files, None, labelled=labelled, weights=weights, num_features=num_features,
                                  **options))
        if not parts:
            raise DataError("no rows: " + describe_files(files))
        return _stack(parts) if self.tabular else _concat_records(parts)

    def _chunks(self, files, batch_rows, *, num_features=None, **options) -> Iterator[Table]:
        first: tuple[Path, int] | None = None
        for path in files:
            path = Path(path)
            for chunk in self.read_file(path, batch_rows, num_features=num_features, **options):
                if not chunk.num_rows:
                    continue
                if self.tabular:
                    width = chunk.features.shape[1]
                    if hasattr(chunk.features, "tocsr"):
                        if num_features is not None and width > num_features:
                            raise DataError(f"{path}: has feature index {width - 1}, and the data has "
                                            f"{num_features} features (indices 0 to {num_features - 1})")
                    elif num_features is not None and width != num_features:
                        raise DataError(f"{path}: {width} features per record, expected {num_features} "
                                        "as in the train channel")
                    elif first is None:
                        first = (path, width)
                    elif width != first[1]:
                        raise DataError(f"{path}: {width} features per record, and {first[0].name} has {first[1]}; "
                                        "every file of a channel needs the same columns")
                yield chunk

    def read_features(self, body: bytes, num_features: int | None = None):
        """The feature rows of an inference request in this content type."""
        raise UnsupportedContentType(f"{self.content_type} is not accepted as an inference request")

    # ---- writing ------------------------------------------------------------------------------
    def write(self, obj, path_or_file, labels=None, **options) -> None:
        """Write rows (dense ndarray, scipy.sparse where the format allows, DataFrame), label first."""
        raise UnsupportedContentType(f"nbsage cannot write {self.content_type}")

    # ---- data in memory: channel files and DataFrames (`TrainingInput(frame)`, `load`) -----------
    def write_channel(self, data, path: Path, *, labelled: bool = True) -> None:
        """Write what a user holds (DataFrame, ndarray, scipy.sparse; the label in its first column)
        as one channel file, the way SageMaker's built-ins read it."""
        raise UnsupportedContentType(f"cannot write in-memory data as {self.content_type!r}")

    def read_frame(self, data: bytes, name: str, header: bool | None = None):
        """One file's bytes as a pandas DataFrame (`nbsage.load`); label-first formats put it in column 0."""
        raise UnsupportedContentType(f"cannot read {name} as {self.content_type!r}")

    # ---- inference requests and responses ------------------------------------------------------
    def read_request(self, body: bytes, expect: str = "record") -> "Request":
        """The instances of a request that sends records (DeepAR, BlazingText), each with where it came from."""
        raise UnsupportedContentType(f"{self.content_type} is not accepted as an inference request")

    def write_records(self, records: list, *, column=None, envelope: str | None = "predictions") -> bytes:
        """A response body holding one record (a dict) per prediction.

        envelope names the key JSON wraps the list in (None: a bare list); column is the field a
        one-line-per-record format (text/csv) writes, or a list of fields, one cell each.
        """
        raise UnsupportedContentType(f"{self.content_type} is not a response format")

    def read_array(self, body):
        """A request body (bytes, or str for text) as the SageMaker inference toolkit's default input_fn
        decodes it for user inference code; a malformed body is an InvalidRequest (400)."""
        raise UnsupportedContentType(f"{self.content_type} is not decoded by the default input_fn")

    def write_array(self, prediction) -> bytes:
        """A prediction as the toolkit's default output_fn encodes it."""
        raise UnsupportedAccept(f"{self.content_type} is not encoded by the default output_fn")

    def decode_array(self, body: bytes, dtype=None, allow_pickle: bool = False):
        """A response body as a numpy array (NumpyDeserializer)."""
        raise UnsupportedContentType(f"{self.content_type} cannot be read as an array")

    def decode_frame(self, body: bytes):
        """A response body as a pandas DataFrame (PandasDeserializer)."""
        raise UnsupportedContentType(f"{self.content_type} cannot be read as a DataFrame")

    def decode(self, body: bytes):
        """A response body as the Python value it most naturally is (the notebook's `%sm_predict`)."""
        raise UnsupportedContentType(f"{self.content_type} has no natural Python value; keep the bytes")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.content_type}>"


def register(cls: type[Format]) -> type[Format]:
    """Class decorator: make `cls` the Format of its content type (and aliases)."""
    fmt = cls()
    for ct in (cls.content_type, *cls.aliases):
        _FORMATS[(ct, cls.s3_data_type)] = fmt
    return cls


def normalize_content_type(content_type: str | None) -> str:
    """'text/csv; label_size=1' -> 'text/csv'; aliases -> canonical names."""
    if not content_type:
        return ""
    base = content_type.split(";")[0].strip().lower()
    return ALIASES.get(base, base)


def content_types() -> list[str]:
    """Every content type with a reader."""
    return sorted(_MODULES)


def registered() -> list[Format]:
    """Every registered Format, once each (this imports every format module)."""
    for module in {*_MODULES.values(), *_DATA_TYPE_MODULES.values()}:
        importlib.import_module(f"nbsage.formats.{module}")
    unique = {id(f): f for f in _FORMATS.values()}
    return sorted(unique.values(), key=lambda f: (f.content_type, f.s3_data_type))


def names() -> list[str]:
    """The canonical content type of every registered format (an augmented manifest is named by its
    content type too; `format_for(ct, s3_data_type=...)` tells them apart)."""
    return sorted({f.content_type for f in registered()})


def _overrides(fmt: Format, method: str) -> bool:
    return getattr(type(fmt), method) is not getattr(Format, method)


def _implementing(content_type: str | None, method: str) -> Format | None:
    """The content type's Format when it implements `method`, else None."""
    try:
        fmt = format_for(content_type)
    except UnsupportedContentType:
        return None
    return fmt if _overrides(fmt, method) else None


def content_types_with(method: str) -> list[str]:
    """The content types whose Format implements `method` (e.g. "write_channel", "read_request")."""
    return sorted(f.content_type for f in registered() if f.s3_data_type == "S3Prefix" and _overrides(f, method))


def content_type_of(name: str) -> str | None:
    """The content type a file name suggests (`train.csv.gz` -> text/csv), or None."""
    name = name.rsplit("/", 1)[-1].lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return SUFFIXES.get(os.path.splitext(name)[1])


def _data_type(s3_data_type: str | None) -> str:
    return s3_data_type if s3_data_type in _DATA_TYPE_MODULES else "S3Prefix"


def format_for(content_type: str | None, s3_data_type: str | None = None) -> Format:
    """The Format of a content type (and S3DataType: AugmentedManifestFile selects augmented manifests)."""
    ct = normalize_content_type(content_type)
    dt = _data_type(s3_data_type)
    key = (ct, dt)
    if key not in _FORMATS:
        module = _DATA_TYPE_MODULES.get(dt) or _MODULES.get(ct)
        if module is None:
            raise UnsupportedContentType(
                f"content type {content_type!r} has no reader; readable types are {', '.join(content_types())}")
        importlib.import_module(f"nbsage.formats.{module}")
        if key not in _FORMATS:
            accepted = sorted(c for c, d in _FORMATS if d == dt)
            raise UnsupportedContentType(f"content type {content_type!r} is not readable as {dt}; "
                                         f"readable types are {', '.join(accepted)}")
    return _FORMATS[key]


def module_for(content_type: str):
    """The module of a content type (its Format, and its module-level helpers)."""
    ct = normalize_content_type(content_type)
    if ct not in _MODULES:
        raise UnsupportedContentType(
            f"content type {content_type!r} has no reader; readable types are {', '.join(content_types())}")
    return importlib.import_module(f"nbsage.formats.{_MODULES[ct]}")


def label_size(content_type: str | None) -> int:
    """`text/csv;label_size=0` -> 0; default 1."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip() == "label_size":
            return int(value.strip())
    return 1


def _labelled(content_type: str | None) -> bool:
    try:
        size = label_size(content_type)
    except ValueError:
        raise DataError(f"content type {content_type!r}: label_size must be 0 or 1") from None
    if size not in (0, 1):
        raise DataError(f"content type {content_type!r}: label_size={size} is not supported; use 0 (no label) "
                        "or 1 (the label first)")
    return size == 1


def read_table(files: Iterable, content_type: str, *, weights: bool = False,
               num_features: int | None = None, s3_data_type: str | None = None, **options) -> Table:
    """Read labelled rows from files of one content type and stack them.

    weights=True reads an instance weight (CSV: second column; libsvm: `label:weight`).
    num_features pads sparse data to a known width (validation must match train).
    `;label_size=0` in the content type reads rows without a label (labels is None).
    """
    return format_for(content_type, s3_data_type).read_table(
        list(files), labelled=_labelled(content_type), weights=weights, num_features=num_features, **options)


def iter_batches(files: Iterable, content_type: str, batch_rows: int = DEFAULT_BATCH_ROWS, *,
                 weights: bool = False, num_features: int | None = None, s3_data_type: str | None = None,
                 **options) -> Iterator[Table]:
    """Stream a channel as Tables of `batch_rows` rows; each unpacks as `(features, labels)`."""
    return format_for(content_type, s3_data_type).iter_batches(
        list(files), batch_rows, labelled=_labelled(content_type), weights=weights, num_features=num_features,
        **options)


def write(obj, path_or_file, content_type: str, labels=None, **options) -> None:
    """Write `obj` (dense ndarray, scipy.sparse, DataFrame) as `content_type` to a path or binary file.

    labels, when given, are written as each record's label (first column for CSV, Parquet, libsvm).
    A path ending in `.gz` is written gzipped where the format is a stream of lines or records.
    """
    fmt = format_for(content_type)
    if not _labelled(content_type) and labels is not None:
        raise DataError(f"content type {content_type!r} says label_size=0, and labels were given")
    fmt.write(obj, path_or_file, labels=labels, **options)


def read_features(body: bytes, content_type: str, num_features: int | None = None):
    """The feature rows of an inference request body; a malformed body is an InvalidRequest (400)."""
    try:
        return format_for(content_type).read_features(body, num_features=num_features)
    except DataError as e:
        raise InvalidRequest(str(e)) from None


def read_request(body: bytes, content_type: str, expect: str = "record") -> Request:
    """The instances (and configuration) of a request in `content_type`; `expect` names an instance in errors."""
    return format_for(content_type).read_request(body, expect)


def write_records(records: list, accept: str, *, column=None,
                  envelope: str | None = "predictions") -> bytes:
    """A response body in `accept` holding one record per prediction (see Format.write_records)."""
    return format_for(accept).write_records(records, column=column, envelope=envelope)


# ---- data in memory ---------------------------------------------------------------------------------
def channel_content_types() -> list[str]:
    """The content types data in memory can be written as for a channel."""
    return content_types_with("write_channel")


def write_channel(data, directory, name: str, content_type: str | None = None,
                  compression: str | None = None) -> tuple[Path, str]:
    """Write data in memory (the label in its first column) as `<directory>/<name><suffix>`.

    Returns (path, canonical content type); content_type defaults to text/csv, and
    `;label_size=0` writes records without a label. compression "Gzip" gzips the file (`.gz`).
    """
    ct = normalize_content_type(content_type or "text/csv")
    fmt = _implementing(ct, "write_channel")
    if fmt is None:
        raise UnsupportedContentType(f"cannot write in-memory data as {content_type!r}; write it to a file first, "
                                     f"or use one of {', '.join(channel_content_types())}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{fmt.suffix}"
    fmt.write_channel(data, path, labelled=_labelled(content_type))
    if compression == "Gzip":
        import gzip
        import shutil
        gz = path.with_name(path.name + ".gz")
        with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
            shutil.copyfileobj(src, dst)
        path.unlink()
        path = gz
    return path, ct


def read_frame(data: bytes, name: str, content_type: str, header: bool | None = None):
    """A file's bytes (`name` for messages and the `.tsv` rule) as a pandas DataFrame."""
    fmt = _implementing(content_type, "read_frame")
    if fmt is None:
        raise UnsupportedContentType(f"cannot read {name} as {content_type!r}; readable types are "
                                     f"{', '.join(content_types_with('read_frame'))}")
    return fmt.read_frame(data, name, header)


# ---- arrays for user inference code (the toolkit's default input_fn / output_fn) -------------------------
def array_readers() -> list[str]:
    """The content types the default input_fn decodes."""
    return content_types_with("read_array")


def array_writers() -> list[str]:
    """The content types the default output_fn encodes."""
    return content_types_with("write_array")


def read_array(body, content_type: str):
    """A request body as the default input_fn's array (UnsupportedContentType for other types)."""
    return format_for(content_type).read_array(body)


def write_array(prediction, accept: str) -> bytes:
    """A prediction encoded as the default output_fn does (UnsupportedAccept for other types)."""
    try:
        fmt = format_for(accept)
    except UnsupportedContentType:
        raise UnsupportedAccept(f"Accept {accept!r} cannot be produced by the default output_fn; it encodes "
                                f"{', '.join(array_writers())}") from None
    return fmt.write_array(prediction)


# ---- response bodies ----------------------------------------------------------------------------------
def decode_array(body: bytes, content_type: str, dtype=None, allow_pickle: bool = False):
    """A response body as a numpy array; UnsupportedContentType for a type that is not an array."""
    return format_for(content_type).decode_array(body, dtype=dtype, allow_pickle=allow_pickle)


def decode_frame(body: bytes, content_type: str):
    """A response body as a pandas DataFrame; UnsupportedContentType for a type that is not a table."""
    return format_for(content_type).decode_frame(body)


def decode(body: bytes, content_type: str | None):
    """A response body as the value it most naturally is: JSON -> objects, JSON Lines -> a list,
    CSV -> a numpy array; other text -> str, anything else -> the bytes."""
    try:
        return format_for(content_type).decode(body)
    except UnsupportedContentType:
        if normalize_content_type(content_type).startswith("text/"):
            return body.decode("utf-8", errors="replace")
        return body
