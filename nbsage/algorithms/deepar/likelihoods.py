"""DeepAR's likelihoods: from the network's raw outputs to a distribution per time step.

Each likelihood maps `num_params` raw outputs to its parameters (softplus keeps scales and
shapes positive), and gives the negative log-likelihood of a target, ancestral samples and the
mean. Real-valued likelihoods (gaussian, student-T, deterministic-L1) live in the scaled space
(target / series scale): their loss is computed there and samples are scaled back. The
negative-binomial models raw counts, its mean multiplied by the scale and its dispersion divided
by sqrt(scale), as the DeepAR paper does. The beta models values in [0, 1] and is not scaled.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nbsage.algorithms.deepar.declaration import canonical_likelihood as canonical

_EPS = 1e-6
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _positive(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x) + _EPS


class Likelihood:
    """A distribution family; `params` returns a dict of tensors shaped like the targets."""

    name = ""
    num_params = 0
    scaled = True        # inputs and targets are divided by the series scale
    point_forecast = False

    def params(self, raw: torch.Tensor, scale: torch.Tensor) -> dict:
        raise NotImplementedError

    def nll(self, p: dict, y: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of targets `y` (original units), elementwise."""
        raise NotImplementedError

    def sample(self, p: dict) -> torch.Tensor:
        """One draw per element, in original units."""
        raise NotImplementedError

    def mean(self, p: dict) -> torch.Tensor:
        raise NotImplementedError


class Gaussian(Likelihood):
    name, num_params = "gaussian", 2

    def params(self, raw, scale):
        return {"mu": raw[..., 0], "sigma": _positive(raw[..., 1]), "scale": scale}

    def nll(self, p, y):
        z = (y / p["scale"] - p["mu"]) / p["sigma"]
        return _HALF_LOG_2PI + torch.log(p["sigma"]) + 0.5 * z * z

    def sample(self, p):
        return (p["mu"] + p["sigma"] * torch.randn_like(p["mu"])) * p["scale"]

    def mean(self, p):
        return p["mu"] * p["scale"]


class StudentT(Likelihood):
    name, num_params = "student-T", 3

    def params(self, raw, scale):
        return {"mu": raw[..., 0], "sigma": _positive(raw[..., 1]), "nu": 2.0 + _positive(raw[..., 2]),
                "scale": scale}

    def nll(self, p, y):
        nu, sigma = p["nu"], p["sigma"]
        z = (y / p["scale"] - p["mu"]) / sigma
        return (torch.lgamma(nu / 2) - torch.lgamma((nu + 1) / 2) + 0.5 * torch.log(math.pi * nu)
                + torch.log(sigma) + (nu + 1) / 2 * torch.log1p(z * z / nu))

    def sample(self, p):
        t = torch.distributions.StudentT(p["nu"]).sample()
        return (p["mu"] + p["sigma"] * t) * p["scale"]

    def mean(self, p):
        return p["mu"] * p["scale"]


class NegativeBinomial(Likelihood):
    name, num_params, scaled = "negative-binomial", 2, True

    def params(self, raw, scale):
        return {"mu": _positive(raw[..., 0]) * scale, "alpha": _positive(raw[..., 1]) / torch.sqrt(scale)}

    def nll(self, p, y):
        mu, alpha = p["mu"], p["alpha"]
        r = 1.0 / alpha
        log_1p = torch.log1p(alpha * mu)
        return -(torch.lgamma(y + r) - torch.lgamma(y + 1) - torch.lgamma(r)
                 - r * log_1p + y * (torch.log(alpha * mu) - log_1p))

    def sample(self, p):
        r = 1.0 / p["alpha"]
        rate = r / p["mu"]
        lam = torch.distributions.Gamma(r, rate).sample()
        return torch.poisson(lam.clamp(max=1e12))

    def mean(self, p):
        return p["mu"]


class Beta(Likelihood):
    name, num_params, scaled = "beta", 2, False

    def params(self, raw, scale):
        return {"a": _positive(raw[..., 0]), "b": _positive(raw[..., 1])}

    def nll(self, p, y):
        a, b = p["a"], p["b"]
        y = y.clamp(1e-5, 1 - 1e-5)
        return -((a - 1) * torch.log(y) + (b - 1) * torch.log1p(-y)
                 + torch.lgamma(a + b) - torch.lgamma(a) - torch.lgamma(b))

    def sample(self, p):
        return torch.distributions.Beta(p["a"], p["b"]).sample()

    def mean(self, p):
        return p["a"] / (p["a"] + p["b"])


class DeterministicL1(Likelihood):
    """A point forecast trained with L1 loss: every sample path is the same."""

    name, num_params, point_forecast = "deterministic-L1", 1, True

    def params(self, raw, scale):
        return {"loc": raw[..., 0], "scale": scale}

    def nll(self, p, y):
        return torch.abs(y / p["scale"] - p["loc"])

    def sample(self, p):
        return p["loc"] * p["scale"]

    def mean(self, p):
        return p["loc"] * p["scale"]


_CLASSES = {cls.name: cls for cls in (Gaussian, StudentT, NegativeBinomial, Beta, DeterministicL1)}


def make(name: str) -> Likelihood:
    return _CLASSES[canonical(name)]()
