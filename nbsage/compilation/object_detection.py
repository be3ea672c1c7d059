"""Object Detection -> ONNX: the SSD network, a prepared image batch -> (class logits, box offsets).

The graph is the part of SSD that is a network: the base network, the extra layers and the heads,
for any batch size at the model's input size. What follows the network stays outside the graph, as
in the native handler: softmax, decoding the offsets against the default boxes, the score threshold
and per-class non-maximum suppression (nbsage.algorithms.object_detection.boxes.detect), whose
data-dependent number of boxes an ONNX graph would only express with NonMaxSuppression's own, slightly
different, tie and threshold rules. So a compiled model answers with the native handler's code
(ObjectDetectionHandler: the same image decoding, the same JSON, the same errors), its network call
run by onnxruntime.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from nbsage.compilation import ONNX_FILE, CompilationError, require


def _detector(model_dir):
    from nbsage.algorithms.object_detection.detector import Detector
    return Detector.load(model_dir, device="cpu")


def _example(settings, batch: int = 2, seed: int = 0):
    """Prepared inputs [B, 3, S, S] (normalised pixels, as augment.prepare gives them)."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, settings.image_shape, settings.image_shape, generator=generator)


def convert(model_dir: Path, out_dir: Path, input_shape) -> dict:
    require("onnx")
    import torch
    detector = _detector(model_dir)
    settings = detector.settings
    if input_shape:
        shape = next(iter(input_shape.values()))
        if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or shape[2] != settings.image_shape:
            raise CompilationError(f"input_shape {input_shape} does not match this model's input: give "
                                   f"{{'data': [1, 3, {settings.image_shape}, {settings.image_shape}]}} "
                                   "(batch, channels, image_shape, image_shape) or leave it out")
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(detector.network.eval(), (_example(settings),), buffer, input_names=["data"],
                              output_names=["cls_logits", "box_offsets"],
                              dynamic_axes={"data": {0: "batch"}, "cls_logits": {0: "batch"},
                                            "box_offsets": {0: "batch"}},
                              opset_version=17, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter's own words, named
        raise CompilationError(f"torch.onnx could not export this SSD network ({settings.base_network}, "
                               f"{settings.image_shape} px): {exc}") from None
    Path(out_dir, ONNX_FILE).write_bytes(buffer.getvalue())
    return {"BaseNetwork": settings.base_network, "NumClasses": settings.num_classes,
            "ImageShape": settings.image_shape, "Input": "data"}


class CompiledSSD:
    """The SSD network's interface for Detector.predict_inputs, its forward pass run by onnxruntime."""

    def __init__(self, native, onnx_session):
        self.anchors = native.anchors  # the default boxes: constants of the model, decoded outside the graph
        self.num_classes = native.num_classes
        self.session = onnx_session

    def eval(self):
        return self

    def to(self, device):
        return self

    def __call__(self, batch):
        import torch
        data = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        logits, offsets = self.session.run(None, {"data": data})
        return torch.from_numpy(logits), torch.from_numpy(offsets)


def compiled_handler(model_dir, onnx_session):
    from nbsage.algorithms.torch_device import set_threads
    from nbsage.algorithms.object_detection.inference import ObjectDetectionHandler
    set_threads()
    detector = _detector(model_dir)
    detector.network = CompiledSSD(detector.network, onnx_session)
    return ObjectDetectionHandler(detector)


def parity_rows(model_dir: Path, n: int = 8):
    """n prepared inputs at the model's input size, from a fixed seed."""
    return _example(_detector(model_dir).settings, batch=n, seed=1)


def _raw(network, rows) -> np.ndarray:
    """Class logits and box offsets side by side: [B, anchors, classes + 1 + 4]."""
    import torch
    with torch.no_grad():
        logits, offsets = network(rows)
    return np.concatenate([logits.numpy(), offsets.numpy()], axis=-1)


def native_predictions(model_dir: Path, rows) -> np.ndarray:
    return _raw(_detector(model_dir).network, rows)


def compiled_predictions(handler, rows) -> np.ndarray:
    return _raw(handler.detector.network, rows)
