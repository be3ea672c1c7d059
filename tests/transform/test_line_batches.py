"""MultiRecord Line batches: what an object ends with, and streams that read short.

An object whose last line has no newline (a one-record CSV file written without one) is sent with
the lines before it, as many as fit; a stream that returns fewer bytes than asked (a network or
decompressing reader) splits the same way as a file read whole.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

from nbsage.errors import DataError
from nbsage.transform.records import batches


class ShortReads(io.RawIOBase):
    """A stream that returns at most `most` bytes per read."""

    def __init__(self, data: bytes, most: int):
        self.data, self.most, self.pos = data, most, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = len(self.data) if size is None or size < 0 else size
        out = self.data[self.pos:self.pos + min(size, self.most)]
        self.pos += len(out)
        return out


def split(data: bytes, payload: int, most: int | None = None) -> list[tuple[bytes, int, int]]:
    stream = io.BytesIO(data) if most is None else ShortReads(data, most)
    return [(b.body, b.first, b.count) for b in batches(stream, "a.csv", "Line", "MultiRecord", payload)]


def test_last_line_without_newline_goes_with_the_lines_before_it():
    assert split(b"abc", 100) == [(b"abc", 1, 1)]
    assert split(b"1,2\n3,4", 100) == [(b"1,2\n3,4", 1, 2)]
    assert split(b"1,2\n3,4\n", 100) == [(b"1,2\n3,4\n", 1, 2)]
    assert split(b"1,2\n\n3,4", 6) == [(b"1,2\n\n", 1, 2), (b"3,4", 3, 1)]
    assert split(b"", 100) == [] and split(b" \n\n", 100) == []


@pytest.mark.parametrize("most", [1, 7, 64, None])
def test_short_reads_split_as_a_file_read_whole(most):
    rng = np.random.default_rng(most or 0)
    lines = [b"x" * int(n) for n in rng.integers(0, 40, 300)]
    data = b"\n".join(lines)  # no final newline
    got = split(data, 100, most)
    assert got == split(data, 100)
    assert b"".join(body for body, _, _ in got) == data
    assert all(len(body) <= 100 for body, _, _ in got)
    assert [first for _, first, _ in got] == list(np.cumsum([1] + [c for _, _, c in got[:-1]]))


def test_a_long_last_line_is_refused_naming_it():
    with pytest.raises(DataError, match=r"a\.csv line 2: a record"):
        split(b"1\n" + b"x" * 150, 100)
