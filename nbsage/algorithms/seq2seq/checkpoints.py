"""Resume: a checkpoint file at every validation checkpoint, and the state a job resumes from.

When the job has a checkpoint location (CheckpointConfig), every `checkpoint_frequency_num_batches`
batches writes `seq2seq-checkpoint-<updates>.pt` (with `write_checkpoint`, so a job killed while
writing never leaves half a file) holding the network, optimizer and schedule, where the data
stands (epoch and batch), the random state, and the best checkpoint so far; the newest two are
kept. A job started again with the same folder resumes after the newest readable one, unless it
was written with other settings (network, data size, batching): then it trains from scratch and
says why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from nbsage.algorithms.torch_checkpoints import TorchCheckpoints


@dataclass
class Progress:
    """Where training stands and what the checkpoints so far found."""

    epoch: int = 0
    batch: int = 0              # the next batch of `epoch`
    updates: int = 0
    checkpoint: int = 0
    best_value: float = math.nan
    best_checkpoint: int = -1
    best_metrics: dict = field(default_factory=dict)
    bad_checkpoints: int = 0
    best_state: dict | None = None
    history: list = field(default_factory=list)

    def to_state(self) -> dict:
        return dict(self.__dict__)


class Checkpoints(TorchCheckpoints):
    prefix = "seq2seq-checkpoint-"
    digits = 8

    def save(self, progress: Progress, network, optimizer, schedule) -> Path | None:
        state = {"signature": self.signature, "progress": progress.to_state(),
                 "network": {k: v.detach().cpu() for k, v in network.state_dict().items()},
                 "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                 "torch_rng": torch.get_rng_state()}
        return self.write(progress.updates, state)


def resume(checkpoints: Checkpoints, network, optimizer, schedule, log: Callable[[str], None]) -> Progress:
    state = checkpoints.latest()
    if state is None:
        return Progress()
    network.load_state_dict(state["network"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    progress = Progress(**state["progress"])
    log(f"Resuming from checkpoint {state['path']}: {progress.updates} updates and {progress.checkpoint} "
        f"checkpoints done, continuing at epoch {progress.epoch}, batch {progress.batch}")
    return progress
