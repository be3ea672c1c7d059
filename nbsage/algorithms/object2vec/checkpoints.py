"""Resume: one checkpoint file per finished epoch in the checkpoint folder, the newest two kept.

`object2vec-checkpoint-epoch<NNNNN>.pt` holds the network, the optimizer, both random states and
the early-stopping progress, written with `write_checkpoint` (a job killed while writing leaves no
half file). A job started again with the same folder resumes after the newest readable one, unless
it was written with other settings (network, data size, batch size, optimizer): then it trains from
scratch and says why.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nbsage.checkpoint_files import write_checkpoint

PREFIX = "object2vec-checkpoint-epoch"
KEPT = 2


@dataclass
class Progress:
    """Where training stands: the next epoch, the best loss so far and its weights."""

    first_epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict | None = None
    best_metrics: dict = field(default_factory=dict)


class Checkpoints:
    def __init__(self, folder: Path, signature: dict, log: Callable[[str], None]):
        self.folder, self.signature, self.log = Path(folder), signature, log

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob(f"{PREFIX}*.pt"), reverse=True) if self.folder.is_dir() else []

    def save(self, epoch: int, network, optimizer, rng: np.random.Generator, progress: Progress) -> Path:
        path = self.folder / f"{PREFIX}{epoch:05d}.pt"
        state = {"epoch": epoch, "signature": self.signature, "network": network.state_dict(),
                 "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                 "numpy_rng": json.dumps(rng.bit_generator.state), "best_loss": progress.best_loss,
                 "best_epoch": progress.best_epoch, "bad_epochs": progress.bad_epochs,
                 "best_state": progress.best_state, "best_metrics": json.dumps(progress.best_metrics)}
        write_checkpoint(path, lambda f: torch.save(state, f))
        for old in self._files()[KEPT:]:
            old.unlink(missing_ok=True)
        return path

    def resume(self, network, optimizer, rng: np.random.Generator) -> Progress:
        """The progress of the newest matching checkpoint, loaded into network/optimizer/rng; else a fresh one."""
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
                return Progress()
            network.load_state_dict(state["network"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            rng.bit_generator.state = json.loads(state["numpy_rng"])
            self.log(f"Resuming from checkpoint {path}: epochs 0-{state['epoch']} done, continuing at epoch "
                     f"{state['epoch'] + 1}")
            return Progress(first_epoch=state["epoch"] + 1, best_loss=state["best_loss"],
                            best_epoch=state["best_epoch"], bad_epochs=state["bad_epochs"],
                            best_state=state["best_state"], best_metrics=json.loads(state["best_metrics"]))
        return Progress()
