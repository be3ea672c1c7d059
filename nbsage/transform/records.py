"""Splitting an input object into records and packing records into requests (SplitType, BatchStrategy).

SageMaker's rules: `SplitType=Line` cuts on newlines, `RecordIO` and `TFRecord` on their record
frames, `None` sends the whole object as one request. `MultiRecord` packs as many records as fit in
MaxPayloadInMB into one request; `SingleRecord` sends one record per request (RecordIO and TFRecord
records without their framing). A request never spans two input objects.

Everything streams: a `Batch` is built from at most one payload's worth of bytes read ahead, so a
job holds about payload × requests in flight, whatever the size of the file. Line batches are cut
from blocks with `bytes.rfind` rather than line by line in Python: at 250-byte CSV rows that is
the difference between a few and a few hundred nanoseconds per row.

Each batch knows the number of its first record (1-based: the file's line for `Line`, the record
for the others), so an error names the file and the line.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from nbsage.errors import DataError

SPLIT_TYPES = ("None", "Line", "RecordIO", "TFRecord")
BATCH_STRATEGIES = ("MultiRecord", "SingleRecord")
RECORDIO_MAGIC = 0xCED7230A
_READ = 1 << 20


@dataclass
class Batch:
    """One request's body and where its records came from."""

    body: bytes
    first: int  # number of the first record (1-based)
    count: int  # records in the body
    unit: str = "line"  # how records are named in errors: "line" or "record"
    frames: list[bytes] | None = None  # the records, for RecordIO/TFRecord (splitting them again is not possible)

    def records(self) -> list[bytes]:
        """The records of the batch, one by one (for JoinSource and for finding the record a model rejects)."""
        if self.frames is not None:
            return self.frames
        if self.unit == "object":
            return [self.body]
        lines = self.body.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]

    def where(self, index: int | None = None) -> str:
        """'line 17' / 'lines 1-5000' / 'record 3' / 'the whole object'."""
        if self.unit == "object":
            return "the whole object"
        if index is not None:
            return f"{self.unit} {self.first + index}"
        if self.count == 1:
            return f"{self.unit} {self.first}"
        return f"{self.unit}s {self.first}-{self.first + self.count - 1}"


def too_large(name: str, where: str, size: int, max_bytes: int, split_type: str) -> DataError:
    hint = ("give split_type='Line' (or RecordIO/TFRecord) so the object is cut into records"
            if split_type == "None" else "raise max_payload (MaxPayloadInMB, up to 100)")
    return DataError(f"{name} {where}: a record of {size / 2**20:.1f} MB does not fit in MaxPayloadInMB="
                     f"{max_bytes / 2**20:g}; the input object does not split into requests that small; {hint}")


def batches(stream: BinaryIO, name: str, split_type: str, strategy: str, max_bytes: int) -> Iterator[Batch]:
    """The requests for one input object, in order."""
    if split_type == "Line":
        if strategy == "SingleRecord":
            yield from _single_lines(stream, name, max_bytes)
        else:
            yield from _line_blocks(stream, name, max_bytes)
        return
    if split_type == "None":
        body = stream.read(max_bytes + 1)
        if len(body) > max_bytes:
            size = len(body) + len(stream.read())
            raise too_large(name, "(the whole object)", size, max_bytes, split_type)
        if body:
            yield Batch(body, 1, 1, "object")
        return
    frames = _recordio_frames(stream, name) if split_type == "RecordIO" else _tfrecord_frames(stream, name)
    yield from _pack_frames(frames, name, strategy, max_bytes, split_type)


def _line_blocks(stream: BinaryIO, name: str, max_bytes: int) -> Iterator[Batch]:
    """MultiRecord over lines: as many whole lines as fit in max_bytes per batch.

    Each round reads the payload's worth of bytes after the start of a line carried from the round
    before; a full payload is cut at its last newline (the carry and the block's whole lines joined
    once: one copy of the payload), and what the object ends with is sent whole, with or without a
    final newline.
    """
    carry = b""  # the start of a line read in the round before (no newline in it)
    line = 1
    while True:
        block, eof = _fill(stream, max_bytes - len(carry))
        if eof:
            body = carry + block if carry else block
            count = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
            if body and not body.isspace():
                yield Batch(body, line, count)
            return
        cut = block.rfind(b"\n")
        if cut < 0:  # no newline within one payload: this line alone is larger than a request may be
            size = len(carry) + len(block) + _rest_of_line(stream)
            raise too_large(name, f"line {line}", size, max_bytes, "Line")
        whole = memoryview(block)[:cut + 1]
        body = b"".join((carry, whole)) if carry else (block if cut + 1 == len(block) else bytes(whole))
        carry = block[cut + 1:]
        count = body.count(b"\n")
        if not body.isspace():  # (isspace stops at the first other byte; strip would copy the payload)
            yield Batch(body, line, count)
        line += count


