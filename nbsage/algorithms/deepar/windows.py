"""Series as flat tensors, and the training and forecast windows cut from them by indexing.

All series of a channel are concatenated into one flat tensor of values (missing values
forward-filled for use as inputs), one of observed flags and one of per-step features (calendar
features, age, dynamic features), with one zero "sentinel" row at the end. A window of a batch
is then a single gather: position p of series s is `offset[s] + p`, and any position before the
series' start (the padding of short histories and of far lags) reads the sentinel. No Python loop
runs per series or per time step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nbsage.algorithms.deepar.features import Frequency, age_feature
from nbsage.algorithms.deepar.records import Series


def forward_fill(values: np.ndarray) -> np.ndarray:
    """NaN -> the last observed value before it (leading NaNs -> the first observed value, or 0)."""
    nan = np.isnan(values)
    if not nan.any():
        return values
    if nan.all():
        return np.zeros_like(values)
    idx = np.where(~nan, np.arange(len(values)), -1)
    np.maximum.accumulate(idx, out=idx)
    idx[idx < 0] = int(np.argmax(~nan))
    return values[idx]


@dataclass
class Window:
    """One batch: inputs for the network and the targets of every step."""

    lags: torch.Tensor       # [B, T, L] scaled lagged values
    features: torch.Tensor   # [B, T, F]
    target: torch.Tensor     # [B, T] original units
    observed: torch.Tensor   # [B, T] 1.0 where the target is observed
    scale: torch.Tensor      # [B]
    cat: torch.Tensor | None  # [B, num_cat]


class SeriesTable:
    """Flat tensors of a list of series; `extra` feature-only positions follow each target."""

    def __init__(self, series: list[Series], freq: Frequency, *, num_dynamic_feat: int | None,
                 use_cat: bool, extra: int = 0, device: str | torch.device = "cpu"):
        self.freq, self.extra, self.device = freq, extra, torch.device(device)
        lengths = np.array([len(s) for s in series], dtype=np.int64)
        spans = lengths + extra
        offsets = np.concatenate([[0], np.cumsum(spans)[:-1]]).astype(np.int64)
        total = int(spans.sum())
        num_feat = freq.num_time_features + 1 + (num_dynamic_feat or 0)
        values = np.zeros(total + 1, dtype=np.float32)
        observed = np.zeros(total + 1, dtype=np.float32)
        feats = np.zeros((total + 1, num_feat), dtype=np.float32)
        nt = freq.num_time_features
        for s, off, n, span in zip(series, offsets, lengths, spans):
            values[off:off + n] = forward_fill(s.target)
            observed[off:off + n] = ~np.isnan(s.target)
            feats[off:off + span, :nt] = freq.time_features(freq.ordinals(s.ordinal, span))
            feats[off:off + span, nt] = age_feature(np.arange(span))
            if num_dynamic_feat:
                feats[off:off + span, nt + 1:] = s.dynamic_feat[:, :span].T
        self.sentinel = total
        self.values = torch.from_numpy(values).to(self.device)
        self.observed = torch.from_numpy(observed).to(self.device)
        self.features = torch.from_numpy(feats).to(self.device)
        self.offsets = torch.from_numpy(offsets).to(self.device)
        self.lengths = torch.from_numpy(lengths).to(self.device)
        self.spans = torch.from_numpy(spans).to(self.device)
        self.cat = (torch.from_numpy(np.stack([s.cat for s in series])).to(self.device)
                    if use_cat else None)
        self.num_series = len(series)

    def flat_index(self, series_idx: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Flat indices of `positions` ([B, ...]) of series `series_idx` ([B]); outside -> sentinel."""
        shape = (-1,) + (1,) * (positions.dim() - 1)
        offsets = self.offsets[series_idx].view(shape)
        spans = self.spans[series_idx].view(shape)
        inside = (positions >= 0) & (positions < spans)
        return torch.where(inside, offsets + positions, torch.full_like(positions, self.sentinel))

    def scale(self, series_idx: torch.Tensor, start: torch.Tensor, context_length: int) -> torch.Tensor:
        """Mean absolute observed value over positions start..start+context_length-1 (1 if none)."""
        pos = start.unsqueeze(1) + torch.arange(context_length, device=self.device)
        idx = self.flat_index(series_idx, pos)
        obs = self.observed[idx]
        total = (self.values[idx].abs() * obs).sum(1)
        count = obs.sum(1)
        mean = total / count.clamp(min=1.0)
        return torch.where(mean > 0, mean, torch.ones_like(mean))

    def window(self, series_idx: torch.Tensor, first: torch.Tensor, length: int, lags: torch.Tensor,
               context_length: int, scaled: bool) -> Window:
        """Positions first..first+length-1 of each series, with the scale of its first
        `context_length` positions."""
        pos = first.unsqueeze(1) + torch.arange(length, device=self.device)          # [B, T]
        idx = self.flat_index(series_idx, pos)
        lag_idx = self.flat_index(series_idx, pos.unsqueeze(-1) - lags.view(1, 1, -1))  # [B, T, L]
        scale = (self.scale(series_idx, first, context_length) if scaled
                 else torch.ones(len(series_idx), device=self.device))
        return Window(lags=self.values[lag_idx] / scale.view(-1, 1, 1), features=self.features[idx],
                      target=self.values[idx], observed=self.observed[idx], scale=scale,
                      cat=None if self.cat is None else self.cat[series_idx])

    def history(self, series_idx: torch.Tensor, end: torch.Tensor, size: int, scale: torch.Tensor) -> torch.Tensor:
        """[B, size] scaled values at positions end-size..end-1 (0 before the series' start)."""
        pos = end.unsqueeze(1) - size + torch.arange(size, device=self.device)
        return self.values[self.flat_index(series_idx, pos)] / scale.view(-1, 1)

    def features_at(self, series_idx: torch.Tensor, first: torch.Tensor, length: int) -> torch.Tensor:
        """[B, length, F] per-step features from position `first` on (the forecast range)."""
        pos = first.unsqueeze(1) + torch.arange(length, device=self.device)
        return self.features[self.flat_index(series_idx, pos)]
