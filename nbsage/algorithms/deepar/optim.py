"""Adam and a plateau rule for the learning rate, in plain tensor operations.

torch.optim's optimizers import the torch._dynamo compiler on first use, which costs 2 s on an
idle machine and far more on a busy one: longer than a small DeepAR job's training. These few
lines do what DeepAR needs (Adam, its state for checkpoints, halving the learning rate when the
epoch loss stops improving) without that import.
"""
from __future__ import annotations

import math

import torch


class Adam:
    """Adam (Kingma & Ba) with bias correction, as torch.optim.Adam with default settings."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps = lr, betas, eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        b1, b2 = self.betas
        correction1 = 1 - b1 ** self.step_count
        correction2 = 1 - b2 ** self.step_count
        step_size = self.lr / correction1
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            g = p.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(correction2)).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)

    def state_dict(self) -> dict:
        return {"lr": self.lr, "step": self.step_count, "exp_avg": [m.cpu() for m in self.exp_avg],
                "exp_avg_sq": [v.cpu() for v in self.exp_avg_sq]}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.step_count = float(state["lr"]), int(state["step"])
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, list(state["exp_avg"]) + list(state["exp_avg_sq"])):
            dst.copy_(src)


class Plateau:
    """Multiply the learning rate by `factor` after `patience` epochs without a new best loss."""

    def __init__(self, optimizer: Adam, factor: float = 0.5, patience: int = 10, min_lr: float = 5e-5):
        self.optimizer, self.factor, self.patience, self.min_lr = optimizer, factor, patience, min_lr
        self.best, self.bad = math.inf, 0

    def step(self, loss: float) -> bool:
        """Record an epoch's loss; True when the learning rate was just lowered."""
        if loss < self.best:
            self.best, self.bad = loss, 0
            return False
        self.bad += 1
        if self.bad > self.patience and self.optimizer.lr > self.min_lr:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.bad = 0
            return True
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad = float(state["best"]), int(state["bad"])