def _fill(stream: BinaryIO, size: int) -> tuple[bytes, bool]:
    """Up to `size` bytes, and whether the object ended before `size` (a short read alone does not say)."""
    block = stream.read(size)
    if len(block) == size:
        return block, False
    if not block:
        return b"", True
    parts = [block]
    got = len(block)
    while got < size:
        more = stream.read(size - got)
        if not more:
            return b"".join(parts), True
        parts.append(more)
        got += len(more)
    return b"".join(parts), False


def _rest_of_line(stream: BinaryIO) -> int:
    size = 0
    while chunk := stream.read(_READ):
        cut = chunk.find(b"\n")
        if cut >= 0:
            return size + cut
        size += len(chunk)
    return size


def _single_lines(stream: BinaryIO, name: str, max_bytes: int) -> Iterator[Batch]:
    for number, raw in enumerate(iter(lambda: stream.readline(max_bytes + 1), b""), start=1):
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            raise too_large(name, f"line {number}", len(raw) + _rest_of_line(stream), max_bytes, "Line")
        if raw.strip():
            yield Batch(raw.rstrip(b"\r\n"), number, 1)


def _exact(stream: BinaryIO, n: int, name: str, number: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise DataError(f"{name} record {number}: the object ends inside a {what} record "
                        f"({len(data)} of {n} bytes); is it really {what}?")
    return data


def _recordio_frames(stream: BinaryIO, name: str) -> Iterator[tuple[bytes, bytes]]:
    """(framed record, payload) of each RecordIO record (MXNet's framing, as SageMaker splits it)."""
    number = 0
    while head := stream.read(8):
        number += 1
        if len(head) < 8:
            raise DataError(f"{name} record {number}: {len(head)} stray bytes at the end of a RecordIO object")
        magic, word = struct.unpack("<II", head)
        if magic != RECORDIO_MAGIC:
            raise DataError(f"{name} record {number}: expected RecordIO's magic 0x{RECORDIO_MAGIC:08x}, found "
                            f"0x{magic:08x}; split_type='RecordIO' needs a RecordIO object")
        length = word & ((1 << 29) - 1)
        padded = length + (-length % 4)
        data = _exact(stream, padded, name, number, "RecordIO")
        yield head + data, data[:length]


def _tfrecord_frames(stream: BinaryIO, name: str) -> Iterator[tuple[bytes, bytes]]:
    """(framed record, payload) of each TFRecord record: u64 length, u32 CRC, data, u32 CRC."""
    number = 0
    while head := stream.read(12):
        number += 1
        if len(head) < 12:
            raise DataError(f"{name} record {number}: {len(head)} stray bytes at the end of a TFRecord object")
        (length,) = struct.unpack("<Q", head[:8])
        if length > 1 << 34:
            raise DataError(f"{name} record {number}: a TFRecord length of {length} bytes; "
                            "split_type='TFRecord' needs a TFRecord object")
        data = _exact(stream, length + 4, name, number, "TFRecord")
        yield head + data, data[:length]


def _pack_frames(frames, name: str, strategy: str, max_bytes: int, split_type: str) -> Iterator[Batch]:
    """RecordIO/TFRecord: one payload per request (SingleRecord), or whole frames packed up to max_bytes."""
    group: list[bytes] = []
    size, first = 0, 1
    for number, (framed, payload) in enumerate(frames, start=1):
        item = payload if strategy == "SingleRecord" else framed
        if len(item) > max_bytes:
            raise too_large(name, f"record {number}", len(item), max_bytes, split_type)
        if strategy == "SingleRecord":
            yield Batch(item, number, 1, "record", [item])
            continue
        if group and size + len(item) > max_bytes:
            yield Batch(b"".join(group), first, len(group), "record", group)
            group, size = [], 0
        if not group:
            first = number
        group.append(item)
        size += len(item)
    if group:
        yield Batch(b"".join(group), first, len(group), "record", group)
