"""The trained Object2Vec model: its settings, its network, pair scores and encoder embeddings.

Saved in the model directory as `model_algo-1.pt` (the network's weights, loaded with
`weights_only=True`) and `model_algo-1-config.json` (the network settings and the hyperparameters).
Training (validation and test scores) and the endpoint both go through `score` and `embed`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nbsage.algorithms.object2vec.network import NetworkConfig, Object2VecNetwork
from nbsage.algorithms.object2vec.records import pad

WEIGHTS = "model_algo-1.pt"
CONFIG = "model_algo-1-config.json"
FORMAT_VERSION = 1
BATCH = 1024  # pairs scored together


def batch_tensors(sequences: list, device) -> tuple[torch.Tensor, torch.Tensor]:
    ids, lengths = pad(sequences)
    return torch.from_numpy(ids).to(device), torch.from_numpy(lengths).to(device)


class Object2VecPredictor:
    """A network with the settings it was trained with."""

    def __init__(self, config: NetworkConfig, network: Object2VecNetwork, device: str = "cpu",
                 hyperparameters: dict | None = None):
        self.config = config
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.hyperparameters = hyperparameters or {}

    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.network.state_dict().items()}, model_dir / WEIGHTS)
        (model_dir / CONFIG).write_text(json.dumps({"format_version": FORMAT_VERSION,
                                                    "network": self.config.to_dict(),
                                                    "hyperparameters": self.hyperparameters}, indent=2))

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "Object2VecPredictor":
        model_dir = Path(model_dir)
        path = model_dir / CONFIG
        if not path.exists():
            raise FileNotFoundError(f"{model_dir} holds no Object2Vec model ({CONFIG} is missing)")
        doc = json.loads(path.read_text())
        config = NetworkConfig(**doc["network"])
        network = Object2VecNetwork(config)
        network.load_state_dict(torch.load(model_dir / WEIGHTS, map_location=device, weights_only=True))
        return cls(config, network, device, doc.get("hyperparameters"))

    @torch.no_grad()
    def outputs(self, in0: list, in1: list) -> np.ndarray:
        """Raw outputs: [n, num_classes] logits (softmax) or [n] values (regression)."""
        self.network.eval()
        parts = []
        for lo in range(0, len(in0), BATCH):
            a, la = batch_tensors(in0[lo:lo + BATCH], self.device)
            b, lb = batch_tensors(in1[lo:lo + BATCH], self.device)
            parts.append(self.network(a, la, b, lb).float().cpu().numpy())
        width = (self.config.outputs,) if self.config.output_layer == "softmax" else ()
        return np.concatenate(parts) if parts else np.empty((0, *width), dtype=np.float32)

    def score(self, in0: list, in1: list) -> np.ndarray:
        """[n, num_classes] class probabilities (softmax) or [n, 1] predicted values (regression)."""
        out = self.outputs(in0, in1)
        if self.config.output_layer == "softmax":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return out[:, None]

    @torch.no_grad()
    def embed(self, which: int, sequences: list) -> np.ndarray:
        """[n, enc_dim] embeddings of in0 (which=0) or in1 (which=1) sequences."""
        self.network.eval()
        parts = []
        for lo in range(0, len(sequences), BATCH):
            ids, lengths = batch_tensors(sequences[lo:lo + BATCH], self.device)
            parts.append(self.network.encode(which, ids, lengths).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.empty((0, self.config.enc_dim), dtype=np.float32)
