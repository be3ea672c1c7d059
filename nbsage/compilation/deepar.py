"""DeepAR -> ONNX: the network's step (lags, features, static, RNN state) -> (likelihood parameters, state).

The graph is the part of DeepAR that is a network: the stacked LSTM/GRU and its linear head, over any
number of time steps (the context window in one call, then one step at a time). The sampling loop stays
outside the graph, in Python, as it must: each step draws from the likelihood and feeds the draw back
as the next step's lag. So a compiled DeepAR forecasts with the same code as the native one
(DeepARPredictor.forecast) with its network calls answered by onnxruntime; the category embeddings
(a table lookup per series) stay in torch.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from nbsage.compilation import ONNX_FILE, CompilationError, require


def _predictor(model_dir):
    from nbsage.algorithms.deepar.predictor import DeepARPredictor
    return DeepARPredictor.load(model_dir, device="cpu")


def _example(network, batch: int = 2, steps: int = 3, seed: int = 0):
    """Inputs of the step: lags [B, T, L], features [B, T, F], static [B, S], h (and c) [layers, B, cells]."""
    import torch
    config = network.config
    generator = torch.Generator().manual_seed(seed)
    static_width = sum(config.embedding_dimension) + 1
    lags = torch.randn(batch, steps, config.num_lags, generator=generator)
    features = torch.randn(batch, steps, config.num_features, generator=generator)
    static = torch.randn(batch, static_width, generator=generator)
    state = [torch.randn(config.num_layers, batch, config.num_cells, generator=generator) * 0.1
             for _ in range(2 if config.cell_type == "lstm" else 1)]
    return lags, features, static, state


def _step_module(network):
    import torch

    class Step(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, lags, features, static, h, c=None):
            state = (h, c) if c is not None else h
            raw, new = self.net(lags, features, static, state)
            return (raw, *new) if isinstance(new, tuple) else (raw, new)

    return Step(network).eval()


def convert(model_dir: Path, out_dir: Path, input_shape) -> dict:
    require("onnx")
    import torch
    predictor = _predictor(model_dir)
    network = predictor.network
    lstm = network.config.cell_type == "lstm"
    lags, features, static, state = _example(network)
    names = ["lags", "features", "static", "h"] + (["c"] if lstm else [])
    outputs = ["params", "h_out"] + (["c_out"] if lstm else [])
    axes = {"lags": {0: "batch", 1: "time"}, "features": {0: "batch", 1: "time"}, "static": {0: "batch"},
            "h": {1: "batch"}, "params": {0: "batch", 1: "time"}, "h_out": {1: "batch"}}
    if lstm:
        axes.update({"c": {1: "batch"}, "c_out": {1: "batch"}})
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_step_module(network), (lags, features, static, *state), buffer, input_names=names,
                              output_names=outputs, dynamic_axes=axes, opset_version=17, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter's own words, named
        raise CompilationError(f"torch.onnx could not export this DeepAR network "
                               f"({network.config.cell_type}, {network.config.num_layers} layers): {exc}") from None
    Path(out_dir, ONNX_FILE).write_bytes(buffer.getvalue())
    return {"CellType": network.config.cell_type, "NumLayers": network.config.num_layers,
            "NumCells": network.config.num_cells}


class CompiledDeepARNetwork:
    """DeepARNetwork's interface for DeepARPredictor.forecast, its steps run by onnxruntime."""

    def __init__(self, native, onnx_session):
        from nbsage.algorithms.deepar.network import DeepARNetwork
        self.native, self.session = native, onnx_session
        self.config = native.config
        self.lstm = native.config.cell_type == "lstm"
        self._sample_paths = DeepARNetwork.sample_paths  # the loop itself, unchanged, calling self(...)

    def static_features(self, cat, scale):
        return self.native.static_features(cat, scale)

    def __call__(self, lags, features, static, state=None):
        import torch
        batch = lags.shape[0]
        if state is None:
            zeros = torch.zeros(self.config.num_layers, batch, self.config.num_cells)
            state = (zeros, zeros) if self.lstm else zeros
        parts = state if isinstance(state, tuple) else (state,)
        feeds = {"lags": _np(lags), "features": _np(features), "static": _np(static), "h": _np(parts[0])}
        if self.lstm:
            feeds["c"] = _np(parts[1])
        out = self.session.run(None, feeds)
        raw = torch.from_numpy(out[0])
        new = (torch.from_numpy(out[1]), torch.from_numpy(out[2])) if self.lstm else torch.from_numpy(out[1])
        return raw, new

    def sample_paths(self, likelihood, **kwargs):
        return self._sample_paths(self, likelihood, **kwargs)


def _np(tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)


def compiled_handler(model_dir, onnx_session):
    from nbsage.algorithms.deepar.inference import DeepARHandler
    from nbsage.algorithms.torch_device import set_threads
    set_threads()
    predictor = _predictor(model_dir)
    predictor.network = CompiledDeepARNetwork(predictor.network, onnx_session)
    return DeepARHandler(predictor)


def parity_rows(model_dir: Path, n: int = 256):
    """Step inputs for n series over 4 steps, from a fixed seed."""
    return _example(_predictor(model_dir).network, batch=n, steps=4, seed=1)


def native_predictions(model_dir: Path, rows) -> np.ndarray:
    import torch
    network = _predictor(model_dir).network
    lags, features, static, state = rows
    with torch.no_grad():
        raw, _ = network(lags, features, static, tuple(state) if len(state) == 2 else state[0])
    return raw.numpy()


def compiled_predictions(handler, rows) -> np.ndarray:
    lags, features, static, state = rows
    raw, _ = handler.predictor.network(lags, features, static, tuple(state) if len(state) == 2 else state[0])
    return raw.numpy()
