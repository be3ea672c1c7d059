"""One training step: draw windows, score their likelihood, take an optimizer step.

`TrainingModule` is what GluonTS calls the lightning module: the network with its likelihood, its
optimizer (Adam with gradient clipping) and learning-rate schedule (halved on a plateau), and the
step that fits a mini-batch of windows. A window is context_length + prediction_length points at a
uniformly random position of its series (the prediction range lies inside the series), fitted at
every observed point with the true values as lags. With several hosts the network runs through
DistributedDataParallel (`distributed.wrap(TrainStep(network))`), which averages the gradients in
backward(); the hand-written Adam then takes the same step on every rank.
"""
from __future__ import annotations

import torch

from nbsage.algorithms.deepar.likelihoods import Likelihood
from nbsage.algorithms.deepar.network import DeepARNetwork
from nbsage.algorithms.deepar.optim import Adam, Plateau
from nbsage.algorithms.deepar.windows import SeriesTable

GRADIENT_CLIP = 10.0
LR_PATIENCE, LR_FACTOR, MIN_LR = 10, 0.5, 5e-5


class TrainStep(torch.nn.Module):
    """The network's forward pass as one module, so DistributedDataParallel can wrap it."""

    def __init__(self, network: DeepARNetwork):
        super().__init__()
        self.network = network

    def forward(self, lags, features, cat, scale):
        raw, _ = self.network(lags, features, self.network.static_features(cat, scale))
        return raw


class TrainingModule:
    """The network, its likelihood, optimizer and schedule, and `training_step`."""

    def __init__(self, network: DeepARNetwork, likelihood: Likelihood, lags: list[int], context_length: int,
                 prediction_length: int, learning_rate: float, device: torch.device, step_model=None):
        self.network, self.likelihood, self.device, self.step_model = network, likelihood, device, step_model
        self.context_length, self.prediction_length = context_length, prediction_length
        self.lags = torch.tensor(lags, dtype=torch.long, device=device)
        self.optimizer = Adam(network.parameters(), lr=learning_rate)
        self.scheduler = Plateau(self.optimizer, factor=LR_FACTOR, patience=LR_PATIENCE, min_lr=MIN_LR)

    def training_step(self, table: SeriesTable, lengths: torch.Tensor, idx: torch.Tensor) -> tuple[float, float]:
        """Fit windows of series `idx`; returns (loss summed over observed points, observed points)."""
        C, P, lik = self.context_length, self.prediction_length, self.likelihood
        # forecast start t uniform in [1, n - P]: the prediction range lies inside the series
        t = 1 + (torch.rand(len(idx), device=self.device) * (lengths[idx] - P)).long()
        win = table.window(idx, t - C, C + P, self.lags, C, lik.scaled)
        if self.step_model is None:
            raw, _ = self.network(win.lags, win.features, self.network.static_features(win.cat, win.scale))
        else:
            raw = self.step_model(win.lags, win.features, win.cat, win.scale)
        nll = lik.nll(lik.params(raw, win.scale.unsqueeze(1)), win.target)
        observed = win.observed.sum()
        loss = (nll * win.observed).sum() / observed.clamp(min=1.0)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), GRADIENT_CLIP)
        self.optimizer.step()
        return float(loss.detach()) * float(observed), float(observed)

    def end_epoch(self, loss: float) -> bool:
        """Feed the epoch's loss to the schedule; True when it lowered the learning rate."""
        return self.scheduler.step(loss)

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the module (the keys checkpoints have always had)."""
        return {"model": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
