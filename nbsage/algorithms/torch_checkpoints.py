"""The checkpoint files of the PyTorch built-ins: one numbered file each, the newest few kept.

DeepAR, Seq2Seq and Object2Vec each write `<prefix><number>.pt` into the job's checkpoint folder
(with `write_checkpoint`, so a job killed while writing never leaves nor uploads half a file) and
keep the newest `kept`. A job started again with the same folder resumes from the newest readable
file: a half-written or foreign one is skipped with a log line, and one written with other settings
(its `signature` differs) is refused, naming the settings that changed, so the job trains from
scratch rather than mixing two configurations. What a file holds is each algorithm's business.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from nbsage.checkpoint_files import write_checkpoint


class TorchCheckpoints:
    """The numbered checkpoint files of one job; subclasses name them (`prefix`, `digits`, `kept`).

    `folder` None means the job has no checkpoint location: nothing is written nor resumed.
    """

    prefix: str = ""
    digits: int = 5          # zero-padded, so the names sort in the order they were written
    kept: int = 2

    def __init__(self, folder: Path | None, signature: dict, log: Callable[[str], None]):
        self.folder = Path(folder) if folder is not None else None
        self.signature, self.log = signature, log

    def _files(self) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"{self.prefix}*.pt"), reverse=True)

    def latest(self) -> dict | None:
        """The newest readable checkpoint (its `path` added), or None: none, or other settings."""
        for path in self._files():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - a half-written or foreign file: try the previous one
                self.log(f"Checkpoint {path} could not be read ({type(e).__name__}: {e}); skipping it")
                continue
            if state.get("signature") != self.signature:
                theirs = state.get("signature") or {}
                changed = sorted(k for k in set(theirs) | set(self.signature) if theirs.get(k) != self.signature.get(k))
                self.log(f"Checkpoint {path} was written with different settings ({', '.join(changed)}); "
                         "training from scratch")
                return None
            state["path"] = str(path)
            return state
        return None

    def write(self, number: int, state: dict) -> Path | None:
        """Write `state` (which holds this job's `signature`) as checkpoint `number`; drop the oldest."""
        if self.folder is None:
            return None
        path = self.folder / f"{self.prefix}{number:0{self.digits}d}.pt"
        write_checkpoint(path, lambda f: torch.save(state, f))
        for old in self._files()[self.kept:]:
            old.unlink(missing_ok=True)
        return path
