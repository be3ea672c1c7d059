"""Batch-sized text/csv requests read by the compiled kernel: the same rows as `float()` then float32,
bit for bit, or no answer at all (the general parsers then read the body, errors included).
"""
from __future__ import annotations

import numpy as np
import pytest

from nbsage.errors import DataError
from nbsage.formats import text_csv

pytest.importorskip("numba")

WIDTH = 8
_RNG = np.random.default_rng(0)
VALUES = np.concatenate([_RNG.normal(size=12000) * 10.0 ** _RNG.integers(-6, 7, 12000), _RNG.random(4000),
                         np.arange(-2000, 2000)])


@pytest.fixture(scope="module", autouse=True)
def kernel():
    """The kernel compiled (or loaded from numba's cache) before the first test."""
    assert text_csv._read_features_compiled(b"1,2\n", wait=True) is not None


def body_of(cells: list[str], newline: str = "\n") -> bytes:
    return newline.join(",".join(cells[i:i + WIDTH]) for i in range(0, len(cells), WIDTH)).encode()


def by_cell(body: bytes):
    try:
        return "rows", text_csv._read_features_by_cell(body).view(np.uint32).tobytes()
    except DataError as e:
        return "error", str(e)


@pytest.mark.parametrize("form", ["{:.6g}", "{:.9g}", "{:.3f}", "{:e}", "{:+.4E}", "{!r}", "{:.17g}", "{:.0f}"])
def test_every_cell_as_float_reads_it(form):
    body = body_of([form.format(float(v)) for v in VALUES])
    rows = text_csv._read_features_compiled(body)
    assert rows is not None and rows.flags.c_contiguous and rows.dtype == np.float32
    assert ("rows", rows.view(np.uint32).tobytes()) == by_cell(body)


def test_seventeen_digits_far_from_one():
    """repr's float64 text (the SDK's CSVSerializer), down to float32's smallest normal numbers and up to its
    largest: read as float() then float32 read them, or left to the general parsers near the edges."""
    values = _RNG.normal(size=16000) * 10.0 ** _RNG.integers(-40, 39, 16000)
    body = body_of([repr(float(v)) for v in values])
    rows = text_csv._read_features_compiled(body)
    assert rows is None or ("rows", rows.view(np.uint32).tobytes()) == by_cell(body)
    settled = values[(np.abs(values) > 1e-30) & (np.abs(values) < 1e30)]
    body = body_of([repr(float(v)) for v in settled[:len(settled) // WIDTH * WIDTH]])
    rows = text_csv._read_features_compiled(body)
    assert rows is not None and ("rows", rows.view(np.uint32).tobytes()) == by_cell(body)


def test_edge_cells():
    cells = ["-0", "+1.5", "0.0000001", "1e22", "9007199254740992", ".5", "5.", "-1E-22"] * 2000
    body = body_of(cells, "\r\n") + b"\r\n\n\n"
    rows = text_csv._read_features_compiled(body)
    assert rows is not None and rows.shape == (2000, WIDTH)
    assert ("rows", rows.view(np.uint32).tobytes()) == by_cell(body)
    assert np.signbit(rows[0, 0])


def test_cells_at_a_float32_rounding_boundary_are_left_to_float():
    """17 digits of a value halfway between two float32 numbers: only the exact float64 decides."""
    low = (_RNG.random(4000) + 1).astype(np.float32)
    halfway = (low.astype(np.float64) + np.nextafter(low, np.float32(3)).astype(np.float64)) / 2
    body = body_of([f"{v:.16e}" for v in halfway])
    assert text_csv._read_features_compiled(body) is None
    assert ("rows", text_csv.read_features(body).view(np.uint32).tobytes()) == by_cell(body)


@pytest.mark.parametrize("width", [1, 2, 5])
def test_densest_rows(width):
    """One-character cells, no newline after the last row: the most rows a body of its size holds."""
    count = 40000 // width
    body = "\n".join(",".join(str(i % 10) for i in range(row, row + width)) for row in range(count)).encode()
    rows = text_csv._read_features_compiled(body)
    assert rows is not None and rows.shape == (count, width)
    assert ("rows", rows.view(np.uint32).tobytes()) == by_cell(body)


PLAIN = [f"{v:.6g}" for v in VALUES[:16000]]


def with_line(index: int, line: str) -> bytes:
    lines = body_of(PLAIN).split(b"\n")
    lines[index] = line.encode()
    return b"\n".join(lines)


@pytest.mark.parametrize("body", [
    with_line(1500, "1,2,abc,4,5,6,7,8"), with_line(12, "1,,3,4,5,6,7,8"), with_line(1999, "1,2,3"),
    with_line(3, '"1",2,3,4,5,6,7,8'), with_line(7, " 1 ,nan,-inf,Infinity,1_000,2,3,4"),
    with_line(5, "1\x0c2,2,3,4,5,6,7,8"), with_line(9, "1e400,1e-400,9007199254740993,1e23,e5,1e,-,."),
    with_line(0, "1,2,3,4,5,6,7,8,9"), body_of(PLAIN).replace(b",", b";"), b"\n".join(line + b"," for line in
                                                                                      body_of(PLAIN).split(b"\n")),
    b"  \n" * 30000,
], ids=["word", "empty cell", "ragged", "quoted", "spaces nan inf underscores", "form feed", "out of range",
        "wide first line", "semicolons", "trailing comma", "blank"])
def test_anything_else_is_left_to_the_general_parsers(body):
    assert len(body) >= text_csv.COMPILED_REQUEST_BYTES
    assert text_csv._read_features_compiled(body) is None
    try:
        answer = "rows", text_csv.read_features(body).view(np.uint32).tobytes()
    except DataError as e:
        answer = "error", str(e)
    assert answer == by_cell(body)



def test_not_loaded_in_a_batch_container(monkeypatch):
    """A batch container's workers keep to pyarrow (numba's load would cost a short job more than it saves)."""
    monkeypatch.setenv("SAGEMAKER_BATCH", "true")
    assert not text_csv._kernel_wanted()
    monkeypatch.setenv("SAGEMAKER_BATCH", "false")
    assert text_csv._kernel_wanted()


def test_a_small_body_is_read_by_the_loaded_kernel_and_does_not_load_it():
    body = body_of(PLAIN[:400])
    assert text_csv.SMALL_REQUEST_BYTES <= len(body) < text_csv.COMPILED_REQUEST_BYTES
    rows = text_csv._read_features_compiled(body, load=False)  # loaded by the module's fixture
    assert rows is not None and ("rows", rows.view(np.uint32).tobytes()) == by_cell(body)
    assert ("rows", text_csv.read_features(body).view(np.uint32).tobytes()) == by_cell(body)
