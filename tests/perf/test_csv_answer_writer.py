"""Large text/csv answers are formatted by pyarrow: the same text as numpy's `str(float32)`, cell for cell.

pyarrow and numpy spell some float32 values apart (exponents, integers, the edges of the positional
range); those cells keep numpy's text. These check the edges and every decade on both sides.
"""
from __future__ import annotations

import numpy as np

from nbsage.formats import text_csv


def numpy_text(values) -> bytes:
    cells = np.asarray(values).astype(np.float32).astype(str).tolist()
    lines = cells if np.ndim(values) == 1 else (",".join(row) for row in cells)
    return "\n".join(lines).encode()


EDGES = np.array([0.0, -0.0, 1.0, -3.0, 2.5, np.nan, np.inf, -np.inf, 1e-45, 3.4e38, 1e-4, 1e6, 999999.94,
                  1.0000001e-4, 9.999999e-5, 1e-5, 1e-7, 1e16, 123456.5, 0.1, 1 / 3], dtype=np.float32)


def test_every_decade_and_edge_as_numpy_writes_it():
    rng = np.random.default_rng(0)
    decades = (rng.random(4000) + 0.5) * 10.0 ** rng.integers(-40, 38, 4000) * rng.choice([-1, 1], 4000)
    values = np.concatenate([decades.astype(np.float32), np.tile(EDGES, 20), np.nextafter(EDGES, np.float32(0))])
    assert values.size >= text_csv.ARROW_WRITE_VALUES
    assert text_csv.write_rows(values) == numpy_text(values)
    assert text_csv.write_rows(values[:4000].reshape(-1, 4)) == numpy_text(values[:4000].reshape(-1, 4))


def test_probabilities_and_classes():
    rng = np.random.default_rng(1)
    probabilities = rng.random(3000).astype(np.float32) ** 6  # many below 1e-4: numpy's exponent spelling
    assert text_csv.write_rows(probabilities) == numpy_text(probabilities)
    classes = rng.integers(0, 5, 3000).astype(np.float32)  # multi:softmax: '3.0', not '3'
    assert text_csv.write_rows(classes) == numpy_text(classes)
    assert text_csv.write_rows(np.arange(1000)) == numpy_text(np.arange(1000))
