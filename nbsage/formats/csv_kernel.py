"""A compiled parser for the common text/csv request body: plain decimal numbers, no quotes or spaces.

Why compiled: a 1,000-row x 30 request is 200 KB of text; pyarrow's reader spends about half of
its millisecond tokenising into 30 columns and the rest converting them, then the columns are
copied into rows. This kernel reads the bytes once, straight into the float32 rows, in a third
of that time, so that a batch request costs about what the model's predict does.

It accepts only what it can read exactly as Python's `float()` reads it, then numpy's float32:
lines split by `\\n` or `\\r\\n` (blank lines skipped), every line `width` cells split by `,`, each
cell `[+-]digits[.digits][(e|E)[+-]digits]` of at most 18 digits. Where the digits make an
integer of at most 2**53 and the decimal exponent lies in -22..22, the value is that integer times
(or divided by) an exact power of ten, one correctly rounded float64 operation (Clinger's fast
path): the same float64 as `float()` gives, rounded to float32 once, as numpy does. Other cells
(17 digits, as `repr` writes float64: what the SDK's CSVSerializer sends) come within a relative
2**-50 of the exact value; they are taken when no float32 rounding boundary lies that close, where
`float()`'s float64 rounds to the same float32 (all but about one cell in 30 million). Anything
else (spaces, quotes, nan/inf, underscores, longer cells, a ragged row, an empty cell) returns -1
and the caller reads the body the general way, errors included.

numba compiles it on first use and caches the machine code next to this file (or under
NUMBA_CACHE_DIR); `text_csv` loads it in the background so that no request waits for that.
"""
from __future__ import annotations

import math

import numpy as np
from numba import config, njit

_POW10 = np.array([10.0 ** k for k in range(23)])  # exact in float64 up to 10**22
_MAX_MANTISSA = 1 << 53  # integers up to this are exact in float64
_DIGITS_LIMIT = 10 ** 17  # digits stop at 18 (repr writes 17): before an int64 overflows


@njit(cache=True, inline="always")
def _scaled(mantissa, scale):
    """mantissa * 10**scale in float64: exact and then one rounding where the mantissa is at most
    2**53 and |scale| at most 22; else, for scale in -66..44, within five roundings (a relative
    error under 2**-50)."""
    value = np.float64(mantissa)
    while scale > 22:
        value *= _POW10[22]
        scale -= 22
    while scale < -22:
        value /= _POW10[22]
        scale += 22
    return value * _POW10[scale] if scale >= 0 else value / _POW10[-scale]


@njit(cache=True, inline="always")
def _float32_settled(value):
    """Whether every float64 within 2**-49 (relative) of `value` rounds to the same float32 as it does:
    then the correctly rounded float64 of the cell, which is that close, rounds to it as well.

    float32 values in the binade [2**(e-1), 2**e) are u = 2**(e-24) apart, so the rounding
    boundaries there are the odd multiples of u/2 from the binade's start (exact arithmetic below).
    """
    v = abs(value)
    if v < 1e-37 or v > 3e38:  # near float32's subnormals or its overflow: not worth the cases
        return False
    fraction, exponent = math.frexp(v)
    u = math.ldexp(1.0, exponent - 24)
    t = (v - math.ldexp(1.0, exponent - 1)) / u
    return abs((t - math.floor(t)) - 0.5) * u > v * 2.0 ** -49


@njit(cache=True, nogil=True)
def parse_rows(data, width, out):
    """Parse `data` (uint8 bytes) into `out` (float32, room for every row, `width` columns); the
    number of rows read, or -1 when some part of the body is not of the plain form."""
    n = data.shape[0]
    i = 0
    row = 0
    while i < n:
        c = data[i]
        if c == 10:  # a blank line
            i += 1
            continue
        if c == 13 and i + 1 < n and data[i + 1] == 10:
            i += 2
            continue
        if row >= out.shape[0]:
            return -1
        col = 0
        while True:  # one cell a turn
            neg = False
            if i < n and (data[i] == 45 or data[i] == 43):  # '-' '+'
                neg = data[i] == 45
                i += 1
            mantissa = 0
            digits = 0
            scale = 0
            while i < n:
                d = np.int64(data[i]) - 48
                if d < 0 or d > 9:
                    break
                if mantissa >= _DIGITS_LIMIT:
                    return -1
                mantissa = mantissa * 10 + d
                digits += 1
                i += 1
            if i < n and data[i] == 46:  # '.'
                i += 1
                while i < n:
                    d = np.int64(data[i]) - 48
                    if d < 0 or d > 9:
                        break
                    if mantissa >= _DIGITS_LIMIT:
                        return -1
                    mantissa = mantissa * 10 + d
                    digits += 1
                    scale -= 1
                    i += 1
            if digits == 0:
                return -1
            if i < n and (data[i] == 101 or data[i] == 69):  # 'e' 'E'
                i += 1
                negative_exponent = False
                if i < n and (data[i] == 45 or data[i] == 43):
                    negative_exponent = data[i] == 45
                    i += 1
                exponent = 0
                exponent_digits = 0
                while i < n:
                    d = np.int64(data[i]) - 48
                    if d < 0 or d > 9:
                        break
                    if exponent < 10000:
                        exponent = exponent * 10 + d
                    exponent_digits += 1
                    i += 1
                if exponent_digits == 0:
                    return -1
                scale += -exponent if negative_exponent else exponent
            if scale > 44 or scale < -66 or col >= width:  # float32's range, 18 digits either side
                return -1
            value = _scaled(mantissa, scale)
            if mantissa != 0 and (mantissa > _MAX_MANTISSA or scale > 22 or scale < -22) and \
                    not _float32_settled(value):
                return -1
            out[row, col] = np.float32(-value if neg else value)
            col += 1
            if i >= n:
                break
            c = data[i]
            if c == 44:  # ','
                i += 1
                continue
            if c == 10:
                i += 1
                break
            if c == 13 and i + 1 < n and data[i + 1] == 10:
                i += 2
                break
            return -1
        if col != width:
            return -1
        row += 1
    return row


def read_rows(data: bytes, width: int) -> np.ndarray | None:
    """The body's rows as float32, or None where the general parser must read it."""
    # a row of `width` cells takes at least 2 * width bytes with its newline (the last row one less):
    # room for every row without counting the lines first
    out = np.empty(((len(data) + 1) // (2 * width), width), dtype=np.float32)
    count = parse_rows(np.frombuffer(data, dtype=np.uint8), width, out)
    if count <= 0:
        return None
    return out if count == out.shape[0] else out[:count]


def warm() -> None:
    """Compile (or load from the cache) the kernel: one tiny call. Under NUMBA_DISABLE_JIT the kernel
    would run as Python, far slower than pyarrow: refused."""
    if config.DISABLE_JIT:
        raise RuntimeError("NUMBA_DISABLE_JIT is set")
    read_rows(b"1,2\n3,4", 2)
