"""application/x-recordio-protobuf: SageMaker's RecordIO framing around `aialgs.data.Record`.

Framing, per record: uint32 LE magic 0xCED7230A, uint32 LE word (low 29 bits the payload length,
top 3 bits the continuation flag: 0 whole, 1 first, 2 middle, 3 last part), the payload, zero
padding to a multiple of 4 bytes.

Records are built and parsed with the protobuf library (`record_pb2`). Dense float32 matrices —
the common case, and the one that must be fast — take a vectorised path: one record is
serialised by protobuf with sentinel values, which gives the exact byte layout every row shares
(only the float bytes differ, since packed repeated floats have a fixed width); the whole file is
then one (rows x record_size) byte array filled column-block-wise by numpy. Reading checks that
every record has that same layout byte for byte (else it falls back to protobuf per record), so
the fast path never accepts a file that protobuf would read differently.
"""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import Format, Table, as_rows, check_labels, label_first, label_first_frame, register

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1


# ---- framing -------------------------------------------------------------------------------------
def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def frame(payload: bytes) -> bytes:
    """One whole record (cflag 0)."""
    return _MAGIC_BYTES + struct.pack("<I", len(payload)) + payload + b"\x00" * _pad(len(payload))


def write_record(f: BinaryIO, payload: bytes) -> None:
    f.write(frame(payload))


def iter_payloads(f: BinaryIO, source: str = "stream") -> Iterator[bytes]:
    """Payloads of every record; multi-part records (cflag 1..3) are reassembled."""
    index, offset, parts = 0, 0, []
    read = f.read
    while True:
        header = read(8)
        if not header:
            if parts:
                raise DataError(f"{source}: truncated RecordIO file: record {index} ends inside a multi-part record")
            return
        if len(header) < 8:
            raise DataError(f"{source}: truncated RecordIO file: record {index} at byte {offset} has an "
                            f"incomplete {len(header)}-byte header (8 expected)")
        magic, word = struct.unpack("<II", header)
        if magic != MAGIC:
            raise DataError(f"{source}: record {index} at byte {offset}: wrong magic number 0x{magic:08x} "
                            f"(RecordIO records start with 0x{MAGIC:08x}); not a RecordIO-protobuf file?")
        length, cflag = word & _LENGTH_MASK, word >> 29
        body = read(length + _pad(length))
        if len(body) < length:
            raise DataError(f"{source}: truncated RecordIO file: record {index} at byte {offset} declares "
                            f"{length} bytes, only {len(body)} remain")
        payload = body[:length]
        offset += 8 + len(body)
        if cflag == 0:
            if parts:
                raise DataError(f"{source}: record {index} at byte {offset}: a whole record inside a multi-part record")
            index += 1
            yield payload
        elif cflag in (1, 2, 3):
            if (cflag == 1) != (not parts):
                raise DataError(f"{source}: record {index}: continuation flag {cflag} out of order")
            parts.append(payload)
            if cflag == 3:
                # dmlc splits a payload where the magic occurs; the magic is put back between parts
                yield _MAGIC_BYTES.join(parts)
                parts = []
                index += 1
        else:
            raise DataError(f"{source}: record {index} at byte {offset}: invalid continuation flag {cflag}")


def _open(src) -> tuple[BinaryIO, str, bool]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(src)), "request body", True
    if isinstance(src, (str, os.PathLike)):
        return open(src, "rb"), str(src), True
    return src, getattr(src, "name", "stream"), False


def read_records(src) -> list:
    """Every Record of a file, path, bytes or binary stream (protobuf objects)."""
    f, name, close = _open(src)
    try:
        return read_records_from(f, name)
    finally:
        if close:
            f.close()


# ---- Record <-> arrays ---------------------------------------------------------------------------
_TENSOR_FOR_DTYPE = {np.dtype(np.float32): "float32_tensor", np.dtype(np.float64): "float64_tensor",
                     np.dtype(np.int32): "int32_tensor"}


