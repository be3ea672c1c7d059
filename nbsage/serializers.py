"""Request serializers, named and behaving as the SageMaker Python SDK v2's `sagemaker.serializers`.

A serializer turns Python data into a request body and names its Content-Type (`CONTENT_TYPE`).
pandas and scipy are imported only when data of their types is passed.
"""
from __future__ import annotations

import abc
import csv
import io
import json
from collections.abc import Iterable

import numpy as np

from nbsage.errors import ValidationError


def _is_dataframe(data) -> bool:
    return type(data).__name__ == "DataFrame" and type(data).__module__.startswith("pandas")


def _is_series(data) -> bool:
    return type(data).__name__ == "Series" and type(data).__module__.startswith("pandas")


def _is_sparse(data) -> bool:
    return type(data).__module__.startswith("scipy.sparse")


class BaseSerializer(abc.ABC):
    """Turns data into a request body; `CONTENT_TYPE` is the body's MIME type."""

    @abc.abstractmethod
    def serialize(self, data):
        """The request body for `data` (bytes or str)."""

    @property
    @abc.abstractmethod
    def CONTENT_TYPE(self) -> str:  # noqa: N802 - the SDK's name
        """The Content-Type header sent with the body."""


class SimpleBaseSerializer(BaseSerializer):
    """A serializer whose Content-Type is set at construction."""

    def __init__(self, content_type: str = "application/json"):
        if not isinstance(content_type, str):
            raise ValidationError(f"content_type must be a MIME type string such as 'text/csv', got {content_type!r}")
        self.content_type = content_type

    @property
    def CONTENT_TYPE(self) -> str:  # noqa: N802
        return self.content_type

    def __repr__(self) -> str:
        return f"{type(self).__name__}(content_type={self.content_type!r})"


class CSVSerializer(SimpleBaseSerializer):
    """Rows of numbers as CSV text: a DataFrame (no header, no index), a 2-D array or list of rows
    (one line each), a 1-D array or list (one line), or a str (sent as is)."""

    def __init__(self, content_type: str = "text/csv"):
        super().__init__(content_type)

    def serialize(self, data) -> str:
        if hasattr(data, "read"):
            return data.read()
        if isinstance(data, str):
            return data
        if _is_dataframe(data):
            return data.to_csv(header=False, index=False).rstrip("\n")
        if _is_series(data):
            data = data.to_numpy()
        if _is_sparse(data):
            data = data.toarray()
        if isinstance(data, np.ndarray):
            if data.size == 0:
                raise ValidationError("CSVSerializer cannot serialize an empty array")
            if data.ndim == 0:
                data = data.reshape(1)
            if data.ndim > 2:
                data = data.reshape(data.shape[0], -1)
        if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
            raise ValidationError(f"CSVSerializer cannot serialize a {type(data).__name__}; give a DataFrame, "
                                  "an array, a list of rows, a list of values or a CSV string")
        if len(data) == 0:
            raise ValidationError("CSVSerializer cannot serialize an empty list")
        out = io.StringIO()
        writer = csv.writer(out, delimiter=",", lineterminator="\n")
        # the SDK's rule: a mutable sequence whose first item is itself a sequence is a list of rows
        first = data[0]
        many = hasattr(data, "__setitem__") and hasattr(first, "__iter__") and hasattr(first, "__getitem__")
        rows = data if many else [data]
        for row in rows:
            if isinstance(row, str):
                out.write(row.rstrip("\n") + "\n")
                continue
            if isinstance(row, np.ndarray):
                row = row.ravel()
            if len(row) == 0:
                raise ValidationError("CSVSerializer cannot serialize an empty row")
            writer.writerow(row)
        return out.getvalue().rstrip("\n")


class JSONSerializer(SimpleBaseSerializer):
    """Any JSON-able value; numpy arrays, numpy scalars and DataFrames become lists."""

    def serialize(self, data) -> str:
        if hasattr(data, "read"):
            return data.read()
        if _is_dataframe(data) or _is_series(data):
            data = data.to_numpy()
        if isinstance(data, dict):
            return json.dumps({k: _to_json(v) for k, v in data.items()}, default=_json_default)
        return json.dumps(_to_json(data), default=_json_default)


