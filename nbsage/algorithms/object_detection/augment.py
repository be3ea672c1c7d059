"""Images to network input, and SSD's training-time data augmentation.

`prepare` resizes an image to the square input size and normalises it (what inference does).
`augment` is SSD's recipe: zoom out (place the image on a canvas up to 4x larger, filled with
the mean colour, half the time), a random crop whose IoU with some object is at least one of
0.1/0.3/0.5/0.7/0.9 (or any crop, or none), keeping the objects whose centre stays inside,
horizontal flip half the time, then brightness, contrast and saturation jitter on the resized
image. Everything runs in numpy on one image at a time, from a seeded generator.
"""
from __future__ import annotations

import numpy as np

from nbsage.formats.image import pillow

MEAN = np.array([123.68, 116.78, 103.94], dtype=np.float32)   # the RGB means of ImageNet, as SSD's
STD = np.array([58.40, 57.12, 57.38], dtype=np.float32)
MIN_IOUS = (None, 0.1, 0.3, 0.5, 0.7, 0.9, 0.0)                 # None: keep the whole image
CROP_TRIALS = 50


def resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    Image = pillow()
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def normalise(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 (or float 0..255) -> 3 x H x W float32, standardised."""
    return ((image.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)


def prepare(image: np.ndarray, size: int) -> np.ndarray:
    return normalise(resize(image, size))


def _box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    area = (box[2:] - box[:2]).prod() + (boxes[:, 2:] - boxes[:, :2]).prod(1) - inter
    return inter / np.maximum(area, 1e-12)


def expand(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    h, w, _ = image.shape
    ratio = rng.uniform(1.0, 4.0)
    H, W = int(h * ratio), int(w * ratio)
    top, left = int(rng.uniform(0, H - h)), int(rng.uniform(0, W - w))
    canvas = np.empty((H, W, 3), dtype=np.uint8)
    canvas[:] = MEAN.astype(np.uint8)
    canvas[top:top + h, left:left + w] = image
    scale = np.array([w / W, h / H, w / W, h / H])
    offset = np.array([left / W, top / H, left / W, top / H])
    return canvas, boxes * scale + offset


def crop(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    h, w, _ = image.shape
    min_iou = MIN_IOUS[rng.integers(len(MIN_IOUS))]
    if min_iou is None or len(boxes) == 0:
        return image, boxes, labels
    for _ in range(CROP_TRIALS):
        cw, ch = rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)
        if not 0.5 <= (cw * w) / (ch * h) <= 2.0:
            continue
        x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
        rect = np.array([x0, y0, x0 + cw, y0 + ch])
        if _box_iou(rect, boxes).max() < min_iou:
            continue
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = ((centres > rect[:2]) & (centres < rect[2:])).all(1)
        if not inside.any():
            continue
        kept = boxes[inside].copy()
        kept[:, :2] = np.maximum(kept[:, :2], rect[:2])
        kept[:, 2:] = np.minimum(kept[:, 2:], rect[2:])
        kept = (kept - np.tile(rect[:2], 2)) / np.tile([cw, ch], 2)
        px = (int(x0 * w), int(y0 * h), max(int(x0 * w) + 1, int((x0 + cw) * w)),
              max(int(y0 * h) + 1, int((y0 + ch) * h)))
        return image[px[1]:px[3], px[0]:px[2]], kept, labels[inside]
    return image, boxes, labels


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32)
    if rng.random() < 0.5:
        x += rng.uniform(-32, 32)
    if rng.random() < 0.5:
        x *= rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.5, 1.5)
    return np.clip(x, 0, 255)


def augment(image: np.ndarray, objects: np.ndarray, size: int, rng: np.random.Generator, full: bool = True):
    """(3 x size x size input, objects rows [class, xmin, ymin, xmax, ymax]) of one training draw.

    full=False (nbsage's `_augmentation=flip`): the horizontal flip alone."""
    boxes, labels = objects[:, 1:5].astype(np.float64), objects[:, 0]
    if full and rng.random() < 0.5:
        image, boxes = expand(image, boxes, rng)
    if full:
        image, boxes, labels = crop(image, boxes, labels, rng)
    if rng.random() < 0.5:
        image = image[:, ::-1]
        boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    image = resize(np.ascontiguousarray(image), size)
    image = photometric(image, rng) if full else image
    out = np.concatenate([labels[:, None], boxes], axis=1).astype(np.float32)
    return normalise(image), out
