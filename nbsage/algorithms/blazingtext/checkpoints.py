"""Per-epoch checkpoints in the job's checkpoint folder, so a stopped job resumes.

After an epoch the weights, the random-number state of each thread and the trainer's own
state (epochs done, best validation accuracy, ...) are written to
`<checkpoints>/blazingtext-checkpoint.bin` (with `write_checkpoint`: to a temporary name the
checkpoint sync skips, then renamed, so a job killed while writing leaves the previous checkpoint
intact and never uploads half a file). A job started again with the same
checkpoint folder, hyperparameters and data resumes after the last saved epoch; a checkpoint
written for other hyperparameters or other data is ignored, with a log line.

Every epoch is saved, except when epochs are so short that saving each would cost more than a
tenth of the training time: then an epoch is saved once the training since the last save is
ten times what that save took (the last epoch is always saved).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from nbsage.checkpoint_files import write_checkpoint

CHECKPOINT_FILE = "blazingtext-checkpoint.bin"
MAGIC = b"NBSAGE-BLAZINGTEXT-CHECKPOINT-1\n"


def fingerprint(hps: dict, *data_facts) -> str:
    """Identifies the training problem: hyperparameters (without hidden keys) and data facts."""
    visible = {k: v for k, v in sorted(hps.items()) if not k.startswith("_")}
    text = json.dumps([visible, [str(f) for f in data_facts]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def vocabulary_digest(words: list[str]) -> str:
    h = hashlib.sha256()
    for w in words:
        h.update(w.encode("utf-8", errors="replace") + b"\n")
    return h.hexdigest()[:16]


def save(folder: Path, key: str, state: dict, arrays: dict) -> Path:
    """Write the checkpoint: `state` (JSON-able) and named numpy arrays.

    The file is a JSON header followed by the arrays' raw bytes: no compression and no
    checksums, so that a checkpoint of a few hundred MB costs about what copying it does.
    """
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    entries, offset = {}, 0
    for name, a in arrays.items():
        entries[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset}
        offset += a.nbytes
    header = json.dumps({"fingerprint": key, "state": state, "arrays": entries}).encode()

    def write(f) -> None:
        f.write(MAGIC + len(header).to_bytes(8, "little") + header)
        for a in arrays.values():
            f.write(memoryview(a).cast("B"))
    return write_checkpoint(Path(folder) / CHECKPOINT_FILE, write)


def load(folder: Path, key: str, log) -> tuple[dict, dict] | None:
    """(state, arrays) of the checkpoint for this problem, or None (with a log line saying why)."""
    path = Path(folder) / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        data = path.read_bytes()
        if not data.startswith(MAGIC):
            raise ValueError("not a BlazingText checkpoint")
        size = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
        start = len(MAGIC) + 8
        header = json.loads(data[start:start + size])
        base = start + size
        arrays = {}
        for name, e in header["arrays"].items():
            dtype = np.dtype(e["dtype"])
            count = int(np.prod(e["shape"], dtype=np.int64))
            arrays[name] = np.frombuffer(data, dtype=dtype, count=count,
                                         offset=base + e["offset"]).reshape(e["shape"]).copy()
    except (OSError, ValueError, KeyError) as e:
        log(f"Checkpoint {path} cannot be read ({e}); starting from scratch")
        return None
    if header.get("fingerprint") != key:
        log(f"Checkpoint {path} was written for other hyperparameters or data; starting from scratch")
        return None
    return header["state"], arrays


class Checkpointer:
    """Saves after epochs, keeping the cost of saving under `max_share` of the training time."""

    def __init__(self, folder: Path, key: str, log, max_share: float = 0.1):
        self.folder, self.key, self.log, self.max_share = Path(folder), key, log, max_share
        self.last_cost: float | None = None
        self.last_end = time.perf_counter()

    def load(self) -> tuple[dict, dict] | None:
        return load(self.folder, self.key, self.log)

    def after_epoch(self, state: dict, arrays: Callable[[], dict], force: bool = False) -> bool:
        """Save `state` and `arrays()` unless it is too soon; True when saved."""
        now = time.perf_counter()
        if not force and self.last_cost is not None and now - self.last_end < self.last_cost / self.max_share:
            return False
        save(self.folder, self.key, state, arrays())
        self.last_end = time.perf_counter()
        self.last_cost = self.last_end - now
        return True
