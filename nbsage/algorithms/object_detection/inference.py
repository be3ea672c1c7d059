"""Object Detection's endpoint: an image in, `{"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}` out.

Requests are `image/jpeg`, `image/png` or `application/x-image` bytes (batch transform sends
one image file per request). The answer lists every detection above a score of 0.01 after
non-maximum suppression at the model's nms_threshold (at most 200), best first, coordinates
normalised by the image's width and height, as SageMaker's; the client filters low scores.
"""
from __future__ import annotations

import json
import os

from nbsage.algorithms.object_detection.detector import Detector
from nbsage.errors import DataError, InvalidRequest
from nbsage.formats.image import decode_image
from nbsage.inference_contract import InferenceHandler

CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")


def detections_json(rows) -> dict:
    return {"prediction": [[float(r[0]), *(round(float(v), 6) for v in r[1:6])] for r in rows]}


class ObjectDetectionHandler(InferenceHandler):
    content_types = CONTENT_TYPES
    accepts = ("application/json",)
    default_accept = "application/json"

    def __init__(self, detector: Detector):
        self.detector = detector

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        try:
            image = decode_image(body, f"request body ({content_type}, {len(body)} bytes)")
        except DataError as e:
            raise InvalidRequest(f"{e}; Object Detection reads one JPEG or PNG image per request") from None
        rows = self.detector.predict([image])[0]
        return json.dumps(detections_json(rows)).encode()


def load(model_dir: str) -> ObjectDetectionHandler:
    """The handler for a model directory written by Object Detection training (CPU unless told)."""
    from nbsage.algorithms.torch_device import set_threads
    set_threads()
    device = os.environ.get("NBSAGE_INFERENCE_DEVICE") or "cpu"
    return ObjectDetectionHandler(Detector.load(model_dir, device=device))
