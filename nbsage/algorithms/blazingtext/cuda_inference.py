"""BlazingText's classifier on a GPU endpoint: the mean of rows, output layer and softmax run by torch on CUDA.

Tokenising and the n-gram buckets stay on the CPU (string work); the rows of each text go to the GPU
as one `embedding_bag(mode="mean")` (an empty text averages to zeros, as on the CPU), then the output
layer and softmax; the probabilities come back for the handler's top-k. Loaded only where the endpoint
asks for CUDA (NBSAGE_INFERENCE_DEVICE=cuda, nbsage.serving.gpu); Word2Vec vectors stay on the CPU: a
lookup gains nothing from a GPU.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from nbsage.algorithms.blazingtext.model import ClassifierModel


class CudaClassifier(ClassifierModel):
    """A ClassifierModel whose probabilities are computed on a CUDA device."""

    def to_device(self, device: str) -> "CudaClassifier":
        import torch
        self.device = torch.device(device)
        self.w_in_device = torch.from_numpy(np.ascontiguousarray(self.w_in, dtype=np.float32)).to(self.device)
        self.w_out_device = torch.from_numpy(np.ascontiguousarray(self.w_out, dtype=np.float32)).to(self.device)
        return self

    def probabilities(self, ptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
        import torch
        with torch.no_grad():
            rows_t = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.device)
            offsets = torch.from_numpy(np.asarray(ptr[:-1], dtype=np.int64)).to(self.device)
            hidden = torch.nn.functional.embedding_bag(rows_t, self.w_in_device, offsets, mode="mean")
            return torch.softmax(hidden @ self.w_out_device.T, dim=1).cpu().numpy()


def on_device(model, device: str):
    """The model moved to `device` when it is a classifier; word vectors as they are."""
    if not isinstance(model, ClassifierModel):
        return model
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
    return CudaClassifier(**fields).to_device(device)
