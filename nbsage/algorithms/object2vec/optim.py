"""Object2Vec's five optimizers in plain tensor operations (torch.optim's default formulas).

torch.optim's optimizers import the torch._dynamo compiler on their first step: 2 s on an idle
machine, 8 s and more on a busy one, longer than a small job's training (DeepAR's optim.py says the
same). adam, adagrad, adadelta, rmsprop and sgd here take `lr` and `weight_decay` (L2, added to the
gradient as torch.optim does) and keep their state as lists of tensors for checkpoints.
"""
from __future__ import annotations

import torch


class Optimizer:
    """One update rule over the trainable parameters; `buffers` names its per-parameter state."""

    buffers: tuple[str, ...] = ()

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay = lr, weight_decay
        self.step_count = 0
        self.state = {name: [torch.zeros_like(p) for p in self.params] for name in self.buffers}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad if not self.weight_decay else p.grad + self.weight_decay * p
            self.update(i, p, g)

    def update(self, i: int, p: torch.Tensor, g: torch.Tensor) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "lr": self.lr, **{k: list(v) for k, v in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.step_count, self.lr = int(state["step_count"]), float(state["lr"])
        for name in self.buffers:
            self.state[name] = [t.to(p.device) for t, p in zip(state[name], self.params)]


class SGD(Optimizer):
    def update(self, i, p, g):
        p.add_(g, alpha=-self.lr)


class Adam(Optimizer):
    buffers = ("exp_avg", "exp_avg_sq")
    betas, eps = (0.9, 0.999), 1e-8

    def update(self, i, p, g):
        b1, b2 = self.betas
        m, v = self.state["exp_avg"][i], self.state["exp_avg_sq"][i]
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        step_size = self.lr / (1 - b1 ** self.step_count)
        denom = (v / (1 - b2 ** self.step_count)).sqrt_().add_(self.eps)
        p.addcdiv_(m, denom, value=-step_size)


class Adagrad(Optimizer):
    buffers = ("sum",)
    eps = 1e-10

    def update(self, i, p, g):
        s = self.state["sum"][i]
        s.addcmul_(g, g, value=1.0)
        p.addcdiv_(g, s.sqrt().add_(self.eps), value=-self.lr)


class RMSprop(Optimizer):
    buffers = ("square_avg",)
    alpha, eps = 0.99, 1e-8

    def update(self, i, p, g):
        s = self.state["square_avg"][i]
        s.mul_(self.alpha).addcmul_(g, g, value=1 - self.alpha)
        p.addcdiv_(g, s.sqrt().add_(self.eps), value=-self.lr)


class Adadelta(Optimizer):
    buffers = ("square_avg", "acc_delta")
    rho, eps = 0.9, 1e-6

    def update(self, i, p, g):
        s, acc = self.state["square_avg"][i], self.state["acc_delta"][i]
        s.mul_(self.rho).addcmul_(g, g, value=1 - self.rho)
        delta = (acc + self.eps).sqrt_().div_((s + self.eps).sqrt_()).mul_(g)
        acc.mul_(self.rho).addcmul_(delta, delta, value=1 - self.rho)
        p.add_(delta, alpha=-self.lr)


OPTIMIZERS = {"adam": Adam, "adagrad": Adagrad, "adadelta": Adadelta, "sgd": SGD, "rmsprop": RMSprop}


def make(name: str, params, lr: float, weight_decay: float) -> Optimizer:
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay)
