"""Resume: one checkpoint file per finished epoch, and the state a job resumes from.

After every epoch the master writes `deepar-checkpoint-epoch<NNNNN>.pt` (with `write_checkpoint`,
so a job killed while writing never leaves nor uploads half a file) and keeps the newest two. A job
started again with the same checkpoint folder resumes after the newest readable one, unless it was
written with other settings (frequency, lengths, likelihood, network, data size, batch size): then
it trains from scratch and says why. With several hosts every rank resumes from the master's file.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nbsage.algorithms import distributed
from nbsage.algorithms.deepar.step import TrainingModule
from nbsage.algorithms.torch_checkpoints import TorchCheckpoints


@dataclass
class Progress:
    """Where training stands: the first epoch still to train and what the epochs so far found."""

    first_epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict | None = None  # the lowest-loss epoch's weights
    history: list[float] = field(default_factory=list)


class Checkpoints(TorchCheckpoints):
    """One file per finished epoch in the checkpoint folder; the newest readable one resumes."""

    prefix = "deepar-checkpoint-epoch"

    def save(self, state: dict) -> Path:
        return self.write(state["epoch"], {**state, "signature": self.signature})

    def save_epoch(self, epoch: int, module: TrainingModule, rng: np.random.Generator, progress: Progress) -> Path:
        """The checkpoint of a finished epoch: the module, both random states and the progress."""
        return self.save({
            "epoch": epoch, **module.state_dict(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": json.dumps(rng.bit_generator.state),
            "best_loss": progress.best_loss, "best_epoch": progress.best_epoch, "bad_epochs": progress.bad_epochs,
            "best_model": progress.best_state, "history": progress.history})


def resume(checkpoints: Checkpoints, module: TrainingModule, rng: np.random.Generator, cluster,
           log: Callable[[str], None]) -> Progress:
    """Load the newest matching checkpoint into `module` (and the random states on one host)."""
    if cluster.distributed:
        # the master's checkpoint, on every rank: weights, optimizer and scheduler state must agree
        resumed = distributed.broadcast_object(checkpoints.latest() if cluster.is_master else None)
    else:
        resumed = checkpoints.latest()
    if resumed is None:
        return Progress()
    module.load_state_dict(resumed)
    if not cluster.distributed:
        torch.set_rng_state(resumed["torch_rng"])
        rng.bit_generator.state = json.loads(resumed["numpy_rng"])
    progress = Progress(first_epoch=resumed["epoch"] + 1, best_loss=resumed["best_loss"],
                        best_epoch=resumed["best_epoch"], bad_epochs=resumed["bad_epochs"],
                        best_state=resumed["best_model"], history=list(resumed["history"]))
    log(f"Resuming from checkpoint {resumed['path']}: epochs 0-{resumed['epoch']} done, "
        f"continuing at epoch {progress.first_epoch}")
    return progress
