"""The losses of spec 1.6, vectorised over the parallel models.

Scores `z` have shape [n, models, outputs]; labels `y` shape [n]; optional sample weights shape
[n, models] or [n]. `value_and_grad` returns the weighted mean loss per model ([models]) and
d(mean loss)/dz, so that the gradient of a weight matrix is one matrix product away.
"""
from __future__ import annotations

import numpy as np


def sigmoid(z):
    """Logistic function that neither overflows nor loses precision for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class Loss:
    """One loss. `token` is the name SageMaker logs: `<token>_objective`."""

    name = ""
    token = ""
    # the loss of labels scaled by s is s**label_power times the loss of the unscaled ones (with
    # its own parameters scaled by s): how a loss in normalised label units is reported in raw ones
    label_power = 1

    def elementwise(self, z, y):
        """Per-record loss [n, models] and its derivative with respect to z [n, models, outputs]."""
        raise NotImplementedError

    def value_and_grad(self, z, y, weight=None):
        loss, grad = self.elementwise(z, y)
        n = z.shape[0]
        if weight is not None:
            w = weight if weight.ndim == 2 else weight[:, None]
            loss = loss * w
            grad = grad * w[:, :, None]
        return loss.sum(axis=0) / n, grad / n

    def value(self, z, y, weight=None):
        return self.value_and_grad(z, y, weight)[0]


class Logistic(Loss):
    name, token = "logistic", "binary_classification_cross_entropy"

    def elementwise(self, z, y):
        s = z[:, :, 0]
        yy = y[:, None]
        loss = np.logaddexp(0.0, s) - yy * s
        return loss, (sigmoid(s) - yy)[:, :, None]


class Hinge(Loss):
    name, token = "hinge_loss", "binary_classification_hinge_loss"

    def __init__(self, margin: float):
        self.margin = margin

    def elementwise(self, z, y):
        sign = (2.0 * y - 1.0)[:, None]
        slack = self.margin - sign * z[:, :, 0]
        return np.maximum(slack, 0.0), (-sign * (slack > 0))[:, :, None]


class Softmax(Loss):
    name, token = "softmax_loss", "multiclass_cross_entropy"

    def elementwise(self, z, y):
        n = z.shape[0]
        rows = np.arange(n)
        labels = y.astype(np.int64)
        shifted = z - z.max(axis=2, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=2, keepdims=True)
        loss = np.log(total[:, :, 0]) - shifted[rows, :, labels]
        grad = e / total
        grad[rows, :, labels] -= 1.0
        return loss, grad


class _Residual(Loss):
    """A regression loss of the residual r = z - y."""

    def on_residual(self, r):
        raise NotImplementedError

    def elementwise(self, z, y):
        loss, d = self.on_residual(z[:, :, 0] - y[:, None])
        return loss, d[:, :, None]


class Squared(_Residual):
    name, token, label_power = "squared_loss", "mse", 2

    def on_residual(self, r):
        return r * r, 2.0 * r


class Absolute(_Residual):
    name, token = "absolute_loss", "absolute_loss"

    def on_residual(self, r):
        return np.abs(r), np.sign(r)


class EpsInsensitiveSquared(_Residual):
    name, token, label_power = "eps_insensitive_squared_loss", "eps_insensitive_squared_loss", 2

    def __init__(self, eps: float):
        self.eps = eps

    def on_residual(self, r):
        excess = np.maximum(np.abs(r) - self.eps, 0.0)
        return excess * excess, 2.0 * excess * np.sign(r)


class EpsInsensitiveAbsolute(_Residual):
    name, token = "eps_insensitive_absolute_loss", "eps_insensitive_absolute_loss"

    def __init__(self, eps: float):
        self.eps = eps

    def on_residual(self, r):
        excess = np.abs(r) - self.eps
        return np.maximum(excess, 0.0), np.sign(r) * (excess > 0)


class Quantile(_Residual):
    name, token = "quantile_loss", "quantile_loss"

    def __init__(self, q: float):
        self.q = q

    def on_residual(self, r):
        # pinball loss of u = y - z: q*u above the prediction, (q-1)*u below it
        u = -r
        return np.maximum(self.q * u, (self.q - 1.0) * u), np.where(u > 0, -self.q, 1.0 - self.q)


class Huber(_Residual):
    name, token, label_power = "huber_loss", "huber_loss", 2

    def __init__(self, delta: float):
        self.delta = delta

    def on_residual(self, r):
        a = np.abs(r)
        d = self.delta
        loss = np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))
        return loss, np.clip(r, -d, d)


def make_loss(name: str, hps: dict, label_scale: float = 1.0) -> Loss:
    """The loss called `name`; label_scale divides its label-unit parameters (eps, delta)."""
    if name == "logistic":
        return Logistic()
    if name == "hinge_loss":
        return Hinge(float(hps.get("margin", 1.0)))
    if name == "softmax_loss":
        return Softmax()
    if name == "squared_loss":
        return Squared()
    if name == "absolute_loss":
        return Absolute()
    if name == "eps_insensitive_squared_loss":
        return EpsInsensitiveSquared(float(hps.get("loss_insensitivity", 0.01)) / label_scale)
    if name == "eps_insensitive_absolute_loss":
        return EpsInsensitiveAbsolute(float(hps.get("loss_insensitivity", 0.01)) / label_scale)
    if name == "quantile_loss":
        return Quantile(float(hps.get("quantile", 0.5)))
    if name == "huber_loss":
        return Huber(float(hps.get("huber_delta", 1.0)) / label_scale)
    raise ValueError(f"unknown loss {name!r}")
