"""Batch text/csv requests: the whole-body parser answers exactly as the cell-by-cell one.

A body of more than a few rows is parsed by pyarrow at once; these check that every body, good or
bad, gets the same rows or the same error (line and cell named) as `float()` on every cell gives.
"""
from __future__ import annotations

import numpy as np
import pytest

from nbsage.errors import DataError
from nbsage.formats import text_csv

ROWS = np.random.default_rng(0).random((400, 5)).astype(np.float32)
LINES = [",".join(f"{v:.6g}" for v in row).encode() for row in ROWS]


def body_with(index: int, line: bytes) -> bytes:
    return b"\n".join(LINES[:index] + [line] + LINES[index + 1:])


def answer(read, body):
    try:
        return "rows", read(body).tobytes()
    except DataError as e:
        return "error", str(e)


BODIES = {
    "plain": b"\n".join(LINES),
    "blank lines and CRLF": b"\r\n\r\n" + b"\r\n".join(LINES) + b"\r\n  \r\n",
    "spaces, nan, inf, underscores": body_with(7, b" 1 ,nan,-inf,Infinity,1_000"),
    "word": body_with(301, b"1,2,abc,4,5"),
    "empty cell": body_with(12, b"1,,3,4,5"),
    "trailing comma": b"\n".join(line + b"," for line in LINES),
    "ragged": body_with(250, b"1,2,3"),
    "quoted cell": body_with(3, b'"1",2,3,4,5'),
    "semicolons": b"\n".join(LINES).replace(b",", b";"),
    "form feed inside a line": body_with(5, b"1\x0c2,2,3,4,5"),
    "blank": b"  \n" * 2000,
}


@pytest.mark.parametrize("name", list(BODIES))
def test_batch_body_reads_as_cell_by_cell(name):
    body = BODIES[name]
    assert len(body) >= text_csv.SMALL_REQUEST_BYTES
    assert answer(text_csv.read_features, body) == answer(text_csv._read_features_by_cell, body)
    assert answer(text_csv.read_features, body.decode()) == answer(text_csv._read_features_by_cell, body)


def test_batch_body_rows_and_errors():
    expected = np.array([[float(cell) for cell in line.split(b",")] for line in LINES], dtype=np.float32)
    assert np.array_equal(text_csv.read_features(BODIES["plain"], 5), expected)
    with pytest.raises(DataError, match=r"request line 302: 'abc' is not a number"):
        text_csv.read_features(BODIES["word"], 5)
    with pytest.raises(DataError, match=r"request line 251: expected 5 values as in line 1, found 3"):
        text_csv.read_features(BODIES["ragged"])
    with pytest.raises(UnicodeDecodeError):
        text_csv.read_features(b"\xff\xfe" * 2000)


def test_answers_written_as_float32_text():
    values = np.random.default_rng(1).standard_normal(500) * 10.0 ** np.arange(-20, 30, 0.1)
    one = np.float32(values)
    assert text_csv.write_rows(values) == "\n".join(str(np.float32(v)) for v in values).encode()
    assert text_csv.write_rows(one.reshape(-1, 4)) == "\n".join(
        ",".join(str(v) for v in row) for row in one.reshape(-1, 4)).encode()
    assert text_csv.write_rows(np.array([1, 2])) == b"1.0\n2.0"
    assert text_csv.write_rows(["a", "b"]) == b"a\nb"
