"""SGD (with momentum), Adam and RMSProp over all parallel models at once.

Weights have shape [features, models, outputs] and the bias [models, outputs]; every model has
its own learning rate, L2 (`wd`), L1 and step schedule. L2 is added to the gradient (MXNet's
weight decay); L1 is applied as a proximal step after the update: each weight shrinks towards 0
by l1 times the step size that coordinate just took, and stops at 0. That gives exact zeros,
which a subgradient never does.
"""
from __future__ import annotations

import numpy as np

EPSILON = 1e-8
RMSPROP_DECAY = 0.9


class ParallelOptimizer:
    def __init__(self, settings, grid, weight_shape: tuple[int, int, int]):
        self.kind = settings.optimizer
        self.lr = grid.learning_rate.astype(np.float64)
        self.wd = grid.wd.astype(np.float64)
        self.l1 = grid.l1.astype(np.float64)
        self.step_every = grid.lr_scheduler_step.astype(np.float64)
        self.factor = grid.lr_scheduler_factor.astype(np.float64)
        self.min_lr = np.minimum(grid.lr_scheduler_minimum_lr.astype(np.float64), self.lr)
        self.use_scheduler = settings.use_lr_scheduler
        self.bias_lr_mult = settings.bias_lr_mult
        self.bias_wd_mult = settings.bias_wd_mult
        self.momentum = settings.momentum
        self.beta_1, self.beta_2 = settings.beta_1, settings.beta_2
        self.use_bias = settings.use_bias
        d, m, k = weight_shape
        self.t = 0
        self.state_w = [np.zeros(weight_shape) for _ in range(self._slots())]
        self.state_b = [np.zeros((m, k)) for _ in range(self._slots())]

    def _slots(self) -> int:
        return {"sgd": 1 if self.momentum else 0, "adam": 2, "rmsprop": 1}[self.kind]

    def current_lr(self) -> np.ndarray:
        """Learning rate of each model for the next update (step schedule, floored)."""
        if not self.use_scheduler:
            return self.lr
        decays = np.floor(self.t / self.step_every)
        return np.maximum(self.lr * self.factor ** decays, self.min_lr)

    def step(self, w: np.ndarray, b: np.ndarray, grad_w: np.ndarray, grad_b: np.ndarray) -> None:
        """One update of w [d, m, k] and b [m, k] in place."""
        lr = self.current_lr()
        self.t += 1
        grad_w = grad_w + self.wd[None, :, None] * w if self.wd.any() else grad_w
        lr_w = lr[None, :, None]
        step_w, size_w = self._direction(grad_w, self.state_w, lr_w)
        w -= step_w
        if self.l1.any():
            threshold = self.l1[None, :, None] * size_w
            np.copysign(np.maximum(np.abs(w) - threshold, 0.0), w, out=w)
        if self.use_bias:
            wd_b = self.wd * self.bias_wd_mult
            if wd_b.any():
                grad_b = grad_b + wd_b[:, None] * b
            step_b, _ = self._direction(grad_b, self.state_b, (lr * self.bias_lr_mult)[:, None])
            b -= step_b

    def _direction(self, g, state, lr):
        """(update to subtract, per-coordinate step size) for gradient g."""
        if self.kind == "sgd":
            if self.momentum:
                buf = state[0]
                buf *= self.momentum
                buf += g
                g = buf
            return lr * g, lr
        if self.kind == "adam":
            m, v = state
            m *= self.beta_1
            m += (1.0 - self.beta_1) * g
            v *= self.beta_2
            v += (1.0 - self.beta_2) * g * g
            m_hat = m / (1.0 - self.beta_1 ** self.t)
            v_hat = v / (1.0 - self.beta_2 ** self.t)
            size = lr / (np.sqrt(v_hat) + EPSILON)
            return size * m_hat, size
        # rmsprop
        (v,) = state
        v *= RMSPROP_DECAY
        v += (1.0 - RMSPROP_DECAY) * g * g
        size = lr / (np.sqrt(v) + EPSILON)
        return size * g, size
