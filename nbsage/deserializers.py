"""Response deserializers, named and behaving as the SageMaker Python SDK v2's `sagemaker.deserializers`.

A deserializer turns a response body (a stream, as boto3's StreamingBody, or bytes) into Python
data, and names the types it asks for in `ACCEPT` (a tuple, joined with ", " into the Accept
header). pandas is imported only by PandasDeserializer.
"""
from __future__ import annotations

import abc
import csv
import io
import json

import numpy as np

from nbsage.errors import DataError, UnsupportedContentType


def _read(data) -> bytes:
    """The whole body, from a stream (closed afterwards) or bytes."""
    if hasattr(data, "read"):
        try:
            return data.read()
        finally:
            close = getattr(data, "close", None)
            if close is not None:
                close()
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


class BaseDeserializer(abc.ABC):
    """Turns a response body into data; `ACCEPT` is what it asks the endpoint for."""

    @abc.abstractmethod
    def deserialize(self, stream, content_type: str):
        """Data from a response body (a stream or bytes) of the given content type."""

    @property
    @abc.abstractmethod
    def ACCEPT(self) -> tuple[str, ...]:  # noqa: N802 - the SDK's name
        """The content types this deserializer expects from the endpoint."""


class SimpleBaseDeserializer(BaseDeserializer):
    """A deserializer whose Accept type(s) are set at construction."""

    def __init__(self, accept: str | tuple[str, ...] = "*/*"):
        self.accept = accept

    @property
    def ACCEPT(self) -> tuple[str, ...]:  # noqa: N802
        return (self.accept,) if isinstance(self.accept, str) else tuple(self.accept)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(accept={self.accept!r})"


class BytesDeserializer(SimpleBaseDeserializer):
    """The body as bytes."""

    def deserialize(self, stream, content_type: str) -> bytes:
        return _read(stream)


class StringDeserializer(SimpleBaseDeserializer):
    """The body decoded to str."""

    def __init__(self, encoding: str = "UTF-8", accept: str | tuple[str, ...] = "application/json"):
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream, content_type: str) -> str:
        return _read(stream).decode(self.encoding)


class StreamDeserializer(SimpleBaseDeserializer):
    """(stream, content_type) unread; the caller closes the stream."""

    def deserialize(self, stream, content_type: str):
        if isinstance(stream, (bytes, bytearray)):
            stream = io.BytesIO(stream)
        return stream, content_type


class CSVDeserializer(SimpleBaseDeserializer):
    """CSV text as a list of rows of strings (as the SDK; see NumpyDeserializer for numbers)."""

    def __init__(self, encoding: str = "utf-8", accept: str | tuple[str, ...] = "text/csv"):
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream, content_type: str) -> list[list[str]]:
        return list(csv.reader(_read(stream).decode(self.encoding).splitlines()))


class JSONDeserializer(SimpleBaseDeserializer):
    """A JSON body as Python objects."""

    def __init__(self, accept: str | tuple[str, ...] = "application/json"):
        super().__init__(accept)

    def deserialize(self, stream, content_type: str):
        raw = _read(stream)
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"the response ({content_type or 'no content type'}) is not valid JSON: {exc}; "
                            f"it begins {raw[:80]!r}") from None


class JSONLinesDeserializer(SimpleBaseDeserializer):
    """A JSON Lines body as a list of Python objects, one per non-empty line."""

    def __init__(self, accept: str | tuple[str, ...] = "application/jsonlines"):
        super().__init__(accept)

    def deserialize(self, stream, content_type: str) -> list:
        return [json.loads(line) for line in _read(stream).decode("utf-8").splitlines() if line.strip()]


class NumpyDeserializer(SimpleBaseDeserializer):
    """A numpy array from application/x-npy, or from text/csv or application/json when the
    endpoint answers one of those. Pickled (object) arrays are refused unless allow_pickle=True."""

    def __init__(self, dtype=None, accept: str | tuple[str, ...] = "application/x-npy", allow_pickle: bool = False):
        super().__init__(accept)
        self.dtype = dtype
        self.allow_pickle = allow_pickle

    def deserialize(self, stream, content_type: str) -> np.ndarray:
        from nbsage import formats
        raw = _read(stream)
        try:
            return formats.decode_array(raw, content_type, dtype=self.dtype, allow_pickle=self.allow_pickle)
        except UnsupportedContentType:
            raise DataError(f"NumpyDeserializer cannot read content type {content_type!r}; it reads "
                            "application/x-npy, text/csv and application/json") from None


class PandasDeserializer(SimpleBaseDeserializer):
    """A DataFrame from text/csv or application/json.

    Deliberate difference from the SDK: CSV is read with header=None, because model responses
    have no header row and the SDK's default silently turns the first prediction into column names.
    """

    def __init__(self, accept: str | tuple[str, ...] = ("text/csv", "application/json")):
        super().__init__(accept)

    def deserialize(self, stream, content_type: str):
        from nbsage import formats
        raw = _read(stream)
        try:
            return formats.decode_frame(raw, content_type)
        except UnsupportedContentType:
            raise DataError(f"PandasDeserializer cannot read content type {content_type!r}; it reads text/csv "
                            "and application/json") from None


class RecordDeserializer(SimpleBaseDeserializer):
    """A RecordIO-protobuf response as a list of Record objects, as the SDK's
    sagemaker.amazon.common.RecordDeserializer."""

    def __init__(self, accept: str | tuple[str, ...] = "application/x-recordio-protobuf"):
        super().__init__(accept)

    def deserialize(self, stream, content_type: str) -> list:
        from nbsage.formats import recordio_protobuf
        return recordio_protobuf.read_records(_read(stream))


__all__ = ["BaseDeserializer", "SimpleBaseDeserializer", "BytesDeserializer", "StringDeserializer",
           "StreamDeserializer", "CSVDeserializer", "JSONDeserializer", "JSONLinesDeserializer",
           "NumpyDeserializer", "PandasDeserializer", "RecordDeserializer"]
