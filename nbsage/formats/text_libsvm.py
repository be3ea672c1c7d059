"""text/libsvm: `label[:weight] index:value ...` per line; indices are used as written."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import Table


def _lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        yield from enumerate(f, start=1)


def parse_lines(lines, source: str, weights: bool = False, labelled: bool = True):
    """Parse (lineno, text) pairs into CSR parts; errors name source and line."""
    indptr, indices, values, labels, wts = [0], [], [], [], []
    for lineno, line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if labelled:
            head = tokens.pop(0)
            label, _, weight = head.partition(":")
            try:
                labels.append(float(label))
                wts.append(float(weight) if weight else 1.0)
            except ValueError:
                raise DataError(f"{source} line {lineno}: label {head!r} is not a number "
                                "(text/libsvm lines start with label[:weight])") from None
        for tok in tokens:
            idx, sep, val = tok.partition(":")
            try:
                if not sep:
                    raise ValueError
                i = int(idx)
                if i < 0:
                    raise ValueError
                indices.append(i)
                values.append(float(val))
            except ValueError:
                raise DataError(f"{source} line {lineno}: {tok!r} is not index:value "
                                "(a non-negative integer index and a number)") from None
        indptr.append(len(indices))
    return indptr, indices, values, labels, wts


def to_csr(indptr, indices, values, num_features: int | None):
    import scipy.sparse as sp
    width = (max(indices) + 1) if indices else 0
    if num_features is not None:
        width = max(width, num_features)
    return sp.csr_matrix((np.asarray(values, dtype=np.float32), np.asarray(indices, dtype=np.int64),
                          np.asarray(indptr, dtype=np.int64)), shape=(len(indptr) - 1, width))


def read_table(files: list[Path], weights: bool = False, num_features: int | None = None) -> Table:
    import scipy.sparse as sp
    mats, labels, wts = [], [], []
    for path in files:
        indptr, indices, values, lab, w = parse_lines(_lines(path), str(path))
        if len(indptr) == 1:
            continue
        mats.append((indptr, indices, values))
        labels += lab
        wts += w
    if not mats:
        raise DataError("no rows: " + (", ".join(map(str, files)) if files else "the channel has no files"))
    width = max((max(m[1]) + 1) if m[1] else 0 for m in mats)
    if num_features is not None:
        width = max(width, num_features)
    features = sp.vstack([to_csr(*m, width) for m in mats]).tocsr()
    return Table(features=features, labels=np.asarray(labels, dtype=np.float32),
                 weights=np.asarray(wts, dtype=np.float32) if weights or any(x != 1.0 for x in wts) else None)


def read_features(body: bytes | str, num_features: int | None = None):
    """A text/libsvm inference request; a label column is optional and ignored."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    lines = list(enumerate(text.splitlines(), start=1))
    labelled = any(l.strip() and ":" not in l.split()[0] for _, l in lines if l.strip())
    indptr, indices, values, _, _ = parse_lines(lines, "text/libsvm request", labelled=labelled)
    if len(indptr) == 1:
        raise DataError("text/libsvm request has no rows")
    return to_csr(indptr, indices, values, num_features)
