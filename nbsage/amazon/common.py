"""`sagemaker.amazon.common`: RecordIO-protobuf in and out, as the SDK's module of that name.

`write_numpy_to_dense_tensor(file, array, labels)` writes one `aialgs.data.Record` per row with
nbsage's vectorised writer (nbsage.formats.recordio_protobuf), byte for byte what the SDK writes;
`read_records(file)` gives the Record objects back (`record.features["values"].float32_tensor`).
"""
from __future__ import annotations

import numpy as np

from nbsage.formats import recordio_protobuf as rio
from nbsage.formats.record_pb2 import Record  # noqa: F401 - the SDK exposes Record here too
from nbsage.serializers import RecordSerializer  # noqa: F401 - the SDK's names in this module
from nbsage.deserializers import RecordDeserializer  # noqa: F401


def write_numpy_to_dense_tensor(file, array, labels=None) -> None:
    """Write a 2-D array (and optional 1-D labels) to a binary file as RecordIO-protobuf."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError("Array must be a Matrix")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError("Labels must be a Vector")
        if labels.shape[0] != array.shape[0]:
            raise ValueError(f"Label shape {labels.shape} not compatible with array shape {array.shape}")
    rio.write_dense(file, array, labels)


def write_spmatrix_to_sparse_tensor(file, array, labels=None) -> None:
    """Write a scipy sparse matrix (and optional labels) as RecordIO-protobuf sparse records."""
    import scipy.sparse as sp
    if not sp.issparse(array):
        raise TypeError("Array must be sparse")
    if array.ndim != 2:
        raise ValueError("Array must be a Matrix")
    rio.write_sparse(file, array, labels)


def read_records(file) -> list:
    """Every Record in a RecordIO-protobuf file (a binary stream, bytes or a path)."""
    return rio.read_records(file)


def read_recordio(f):
    """The payload (bytes) of each record in a RecordIO stream, as the SDK's generator."""
    yield from rio.iter_payloads(f)


def numpy_to_record_serializer():
    """The SDK v1 serializer factory: a RecordSerializer."""
    return RecordSerializer()


def record_deserializer():
    """The SDK v1 deserializer factory: a RecordDeserializer."""
    return RecordDeserializer()
