"""Training records: RecordIO-protobuf `aialgs.data.Record`s with int32 `source` and `target` ids.

The layout is the one SageMaker's `create_vocab_proto.py` writes (and `prepare` in this package):
`features["source"].int32_tensor.values` and `features["target"].int32_tensor.values`, no <s> or
</s> added. Reading checks every id against its vocabulary and names the file and record of the
first one outside it. Records longer than max_seq_len_source/target are truncated, as SageMaker
documents for these hyperparameters, and the job logs how many were and the first of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import recordio_protobuf


@dataclass
class Pairs:
    """A channel's sentence pairs as id arrays (truncated to the maximum lengths)."""

    source: list[np.ndarray]
    target: list[np.ndarray]
    truncated_source: int = 0
    truncated_target: int = 0

    def __len__(self) -> int:
        return len(self.source)

    @property
    def num_tokens(self) -> int:
        return int(sum(len(t) for t in self.target))


def encode_pair(source, target) -> bytes:
    """One record's payload: int32 `source` and `target` features."""
    from nbsage.formats.record_pb2 import Record
    record = Record()
    record.features["source"].int32_tensor.values.extend(int(i) for i in source)
    record.features["target"].int32_tensor.values.extend(int(i) for i in target)
    return record.SerializeToString()


def write_pairs(path: Path, pairs) -> int:
    """Write (source ids, target ids) pairs as RecordIO-protobuf records; the number written."""
    n = 0
    with open(path, "wb") as f:
        for source, target in pairs:
            recordio_protobuf.write_record(f, encode_pair(source, target))
            n += 1
    return n


def _ids(record, key: str, where: str) -> np.ndarray:
    if key not in record.features:
        raise DataError(f"{where}: has no feature {key!r} (features: {', '.join(sorted(record.features)) or 'none'}); "
                        "a Seq2Seq record holds int32 tensors 'source' and 'target'")
    value = record.features[key]
    kind = value.WhichOneof("value")
    if kind != "int32_tensor":
        raise DataError(f"{where}: feature {key!r} is a {kind}; Seq2Seq reads token ids as an int32_tensor")
    return np.asarray(value.int32_tensor.values, dtype=np.int64)


def check_ids(ids: np.ndarray, vocab_size: int, where: str, key: str, vocab_file: str) -> None:
    bad = np.flatnonzero((ids < 0) | (ids >= vocab_size))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where}: {key}[{i}] = {int(ids[i])} is outside the vocabulary; token ids must be "
                        f"from 0 to {vocab_size - 1} ({vocab_file} has {vocab_size} entries)")


def read_pairs(files: list[Path], vocab_sizes: tuple[int, int], max_lengths: tuple[int, int], channel: str,
               warn: Callable[[str], None]) -> Pairs:
    """Every record of a channel's files, checked against the vocabularies and truncated."""
    out = Pairs([], [])
    first_truncated = None
    for path in files:
        for index, record in enumerate(recordio_protobuf.read_records(path)):
            where = f"channel {channel!r}, {path.name}, record {index}"
            pair = []
            for key, size, limit, vocab_file in (("source", vocab_sizes[0], max_lengths[0], "vocab.src.json"),
                                                  ("target", vocab_sizes[1], max_lengths[1], "vocab.trg.json")):
                ids = _ids(record, key, where)
                check_ids(ids, size, where, key, vocab_file)
                if len(ids) > limit:
                    if key == "source":
                        out.truncated_source += 1
                    else:
                        out.truncated_target += 1
                    first_truncated = first_truncated or (where, key, len(ids), limit)
                    ids = ids[:limit]
                pair.append(ids)
            if len(pair[0]) == 0:
                raise DataError(f"{where}: the source is empty; every record needs at least one source token")
            out.source.append(pair[0])
            out.target.append(pair[1])
    if not out.source:
        raise DataError(f"channel {channel!r} holds no records")
    if first_truncated:
        where, key, n, limit = first_truncated
        warn(f"WARNING: channel {channel!r}: {out.truncated_source} source and {out.truncated_target} target "
             f"sequences were longer than max_seq_len_source/max_seq_len_target and were truncated (the first: "
             f"{where}, {key} of {n} tokens cut to {limit})")
    return out
