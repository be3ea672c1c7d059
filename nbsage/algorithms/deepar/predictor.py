"""The trained DeepAR model: its settings, its network, and sample-path forecasts.

Saved in the model directory as `model_algo-1.pt` (the network's weights, loaded with
`weights_only=True`) and `model_algo-1-config.json` (everything needed to rebuild it: frequency,
lengths, lags, likelihood, categorical and dynamic features, network sizes). Both training (to
score the test channel) and the inference handler forecast through `DeepARPredictor.forecast`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from nbsage.algorithms.deepar import likelihoods
from nbsage.algorithms.deepar.features import Frequency
from nbsage.algorithms.deepar.network import DeepARNetwork, NetworkConfig
from nbsage.algorithms.deepar.records import FieldSpec, Series
from nbsage.algorithms.deepar.windows import SeriesTable

WEIGHTS = "model_algo-1.pt"
CONFIG = "model_algo-1-config.json"
FORMAT_VERSION = 1
MAX_PATHS_PER_CHUNK = 4096  # sample paths forecast together: a few thousand keep the RNN state in cache


@dataclass
class ModelSettings:
    """What a trained model fixes; written to model_algo-1-config.json."""

    time_freq: str
    context_length: int
    prediction_length: int
    likelihood: str
    lags: list[int]
    cardinality: list[int] | None
    num_dynamic_feat: int | None
    network: dict
    num_eval_samples: int = 100
    test_quantiles: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    hyperparameters: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def freq(self) -> Frequency:
        return Frequency.parse(self.time_freq)

    @property
    def fields(self) -> FieldSpec:
        return FieldSpec(self.cardinality, self.num_dynamic_feat)


class DeepARPredictor:
    """A network with the settings it was trained with; forecasts sample paths."""

    def __init__(self, settings: ModelSettings, network: DeepARNetwork, device: str = "cpu"):
        self.settings = settings
        self.network = network.to(device).eval()
        self.device = torch.device(device)
        self.likelihood = likelihoods.make(settings.likelihood)
        self.lags = torch.tensor(settings.lags, dtype=torch.long, device=self.device)

    @classmethod
    def build(cls, settings: ModelSettings, device: str = "cpu") -> "DeepARPredictor":
        return cls(settings, DeepARNetwork(NetworkConfig(**settings.network)), device)

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        torch.save(state, model_dir / WEIGHTS)
        (model_dir / CONFIG).write_text(json.dumps(asdict(self.settings), indent=2))

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "DeepARPredictor":
        model_dir = Path(model_dir)
        config_path = model_dir / CONFIG
        if not config_path.exists():
            raise FileNotFoundError(f"{model_dir} holds no DeepAR model ({CONFIG} is missing)")
        settings = ModelSettings(**json.loads(config_path.read_text()))
        predictor = cls.build(settings, device)
        state = torch.load(model_dir / WEIGHTS, map_location=device, weights_only=True)
        predictor.network.load_state_dict(state)
        predictor.network.eval()
        return predictor

    # ---- forecasting ---------------------------------------------------------------------------
    def table(self, series: list[Series]) -> SeriesTable:
        """Series whose targets are the history and whose features reach prediction_length further."""
        s = self.settings
        return SeriesTable(series, s.freq, num_dynamic_feat=s.num_dynamic_feat,
                           use_cat=s.cardinality is not None, extra=s.prediction_length, device=self.device)

    @torch.no_grad()
    def forecast(self, series: list[Series], num_samples: int, seed: int | None = None) -> np.ndarray:
        """[len(series), num_samples, prediction_length] sample paths after each series' last point."""
        if seed is not None:
            torch.manual_seed(seed)
        s = self.settings
        table = self.table(series)
        lik = self.likelihood
        requested = num_samples
        num_samples = 1 if lik.point_forecast else num_samples  # every path would be the same
        max_lag = int(self.lags.max())
        out = np.empty((len(series), num_samples, s.prediction_length), dtype=np.float32)
        chunk = max(1, MAX_PATHS_PER_CHUNK // num_samples)
        for lo in range(0, len(series), chunk):
            idx = torch.arange(lo, min(lo + chunk, len(series)), device=self.device)
            end = table.lengths[idx]
            ctx = table.window(idx, end - s.context_length, s.context_length, self.lags,
                               s.context_length, lik.scaled)
            static = self.network.static_features(ctx.cat, ctx.scale)
            paths = self.network.sample_paths(
                lik, context_lags=ctx.lags, context_features=ctx.features, static=static,
                scale=ctx.scale, history=table.history(idx, end, max_lag, ctx.scale),
                future_features=table.features_at(idx, end, s.prediction_length), lags=self.lags,
                num_samples=num_samples)
            out[lo:lo + len(idx)] = paths.cpu().numpy()
        if requested != num_samples:
            out = np.repeat(out, requested, axis=1)
        return out