def _to_json(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if _is_dataframe(value) or _is_series(value):
        return value.to_numpy().tolist()
    return value


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


class NumpySerializer(SimpleBaseSerializer):
    """An array (or list, or anything np.array takes) in .npy format."""

    def __init__(self, dtype=None, content_type: str = "application/x-npy"):
        super().__init__(content_type)
        self.dtype = dtype

    def serialize(self, data) -> bytes:
        if hasattr(data, "read"):
            return data.read()
        if _is_dataframe(data) or _is_series(data):
            data = data.to_numpy()
        if isinstance(data, np.ndarray):
            array = data if self.dtype is None else data.astype(self.dtype)
        else:
            if isinstance(data, list) and len(data) == 0:
                raise ValidationError("NumpySerializer cannot serialize an empty list")
            array = np.array(data, dtype=self.dtype)
        if array.size == 0:
            raise ValidationError("NumpySerializer cannot serialize an empty array")
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()


class IdentitySerializer(SimpleBaseSerializer):
    """The data unchanged (bytes from a file, an already-encoded body)."""

    def __init__(self, content_type: str = "application/octet-stream"):
        super().__init__(content_type)

    def serialize(self, data):
        return data


class StringSerializer(SimpleBaseSerializer):
    """A str encoded as UTF-8."""

    def __init__(self, content_type: str = "text/plain"):
        super().__init__(content_type)

    def serialize(self, data) -> bytes:
        if isinstance(data, str):
            return data.encode("utf-8")
        raise ValidationError(f"StringSerializer serializes str, not {type(data).__name__}")


class JSONLinesSerializer(SimpleBaseSerializer):
    """An iterable of JSON-able values, one JSON document per line (or a str sent as is)."""

    def __init__(self, content_type: str = "application/jsonlines"):
        super().__init__(content_type)

    def serialize(self, data) -> str:
        if isinstance(data, str):
            return data
        if hasattr(data, "read"):
            return data.read()
        if _is_dataframe(data):
            return "\n".join(json.dumps(r, default=_json_default) for r in data.to_dict(orient="records"))
        if isinstance(data, Iterable):
            return "\n".join(json.dumps(_to_json(e), default=_json_default) for e in data)
        raise ValidationError(f"JSONLinesSerializer cannot serialize a {type(data).__name__}; "
                              "give a list of JSON-able values or a str")


class LibSVMSerializer(SimpleBaseSerializer):
    """text/libsvm lines `label index:value ...`: a str as is, or a scipy sparse matrix / dense
    array whose rows are written with label 0 and zero-based indices (zeros left out)."""

    def __init__(self, content_type: str = "text/libsvm"):
        super().__init__(content_type)

    def serialize(self, data) -> str:
        if isinstance(data, str):
            return data
        if hasattr(data, "read"):
            return data.read()
        if _is_dataframe(data) or _is_series(data):
            data = data.to_numpy()
        if _is_sparse(data):
            matrix = data.tocsr()
        else:
            array = np.asarray(data, dtype=float)
            if array.ndim == 1:
                array = array.reshape(1, -1)
            if array.ndim != 2 or array.size == 0:
                raise ValidationError(f"LibSVMSerializer needs rows of features, got shape {array.shape}")
            import scipy.sparse
            matrix = scipy.sparse.csr_matrix(array)
        lines = []
        for i in range(matrix.shape[0]):
            start, end = matrix.indptr[i], matrix.indptr[i + 1]
            pairs = " ".join(f"{j}:{repr(float(v))}" for j, v in zip(matrix.indices[start:end], matrix.data[start:end]))
            lines.append(f"0 {pairs}".rstrip())
        return "\n".join(lines)


class SparseMatrixSerializer(SimpleBaseSerializer):
    """A scipy sparse matrix in .npz format."""

    def __init__(self, content_type: str = "application/x-npz"):
        super().__init__(content_type)

    def serialize(self, data) -> bytes:
        import scipy.sparse
        buffer = io.BytesIO()
        scipy.sparse.save_npz(buffer, data)
        return buffer.getvalue()


class RecordSerializer(SimpleBaseSerializer):
    """A NumPy array (one row for a vector) as RecordIO-protobuf records, as the SDK's
    sagemaker.amazon.common.RecordSerializer sends to the first-party algorithms."""

    def __init__(self, content_type: str = "application/x-recordio-protobuf"):
        super().__init__(content_type)

    def serialize(self, data) -> bytes:
        from nbsage.formats import recordio_protobuf
        array = np.asarray(data)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise ValidationError(f"RecordSerializer needs a vector or a matrix, got an array of shape {array.shape}")
        return recordio_protobuf.encode_dense(array)


__all__ = ["BaseSerializer", "SimpleBaseSerializer", "CSVSerializer", "JSONSerializer", "NumpySerializer",
           "IdentitySerializer", "StringSerializer", "JSONLinesSerializer", "LibSVMSerializer",
           "SparseMatrixSerializer", "RecordSerializer"]
