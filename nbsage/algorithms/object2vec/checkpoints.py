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

import numpy as np
import torch

from nbsage.algorithms.torch_checkpoints import TorchCheckpoints


@dataclass
class Progress:
    """Where training stands: the next epoch, the best loss so far and its weights."""

    first_epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict | None = None
    best_metrics: dict = field(default_factory=dict)


class Checkpoints(TorchCheckpoints):
    prefix = "object2vec-checkpoint-epoch"

    def save(self, epoch: int, network, optimizer, rng: np.random.Generator, progress: Progress) -> Path:
        state = {"epoch": epoch, "signature": self.signature, "network": network.state_dict(),
                 "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                 "numpy_rng": json.dumps(rng.bit_generator.state), "best_loss": progress.best_loss,
                 "best_epoch": progress.best_epoch, "bad_epochs": progress.bad_epochs,
                 "best_state": progress.best_state, "best_metrics": json.dumps(progress.best_metrics)}
        return self.write(epoch, state)

    def resume(self, network, optimizer, rng: np.random.Generator) -> Progress:
        """The progress of the newest matching checkpoint, loaded into network/optimizer/rng; else a fresh one."""
        state = self.latest()
        if state is None:
            return Progress()
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        self.log(f"Resuming from checkpoint {state['path']}: epochs 0-{state['epoch']} done, continuing at epoch "
                 f"{state['epoch'] + 1}")
        return Progress(first_epoch=state["epoch"] + 1, best_loss=state["best_loss"],
                        best_epoch=state["best_epoch"], bad_epochs=state["bad_epochs"],
                        best_state=state["best_state"], best_metrics=json.loads(state["best_metrics"]))