def _tensor_field(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype in _TENSOR_FOR_DTYPE:
        return _TENSOR_FOR_DTYPE[dtype]
    if np.issubdtype(dtype, np.integer):
        return "int32_tensor"
    if np.issubdtype(dtype, np.floating):
        return "float64_tensor"
    raise DataError(f"cannot write dtype {dtype} as RecordIO-protobuf; use float32, float64 or int32")


def _record(features, label=None, keys=None, shape=None, field="float32_tensor", label_field="float32_tensor"):
    from nbsage.formats.record_pb2 import Record
    r = Record()
    t = getattr(r.features["values"], field)
    t.values.extend(features)
    if keys is not None:
        t.keys.extend(keys)
    if shape is not None:
        t.shape.extend(shape)
    if label is not None:
        getattr(r.label["values"], label_field).values.extend(np.atleast_1d(label).tolist())
    return r


def _dense_template(d: int, labelled: bool, label_dtype) -> tuple[bytes, int, int | None] | None:
    """(payload with sentinel values, offset of the d feature floats, offset of the label float)."""
    sentinel = np.arange(1, d + 1, dtype=np.float32) + np.float32(0.5)
    label_sentinel = np.float32(-123456.5) if label_dtype == np.float32 else np.float64(-123456.5)
    r = _record(sentinel.tolist(), label_sentinel if labelled else None,
                label_field=_tensor_field(label_dtype) if labelled else "float32_tensor")
    payload = r.SerializeToString()
    f_off = payload.find(sentinel.tobytes())
    l_off = payload.find(np.asarray([label_sentinel]).tobytes()) if labelled else None
    if f_off < 0 or (labelled and l_off < 0) or payload.count(sentinel.tobytes()) != 1:
        return None
    return payload, f_off, l_off


def encode_dense(array, labels=None) -> bytes:
    """A dense matrix (one Record per row) as RecordIO-protobuf bytes.

    float32 features with float32/float64 labels (or none) take the vectorised path; other
    dtypes are written record by record with protobuf, with the SDK's dtype mapping.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise DataError(f"RecordIO-protobuf dense writer needs a 2-D array, got shape {array.shape}")
    n, d = array.shape
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != n:
            raise DataError(f"labels must be 1-D with one label per row ({n}), got shape {labels.shape}")
    fast = (array.dtype == np.float32 and d > 0 and
            (labels is None or labels.dtype in (np.float32, np.float64)))
    template = _dense_template(d, labels is not None, labels.dtype if labels is not None else None) if fast else None
    if template is None:
        field = _tensor_field(array.dtype)
        label_field = _tensor_field(labels.dtype) if labels is not None else None
        out = io.BytesIO()
        for i in range(n):
            r = _record(array[i].tolist(), labels[i] if labels is not None else None, field=field,
                        label_field=label_field or "float32_tensor")
            write_record(out, r.SerializeToString())
        return out.getvalue()
    payload, f_off, l_off = template
    size = 8 + len(payload) + _pad(len(payload))
    buf = np.zeros((n, size), dtype=np.uint8)
    buf[:, :8] = np.frombuffer(_MAGIC_BYTES + struct.pack("<I", len(payload)), dtype=np.uint8)
    buf[:, 8:8 + len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    buf[:, 8 + f_off:8 + f_off + 4 * d] = np.ascontiguousarray(array, dtype="<f4").view(np.uint8).reshape(n, 4 * d)
    if labels is not None:
        width = labels.dtype.itemsize
        buf[:, 8 + l_off:8 + l_off + width] = np.ascontiguousarray(labels, dtype=labels.dtype.newbyteorder("<")).view(
            np.uint8).reshape(n, width)
    return buf.tobytes()


def encode_sparse(matrix, labels=None) -> bytes:
    """A scipy sparse matrix, one Record per row: values, keys (column indices), shape [cols]."""
    import scipy.sparse as sp
    csr = sp.csr_matrix(matrix)
    n, d = csr.shape
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape[0] != n:
            raise DataError(f"labels must have one label per row ({n}), got {labels.shape[0]}")
    field = _tensor_field(csr.dtype)
    label_field = _tensor_field(labels.dtype) if labels is not None else "float32_tensor"
    out = io.BytesIO()
    for i in range(n):
        lo, hi = csr.indptr[i], csr.indptr[i + 1]
        r = _record(csr.data[lo:hi].tolist(), labels[i] if labels is not None else None,
                    keys=csr.indices[lo:hi].astype(np.uint64).tolist(), shape=[d], field=field,
                    label_field=label_field)
        write_record(out, r.SerializeToString())
    return out.getvalue()


def write_dense(f: BinaryIO, array, labels=None) -> None:
    f.write(encode_dense(array, labels))


def write_sparse(f: BinaryIO, matrix, labels=None) -> None:
    f.write(encode_sparse(matrix, labels))


def _decode_dense_fast(data: bytes):
    """(features float32 [n, d], labels or None) when every record shares one dense layout, else None."""
    if len(data) < 8:
        return None
    magic, word = struct.unpack_from("<II", data, 0)
    if magic != MAGIC or word >> 29:
        return None
    length = word & _LENGTH_MASK
    size = 8 + length + _pad(length)
    if size == 0 or len(data) % size:
        return None
    n = len(data) // size
    from nbsage.formats.record_pb2 import Record
    first = Record()
    try:
        first.ParseFromString(data[8:8 + length])
    except Exception:
        return None
    if set(first.features) != {"values"} or first.features["values"].WhichOneof("value") != "float32_tensor":
        return None
    ft = first.features["values"].float32_tensor
    if len(ft.keys) or len(ft.shape):
        return None
    labelled = bool(first.label)
    label_dtype = None
    if labelled:
        if set(first.label) != {"values"}:
            return None
        kind = first.label["values"].WhichOneof("value")
        label_dtype = {"float32_tensor": np.float32, "float64_tensor": np.float64}.get(kind)
        if label_dtype is None or len(getattr(first.label["values"], kind).values) != 1:
            return None
        if first.uid or first.metadata or first.configuration:
            return None
    d = len(ft.values)
    template = _dense_template(d, labelled, label_dtype)
    if template is None:
        return None
    payload, f_off, l_off = template
    if len(payload) != length:
        return None
    buf = np.frombuffer(data, dtype=np.uint8).reshape(n, size)
    mask = np.ones(size, dtype=bool)
    mask[8 + f_off:8 + f_off + 4 * d] = False
    width = np.dtype(label_dtype).itemsize if labelled else 0
    if labelled:
        mask[8 + l_off:8 + l_off + width] = False
    expected = np.zeros(size, dtype=np.uint8)
    expected[:8] = np.frombuffer(data[:8], dtype=np.uint8)
    expected[8:8 + length] = np.frombuffer(payload, dtype=np.uint8)
    cols = np.flatnonzero(mask)
    if not np.array_equal(buf[:, cols], np.broadcast_to(expected[cols], (n, cols.size))):
        return None
    features = np.ascontiguousarray(buf[:, 8 + f_off:8 + f_off + 4 * d]).view("<f4").reshape(n, d)
    labels = None
    if labelled:
        labels = np.ascontiguousarray(buf[:, 8 + l_off:8 + l_off + width]).view(
            np.dtype(label_dtype).newbyteorder("<")).reshape(n)
    return features, labels


def _tensor_values(value):
    kind = value.WhichOneof("value")
    if kind is None or kind == "bytes":
        return None, None, None
    t = getattr(value, kind)
    return np.asarray(t.values), (np.asarray(t.keys, dtype=np.int64) if len(t.keys) else None), list(t.shape)


def decode(data: bytes, source: str = "request body", num_features: int | None = None):
    """(features, labels or None) of RecordIO-protobuf bytes: dense ndarray, or CSR when sparse."""
    fast = _decode_dense_fast(data)
    if fast is not None:
        return fast
    return records_to_arrays(read_records_from(io.BytesIO(data), source), source, num_features)


def records_to_arrays(records, source: str, num_features: int | None = None):
    rows, keys_list, labels, sparse, width = [], [], [], False, num_features or 0
    for i, r in enumerate(records):
        if "values" not in r.features:
            raise DataError(f"{source}: record {i} has no features['values'] tensor")
        values, keys, shape = _tensor_values(r.features["values"])
        if values is None:
            raise DataError(f"{source}: record {i}: features['values'] is not a numeric tensor")
        if keys is not None:
            sparse = True
            if not shape:
                raise DataError(f"{source}: record {i}: a sparse tensor (keys) needs a shape")
            width = max(width, int(shape[-1]))
            if len(keys) != len(values):
                raise DataError(f"{source}: record {i}: {len(keys)} keys for {len(values)} values")
        else:
            width = max(width, len(values))
        rows.append(values)
        keys_list.append(keys)
        if r.label:
            lv, _, _ = _tensor_values(r.label["values"]) if "values" in r.label else (None, None, None)
            if lv is None or len(lv) == 0:
                raise DataError(f"{source}: record {i}: label['values'] is not a numeric tensor")
            labels.append(lv[0])
        elif labels:
            raise DataError(f"{source}: record {i} has no label while earlier records do")
    if labels and len(labels) != len(rows):
        raise DataError(f"{source}: only some records have a label")
    label_array = np.asarray(labels, dtype=np.float32) if labels else None
    if sparse:
        import scipy.sparse as sp
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        cols, vals = [], []
        for i, (values, keys) in enumerate(zip(rows, keys_list)):
            k = keys if keys is not None else np.arange(len(values))
            cols.append(k)
            vals.append(values)
            indptr[i + 1] = indptr[i] + len(values)
        matrix = sp.csr_matrix((np.concatenate(vals).astype(np.float32) if vals else np.zeros(0, np.float32),
                                np.concatenate(cols) if cols else np.zeros(0, np.int64), indptr),
                               shape=(len(rows), width))
        return matrix, label_array
    if not rows:
        return np.zeros((0, width), dtype=np.float32), label_array
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        i = next(j for j, r in enumerate(rows) if len(r) != len(rows[0]))
        raise DataError(f"{source}: record {i} has {len(rows[i])} features, record 0 has {len(rows[0])}")
    return np.asarray(rows, dtype=np.float32), label_array


def read_table(files: list[Path], weights: bool = False, num_features: int | None = None):
    """A training channel of labelled records (features['values'], label['values'])."""
    from nbsage.formats import Table
    feats, labs = [], []
    for path in files:
        data = Path(path).read_bytes()
        if not data:
            continue
        fast = _decode_dense_fast(data)
        x, y = fast if fast is not None else records_to_arrays(
            read_records_from(io.BytesIO(data), str(path)), str(path), num_features)
        if y is None:
            raise DataError(f"{path}: records have no label['values']; training needs a label per record")
        feats.append(x)
        labs.append(np.asarray(y, dtype=np.float32))
    if not feats:
        raise DataError("no records: " + (", ".join(map(str, files)) if files else "the channel has no files"))
    if any(hasattr(x, "tocsr") for x in feats):
        import scipy.sparse as sp
        width = max(x.shape[1] for x in feats)
        features = sp.vstack([sp.csr_matrix(x, shape=(x.shape[0], width)) if hasattr(x, "tocsr")
                              else sp.csr_matrix(x) for x in feats]).tocsr()
    else:
        widths = {x.shape[1] for x in feats}
        if len(widths) > 1:
            raise DataError(f"RecordIO files of one channel have different feature counts: {sorted(widths)}")
        features = feats[0] if len(feats) == 1 else np.concatenate(feats)
    return Table(features=features, labels=np.concatenate(labs), weights=None)


def read_records_from(f: BinaryIO, name: str) -> list:
    from nbsage.formats.record_pb2 import Record
    out = []
    for i, payload in enumerate(iter_payloads(f, name)):
        record = Record()
        try:
            record.ParseFromString(payload)
        except Exception as e:
            raise DataError(f"{name}: record {i} is not a valid Record protobuf ({e})") from None
        out.append(record)
    return out


def read_features(body: bytes, num_features: int | None = None):
    """An inference request: features of each record (labels ignored)."""
    features, _ = decode(body, "request body", num_features)
    return features


def encode_outputs(outputs: list[dict]) -> bytes:
    """Inference responses: one Record per prediction, outputs in the `label` map as float32 tensors."""
    from nbsage.formats.record_pb2 import Record
    out = io.BytesIO()
    for item in outputs:
        r = Record()
        for key, value in item.items():
            r.label[key].float32_tensor.values.extend(np.atleast_1d(np.asarray(value, dtype=np.float32)).tolist())
        write_record(out, r.SerializeToString())
    return out.getvalue()


# ---- streaming and the Format (added for nbsage.formats' registry) -------------------------------
def frame_parts(payload: bytes) -> bytes:
    """One record framed as dmlc's RecordIOWriter frames it: split where the magic occurs.

    dmlc (MXNet's im2rec, SageMaker's RecordIO wrapping) never lets the magic number appear at a
    4-byte-aligned offset inside a record, so a reader can find record boundaries by scanning; a
    payload holding it is written as parts (cflag 1, 2, ..., 3) with the magic dropped between
    them. `iter_payloads` puts them back together. Without the magic inside this equals `frame`.
    """
    data = memoryview(payload)
    n = len(payload)
    cuts = []
    start = 0
    while True:
        i = payload.find(_MAGIC_BYTES, start, n - n % 4)
        if i < 0:
            break
        if i % 4 == 0:
            cuts.append(i)
            start = i + 4
        else:
            start = i + 1
    if not cuts:
        return frame(payload)
    out = []
    prev = 0
    for k, i in enumerate(cuts):
        out.append(_MAGIC_BYTES + struct.pack("<I", ((1 if k == 0 else 2) << 29) | (i - prev)) + data[prev:i])
        prev = i + 4
    rest = n - prev
    out.append(_MAGIC_BYTES + struct.pack("<I", (3 << 29) | rest) + data[prev:] + b"\x00" * _pad(rest))
    return b"".join(bytes(p) for p in out)


def _iter_payloads_at(f: BinaryIO, source: str, index: int, offset: int) -> Iterator[tuple[int, int, bytes]]:
    """(record index, byte offset, payload) from the current position; errors count from index/offset."""
    parts, start = [], offset
    read = f.read
    while True:
        header = read(8)
        if not header:
            if parts:
                raise DataError(f"{source}: truncated RecordIO file: record {index} at byte {start} ends inside "
                                "a multi-part record")
            return
        if len(header) < 8:
            raise DataError(f"{source}: truncated RecordIO file: record {index} at byte {offset} has an "
                            f"incomplete {len(header)}-byte header (8 expected)")
        magic, word = struct.unpack("<II", header)
        if magic != MAGIC:
            raise DataError(f"{source}: record {index} at byte {offset}: wrong magic number 0x{magic:08x} "
                            f"(RecordIO records start with 0x{MAGIC:08x}); not a RecordIO file, or a "
                            "corrupt one?")
        length, cflag = word & _LENGTH_MASK, word >> 29
        body = read(length + _pad(length))
        if len(body) < length:
            raise DataError(f"{source}: truncated RecordIO file: record {index} at byte {offset} declares "
                            f"{length} bytes, only {len(body)} remain")
        if not parts:
            start = offset
        offset += 8 + len(body)
        if cflag == 0:
            if parts:
                raise DataError(f"{source}: record {index} at byte {start}: a whole record inside a multi-part record")
            yield index, start, body[:length]
            index += 1
        elif cflag in (1, 2, 3):
            if (cflag == 1) != (not parts):
                raise DataError(f"{source}: record {index} at byte {start}: continuation flag {cflag} out of order")
            parts.append(body[:length])
            if cflag == 3:
                yield index, start, _MAGIC_BYTES.join(parts)
                parts = []
                index += 1
        else:
            raise DataError(f"{source}: record {index} at byte {offset}: invalid continuation flag {cflag}")


def _parse_record(payload: bytes, source: str, index: int):
    from nbsage.formats.record_pb2 import Record
    record = Record()
    try:
        record.ParseFromString(payload)
    except Exception as e:
        raise DataError(f"{source}: record {index} is not a valid Record protobuf ({e})") from None
    return record


def _records_to_batch(records, source: str, first: int, labelled: bool, num_features: int | None):
    """(features, labels) of parsed records; errors name the record by its index in the file."""
    try:
        features, labels = records_to_arrays(records, source, num_features)
    except DataError as e:
        # records_to_arrays counts from 0 within the batch; say where in the file
        import re
        text = re.sub(r"record (\d+)", lambda m: f"record {first + int(m.group(1))}", str(e))
        raise DataError(text) from None
    if labelled and labels is None and len(records):
        raise DataError(f"{source}: record {first} has no label['values']; training records need a label "
                        "(write them with labels, or read with ';label_size=0')")
    return features, (labels if labelled else None)


def _read_rest(f: BinaryIO) -> bytes:
    """The rest of a file in one read (a plain file's size is known: no chunks to join)."""
    if isinstance(f, io.BufferedReader):
        try:
            size = os.fstat(f.fileno()).st_size - f.tell()
            return f.read(size) + f.read()
        except OSError:
            pass
    return f.read()


class _Rewound:
    """A binary stream that first gives back bytes already read from it."""

    def __init__(self, head: bytes, f: BinaryIO):
        self.head, self.f = memoryview(head), f

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.f.read(n)
        if n < 0:
            out, self.head = bytes(self.head) + self.f.read(), memoryview(b"")
            return out
        out = bytes(self.head[:n])
        self.head = self.head[n:]
        if len(out) < n:
            out += self.f.read(n - len(out))
        return out


def iter_file_batches(path, batch_rows: int | None = None, *, labelled: bool = True,
                      num_features: int | None = None) -> Iterator[tuple]:
    """(features, labels) batches of one RecordIO-protobuf file (plain or gzipped), read as a stream.

    Dense float32 records that share one layout are decoded by numpy straight from the bytes
    (batch_rows records per read); from the first record that does not, the rest of the file goes
    through protobuf record by record. batch_rows None: the whole file when it is all dense
    records of one layout (as `read_table` wants it), else 65536 records per batch.
    """
    from nbsage.formats import DEFAULT_BATCH_ROWS, compression
    rows = batch_rows or DEFAULT_BATCH_ROWS
    source = str(path)
    with compression.open_binary(path) as f:
        index, offset, stream = 0, 0, f
        try:
            while True:  # fast path while every record has the layout of the batch's first
                if batch_rows is None:  # the whole file in one read
                    data = _read_rest(f)
                    header = data[:8]
                else:
                    header = f.read(8)
                    data = header
                if not header:
                    return
                stream = _Rewound(data, f)
                if len(header) < 8:
                    break
                magic, word = struct.unpack("<II", header)
                if magic != MAGIC or word >> 29:
                    break
                length = word & _LENGTH_MASK
                size = 8 + length + _pad(length)
                if batch_rows is not None:
                    data = header + f.read(size * rows - 8)
                    stream = _Rewound(data, f)
                fast = _decode_dense_fast(data) if len(data) % size == 0 else None
                if fast is None:
                    break
                x, y = fast
                if labelled and y is None:
                    raise DataError(f"{source}: record {index} has no label['values']; training records need a "
                                    "label (write them with labels, or read with ';label_size=0')")
                if num_features is not None and x.shape[1] != num_features:
                    raise DataError(f"{source}: record {index} has {x.shape[1]} features, expected {num_features}")
                yield x, (np.asarray(y, dtype=np.float32) if labelled else None)
                index += x.shape[0]
                offset += len(data)
                stream = f
            batch, first = [], index
            for i, _, payload in _iter_payloads_at(stream, source, index, offset):
                if not batch:
                    first = i
                batch.append(_parse_record(payload, source, i))
                if len(batch) == rows:
                    yield _records_to_batch(batch, source, first, labelled, num_features)
                    batch = []
            if batch:
                yield _records_to_batch(batch, source, first, labelled, num_features)
        except compression.GZIP_ERRORS as e:
            raise compression.corrupt(path, e) from None


def iter_batches(files, batch_rows: int = 65536, *, labelled: bool = True, num_features: int | None = None):
    """A RecordIO-protobuf channel as Tables of batch_rows records, each unpacking as (features, labels)."""
    from nbsage.formats import format_for
    return format_for(CONTENT_TYPE).iter_batches(files, batch_rows, labelled=labelled, num_features=num_features)


def write(obj, path_or_file, labels=None) -> None:
    """Dense (ndarray, DataFrame) or scipy.sparse rows as RecordIO-protobuf, one Record per row."""
    from nbsage.formats import format_for
    format_for(CONTENT_TYPE).write(obj, path_or_file, labels=labels)


CONTENT_TYPE = "application/x-recordio-protobuf"


@register
class RecordIOProtobufFormat(Format):
    """application/x-recordio-protobuf: one `aialgs.data.Record` per row, dense or sparse."""

    content_type = CONTENT_TYPE
    suffix = ".pbr"
    sparse = True

    def read_file(self, path, batch_rows, *, labelled=True, weights=False, num_features=None, **options):
        for x, y in iter_file_batches(path, batch_rows, labelled=labelled, num_features=num_features):
            yield Table(x, y)

    def read_features(self, body, num_features=None):
        return read_features(body, num_features)

    def write_channel(self, data, path: Path, *, labelled: bool = True) -> None:
        """Label-first data as float32 Records (`;label_size=0`: records without a label)."""
        what = "RecordIO-protobuf training data" if labelled else "RecordIO-protobuf data"
        try:
            features, labels = label_first(data, what, labelled)
        except DataError as e:
            if labelled and "needs the label first" in str(e):
                raise DataError(f"{e} (use ';label_size=0' for unlabelled data)") from None
            raise
        features = features.astype(np.float32) if hasattr(features, "tocsr") else \
            np.ascontiguousarray(features, dtype=np.float32)
        self.write(features, path, labels=None if labels is None else labels.astype(np.float32))

    def read_frame(self, data: bytes, name: str, header: bool | None = None):
        """Column 0 the label (when the records have one), then the features."""
        features, labels = records_to_arrays(read_records_from(io.BytesIO(data), name), name)
        return label_first_frame(features, labels)

    def write(self, obj, path_or_file, labels=None, **options):
        """float32 dense rows take the vectorised path; sparse rows are one Record each."""
        from nbsage.formats import compression
        rows, _ = as_rows(obj, "application/x-recordio-protobuf writer")
        labels = check_labels(labels, rows.shape[0])
        if labels is not None and labels.dtype not in (np.float32, np.float64, np.int32):
            labels = labels.astype(np.float32)
        out, close = compression.open_output(path_or_file)
        try:
            step = 1 << 16
            for start in range(0, rows.shape[0], step):
                part = rows[start:start + step]
                lab = None if labels is None else labels[start:start + step]
                if hasattr(part, "tocsr"):
                    out.write(encode_sparse(part, lab))
                else:
                    if part.dtype not in (np.float32, np.float64, np.int32):
                        part = part.astype(np.float32)
                    out.write(encode_dense(part, lab))
        finally:
            if close:
                out.close()
