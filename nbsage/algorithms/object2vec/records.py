"""Object2Vec's records: `{"label": ..., "in0": [token ids], "in1": [token ids]}`, read and checked.

One parser serves training (a bad record is a DataError naming file and line) and inference (an
InvalidRequest naming the instance), so both sides apply the same rules in the same words:
in0/in1 are non-empty lists of integer token ids below the encoder's vocab_size (SageMaker's
"Inconsistent vocab for in1 found. Vocab id ... is not less than vocab_size=..." text), a softmax
label is a class index below num_classes, a regression label a finite number. Sequences longer
than the encoder's max_seq_len are truncated (counted, and logged once per channel).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from nbsage.errors import DataError

RECORD_SHAPE = '{"label": 1, "in0": [token ids], "in1": [token ids]}'
INPUTS = ("in0", "in1")


@dataclass(frozen=True)
class Limits:
    """What one encoder accepts: token ids below vocab_size, at most max_seq_len of them kept."""

    vocab_size: int
    max_seq_len: int


@dataclass
class Pairs:
    """A channel's records as ragged token arrays (lists of int64 arrays) and labels."""

    in0: list
    in1: list
    labels: np.ndarray
    sources: list[str] = field(default_factory=list)
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.labels)


def tokens(value, name: str, where: str, limits: Limits, error: type = DataError) -> np.ndarray:
    """A record's in0/in1 as int64 ids, checked against the encoder's vocabulary."""
    if not isinstance(value, list) or not value:
        found = "an empty list" if isinstance(value, list) else type(value).__name__
        raise error(f"{where}: {name!r} must be a non-empty list of integer token ids, found {found}; "
                    f"a record is {RECORD_SHAPE}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise error(f"{where}: {name}[{i}] = {v!r} is not an integer token id")
        if v < 0 or v >= limits.vocab_size:
            enc = "enc" + name[-1]
            raise error(f"{where}: Inconsistent vocab for {name} found. Vocab id \"{int(v)}\" is not less than "
                        f"vocab_size={limits.vocab_size} (token ids of {name} must be integers from 0 to "
                        f"{limits.vocab_size - 1}; {enc}_vocab_size sets the size)")
    return np.asarray(value, dtype=np.int64)


def label(value, where: str, num_classes: int | None, error: type = DataError) -> float:
    """A softmax label (class index below num_classes) or, with num_classes None, a regression label."""
    if num_classes is None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise error(f"{where}: label {value!r} is not a finite number; output_layer=mean_squared_error "
                        "needs a real-valued label")
        return float(value)
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 0 <= value < num_classes:
        raise error(f"{where}: label {value!r} is outside the declared classes; with output_layer=softmax and "
                    f"num_classes={num_classes} a label is an integer from 0 to {num_classes - 1}")
    return float(value)


def parse_pair(obj, where: str, limits: tuple[Limits, Limits], num_classes: int | None,
               with_label: bool = True, error: type = DataError) -> tuple[np.ndarray, np.ndarray, float]:
    """(in0, in1, label) of one record; every rule names `where`."""
    if not isinstance(obj, dict):
        raise error(f"{where}: a record must be a JSON object {RECORD_SHAPE}, found {type(obj).__name__}")
    missing = [k for k in INPUTS + (("label",) if with_label else ()) if k not in obj]
    if missing:
        raise error(f"{where}: the record has no {' and no '.join(repr(m) for m in missing)}; every training "
                    f"record is {RECORD_SHAPE}")
    in0 = tokens(obj["in0"], "in0", where, limits[0], error)
    in1 = tokens(obj["in1"], "in1", where, limits[1], error)
    return in0, in1, label(obj["label"], where, num_classes, error) if with_label else 0.0


def read_channel(files: Iterable[Path], limits: tuple[Limits, Limits], num_classes: int | None,
                 root: Path | None = None, log: Callable[[str], None] | None = None, name: str = "") -> Pairs:
    """Every record of a channel's files, in file order, truncated to max_seq_len."""
    from nbsage.formats import jsonlines
    pairs = Pairs([], [], np.empty(0))
    labels: list[float] = []
    for path in files:
        path = Path(path)
        display = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)
        try:
            for lineno, obj in jsonlines.iter_file(path):
                where = f"{display} line {lineno}"
                in0, in1, y = parse_pair(obj, where, limits, num_classes)
                if len(in0) > limits[0].max_seq_len or len(in1) > limits[1].max_seq_len:
                    pairs.truncated += 1
                pairs.in0.append(in0[:limits[0].max_seq_len])
                pairs.in1.append(in1[:limits[1].max_seq_len])
                labels.append(y)
                pairs.sources.append(where)
        except DataError as e:
            raise DataError(str(e).replace(str(path), display, 1)) from None
    pairs.labels = np.asarray(labels, dtype=np.float32)
    if pairs.truncated and log is not None:
        log(f"{name or 'channel'}: {pairs.truncated} record(s) longer than enc0_max_seq_len="
            f"{limits[0].max_seq_len} or enc1_max_seq_len={limits[1].max_seq_len} were truncated")
    return pairs


def pad(sequences: list, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """([n, length] int64 ids padded with 0, [n] lengths); length defaults to the longest."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max()) if length is None and len(sequences) else (length or 1)
    out = np.zeros((len(sequences), max(width, 1)), dtype=np.int64)
    for i, s in enumerate(sequences):
        out[i, :len(s)] = s[:width]
    return out, np.minimum(lengths, width)
