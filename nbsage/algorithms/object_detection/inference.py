"""Object Detection's endpoint: an image in, its detections out, in one of SageMaker's two JSON shapes.

Requests are `image/jpeg`, `image/png` or `application/x-image` bytes (batch transform sends
one image file per request); any photo decodes, as OpenCV's colour read in SageMaker's container
does (grey, palette and RGBA images are converted to RGB). The answer lists every detection above
a score of 0.01 after non-maximum suppression at the model's nms_threshold (at most 200), best
first; the client filters low scores. Two response formats, chosen by Accept
(SageMaker's object-detection-in-formats page):

* `application/json` (the default): `{"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}`,
  the corners normalised by the image's width and height;
* `application/json;annotation=1`: the training annotations' shape, in pixels of the image sent:
  `{"image_size": [{"width": W, "height": H, "depth": 3}], "annotations": [{"class_id": c,
  "score": s, "left": l, "top": t, "width": w, "height": h}, ...]}`, the box rounded to whole
  pixels as the page shows it. (One client seen in the wild reads `predictions[0].annotations`
  and an `image_size` object instead; the page's shape is the one answered here.)

`annotation=0` is the plain format; any other Accept is 406 naming the two accepted.
"""
from __future__ import annotations

import json
import os

import numpy as np

from nbsage.algorithms.object_detection.detector import Detector
from nbsage.errors import DataError, InvalidRequest, UnsupportedAccept
from nbsage.formats.image import decode_image
from nbsage.inference_contract import InferenceHandler, check_content_type

CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")
JSON = "application/json"
ANNOTATION = "application/json;annotation=1"
_ANNOTATION_VALUES = {"1": True, "true": True, "0": False, "false": False}


def detections_json(rows) -> dict:
    return {"prediction": [[float(r[0]), *(round(float(v), 6) for v in r[1:6])] for r in rows]}


def annotations_json(rows, width: int, height: int) -> dict:
    """The detections as the training JSON's annotations, in pixels of a width x height image, plus a score."""
    annotations = []
    for c, score, x0, y0, x1, y1 in np.asarray(rows, dtype=np.float64).reshape(-1, 6).tolist():
        left, top = round(x0 * width), round(y0 * height)
        annotations.append({"class_id": int(c), "score": round(score, 6), "left": left, "top": top,
                            "width": round(x1 * width) - left, "height": round(y1 * height) - top})
    return {"image_size": [{"width": int(width), "height": int(height), "depth": 3}], "annotations": annotations}


def response_format(accept: str | None) -> bool:
    """Whether Accept asks for the annotation format; raises UnsupportedAccept (406) for what is not JSON.

    The first of Accept's comma-separated types that is application/json (or */*) decides;
    its `annotation` parameter is 1/true (annotations) or 0/false (the prediction list).
    """
    if not accept or not accept.strip():
        return False
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if media.lower() not in (JSON, "*/*", "application/*", ""):
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() != "annotation":
                continue
            flag = _ANNOTATION_VALUES.get(value.strip().strip('"').lower())
            if flag is None:
                raise UnsupportedAccept(f"Accept {accept!r}: annotation={value.strip()!r} is not valid; this model "
                                        f"answers {JSON} or {ANNOTATION}")
            return flag
        return False
    raise UnsupportedAccept(f"Accept {accept!r} is not supported; this model answers {JSON} "
                            f"(the prediction list) or {ANNOTATION} (annotations in pixels)")


class ObjectDetectionHandler(InferenceHandler):
    content_types = CONTENT_TYPES
    accepts = (JSON,)
    default_accept = JSON

    def __init__(self, detector: Detector):
        self.detector = detector

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        ct = check_content_type(content_type, self.content_types)
        annotation = response_format(accept)
        return self._answer(body, ct, annotation), JSON

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        return self._answer(body, content_type, response_format(accept))

    def _answer(self, body: bytes, content_type: str, annotation: bool) -> bytes:
        try:
            image = decode_image(body, f"request body ({content_type}, {len(body)} bytes)", rgb_only=False)
        except DataError as e:
            raise InvalidRequest(f"{e}; Object Detection reads one JPEG or PNG image per request") from None
        rows = self.detector.predict([image])[0]
        if annotation:
            height, width = image.shape[:2]
            return json.dumps(annotations_json(rows, width, height)).encode()
        return json.dumps(detections_json(rows)).encode()


def load(model_dir: str) -> ObjectDetectionHandler:
    """The handler for a model directory written by Object Detection training (CPU unless told)."""
    from nbsage.algorithms.torch_device import set_threads
    set_threads()
    device = os.environ.get("NBSAGE_INFERENCE_DEVICE") or "cpu"
    return ObjectDetectionHandler(Detector.load(model_dir, device=device))
