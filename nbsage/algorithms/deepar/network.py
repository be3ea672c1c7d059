"""DeepAR's network: an autoregressive LSTM/GRU over scaled lags, calendar and static features.

At each time step t the input is the scaled target at the lags (t-1, t-2, ..., t-365 for daily
data), the calendar features and age of t, the dynamic features of t, the embeddings of the
series' categories and log(scale); the output parametrises the likelihood of the target at t.
Training runs the whole context + prediction window at once with the true values as lags
(teacher forcing) in one call to torch's fused RNN. Forecasting runs the context once per series,
copies the state num_samples times, and draws all sample paths of all series as one batch, one
step at a time (the only per-step loop, unavoidable for ancestral sampling).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from nbsage.algorithms.deepar.likelihoods import Likelihood


@dataclass
class NetworkConfig:
    """Everything needed to rebuild the network (saved next to its weights)."""

    num_lags: int
    num_features: int            # calendar features + age + dynamic features
    cardinality: list[int]
    embedding_dimension: list[int]
    cell_type: str
    num_layers: int
    num_cells: int
    dropout_rate: float
    num_params: int

    def to_dict(self) -> dict:
        return asdict(self)


class DeepARNetwork(nn.Module):
    """Embeddings of the categories, a stacked LSTM/GRU, and a linear head to likelihood parameters."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, dim) for card, dim in zip(config.cardinality, config.embedding_dimension))
        self.input_size = config.num_lags + config.num_features + sum(config.embedding_dimension) + 1
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[config.cell_type]
        self.rnn = rnn(self.input_size, config.num_cells, config.num_layers, batch_first=True,
                       dropout=config.dropout_rate if config.num_layers > 1 else 0.0)
        self.head = nn.Linear(config.num_cells, config.num_params)

    def static_features(self, cat: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
        """[B, sum(embedding_dimension) + 1]: category embeddings and log(scale)."""
        parts = [emb(cat[:, i]) for i, emb in enumerate(self.embeddings)] if cat is not None else []
        parts.append(torch.log(scale).unsqueeze(-1))
        return torch.cat(parts, dim=-1)

    def forward(self, lags: torch.Tensor, features: torch.Tensor, static: torch.Tensor, state=None):
        """lags [B, T, L] (scaled), features [B, T, F], static [B, S] -> raw params [B, T, P], state."""
        x = torch.cat([lags, features, static.unsqueeze(1).expand(-1, lags.shape[1], -1)], dim=-1)
        out, state = self.rnn(x, state)
        return self.head(out), state

    @torch.no_grad()
    def sample_paths(self, likelihood: Likelihood, *, context_lags, context_features, static, scale,
                     history, future_features, lags: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Draw sample paths: returns [S, num_samples, P] in original units.

        context_lags [S, C, L], context_features [S, C, F]: the context window (teacher forced);
        history [S, max_lag]: the last max_lag scaled values before the forecast start (0 where
        the series has none); future_features [S, P, F]; scale [S].
        """
        n_series, horizon = future_features.shape[0], future_features.shape[1]
        _, state = self(context_lags, context_features, static)
        rep = lambda t: t.repeat_interleave(num_samples, dim=0)  # noqa: E731 - series-major copies
        # state is [layers, B, cells] (a pair of them for LSTM): copy along the batch dimension
        state = tuple(s.repeat_interleave(num_samples, dim=1) for s in state) \
            if isinstance(state, tuple) else state.repeat_interleave(num_samples, dim=1)
        static_n, scale_n, features_n = rep(static), rep(scale), rep(future_features)
        max_lag = history.shape[1]
        future = torch.zeros(n_series * num_samples, horizon, device=history.device)
        lag_list = lags.tolist()
        out = []
        for k in range(horizon):
            from_future = [k - lag for lag in lag_list if lag <= k]
            from_history = [max_lag - lag + k for lag in lag_list if lag > k]
            parts = []
            if from_future:
                parts.append(future[:, from_future])
            if from_history:
                parts.append(rep(history[:, from_history]))
            step_lags = torch.cat(parts, dim=-1).unsqueeze(1)
            raw, state = self(step_lags, features_n[:, k:k + 1], static_n, state)
            params = likelihood.params(raw[:, 0], scale_n)
            draw = likelihood.sample(params)
            future[:, k] = draw / scale_n
            out.append(draw)
        return torch.stack(out, dim=-1).reshape(n_series, num_samples, horizon)
