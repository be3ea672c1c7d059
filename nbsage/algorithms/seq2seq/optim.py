"""Seq2Seq's optimizers (adam, sgd, rmsprop) and learning-rate schedules, in plain tensor operations.

torch.optim imports the torch._dynamo compiler on its first step (2 s on an idle machine, far more
on a busy one): longer than a small job's training. These few lines do what the hyperparameters
ask — the three optimizer_type values with weight_decay and sgd's momentum, clip_gradient as an
element-wise clip (MXNet's), and the three lr_scheduler_type rules, which count checkpoints, as
Sockeye's do — and keep their state for checkpoints.
"""
from __future__ import annotations

import math

import torch


class Optimizer:
    """adam (Kingma & Ba, bias-corrected), sgd (with momentum when set) or rmsprop (Hinton's)."""

    def __init__(self, params, kind: str, lr: float, weight_decay: float = 0.0, momentum: float | None = None,
                 clip: float = -1.0):
        self.params = [p for p in params if p.requires_grad]
        self.kind, self.lr, self.weight_decay, self.clip = kind, lr, weight_decay, clip
        self.momentum = momentum or 0.0
        self.step_count = 0
        self.slots = [[torch.zeros_like(p) for p in self.params] for _ in range(self._num_slots())]

    def _num_slots(self) -> int:
        return {"adam": 2, "rmsprop": 1, "sgd": 1 if self.momentum else 0}[self.kind]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        grads = [p.grad for p in self.params]
        if self.clip is not None and self.clip >= 0:
            for g in grads:
                if g is not None:
                    g.clamp_(-self.clip, self.clip)
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.kind == "adam":
                m, v = self.slots[0][i], self.slots[1][i]
                m.mul_(0.9).add_(g, alpha=0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                c1, c2 = 1 - 0.9 ** self.step_count, 1 - 0.999 ** self.step_count
                p.addcdiv_(m, (v.sqrt() / math.sqrt(c2)).add_(1e-8), value=-self.lr / c1)
            elif self.kind == "rmsprop":
                v = self.slots[0][i]
                v.mul_(0.95).addcmul_(g, g, value=0.05)
                p.addcdiv_(g, v.sqrt().add_(1e-8), value=-self.lr)
            elif self.momentum:
                buf = self.slots[0][i]
                buf.mul_(self.momentum).add_(g)
                p.add_(buf, alpha=-self.lr)
            else:
                p.add_(g, alpha=-self.lr)

    def state_dict(self) -> dict:
        return {"lr": self.lr, "step": self.step_count, "slots": [[s.cpu() for s in slot] for slot in self.slots]}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.step_count = float(state["lr"]), int(state["step"])
        for mine, saved in zip(self.slots, state["slots"]):
            for dst, src in zip(mine, saved):
                dst.copy_(src)


class Schedule:
    """The learning rate after each checkpoint, as lr_scheduler_type says.

    plateau_reduce: multiply by `factor` after `threshold` checkpoints without a new best;
    fixed_rate_inv_t: lr0 / (1 + t / half_life); fixed_rate_inv_sqrt_t: lr0 / sqrt(1 + 3 t / half_life)
    (both halve the rate after half_life checkpoints).
    """

    def __init__(self, optimizer: Optimizer, kind: str, factor: float, threshold: int, half_life: int):
        self.optimizer, self.kind, self.factor, self.threshold, self.half_life = optimizer, kind, factor, threshold, half_life
        self.initial = optimizer.lr
        self.bad = 0
        self.checkpoints = 0

    def after_checkpoint(self, improved: bool) -> bool:
        """Record a checkpoint; True when the learning rate changed."""
        self.checkpoints += 1
        before = self.optimizer.lr
        if self.kind == "plateau_reduce":
            self.bad = 0 if improved else self.bad + 1
            if self.bad >= self.threshold:
                self.optimizer.lr *= self.factor
                self.bad = 0
        elif self.kind == "fixed_rate_inv_t":
            self.optimizer.lr = self.initial / (1 + self.checkpoints / self.half_life)
        else:
            self.optimizer.lr = self.initial / math.sqrt(1 + 3 * self.checkpoints / self.half_life)
        return self.optimizer.lr != before

    def state_dict(self) -> dict:
        return {"bad": self.bad, "checkpoints": self.checkpoints, "initial": self.initial}

    def load_state_dict(self, state: dict) -> None:
        self.bad, self.checkpoints, self.initial = int(state["bad"]), int(state["checkpoints"]), float(state["initial"])
