"""application/x-image (image/jpeg, image/png): image files, with JSON annotation files.

Object Detection's "image + JSON" input: channels `train` and `validation` hold the images,
`train_annotation` and `validation_annotation` one JSON per image with the same base name:

    {"file": "images/dog1.jpg",
     "image_size": [{"width": 500, "height": 400, "depth": 3}],
     "annotations": [{"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128}],
     "categories": [{"class_id": 0, "name": "dog"}]}

Pixel coordinates, (left, top) the upper-left corner; `categories` is optional; images are
3-channel. Images are decoded with Pillow, an optional dependency imported when an image is
first decoded (`pip install pillow`); annotations need nothing.
"""
from __future__ import annotations

import io
import json
import numbers
from pathlib import Path
from typing import Iterator

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import DEFAULT_BATCH_ROWS, Format, MissingDependency, Table, register

CONTENT_TYPE = "application/x-image"
IMAGE_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
ANNOTATION_FIELDS = ("class_id", "left", "top", "width", "height")
ANNOTATION_SHAPE = ('{"file": ..., "image_size": [{"width", "height", "depth"}], "annotations": '
                    '[{"class_id", "left", "top", "width", "height"}], "categories": [...] (optional)}')


def pillow():
    """PIL.Image, or a clear error saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependency("reading and writing images (application/x-image) needs Pillow, which is not "
                                "installed: pip install pillow") from None
    return Image


def decode_image(src, where: str | None = None, rgb_only: bool = True) -> np.ndarray:
    """An image (path or encoded bytes) as an H x W x 3 uint8 array.

    rgb_only: 3-channel images only, as Object Detection reads them; otherwise grey, RGBA, ... are
    converted to RGB.
    """
    Image = pillow()
    where = where or (str(src) if not isinstance(src, (bytes, bytearray, memoryview)) else "image bytes")
    try:
        data = Path(src).read_bytes() if not isinstance(src, (bytes, bytearray, memoryview)) else bytes(src)
        with Image.open(io.BytesIO(data)) as img:
            if img.mode != "RGB":
                if rgb_only:
                    raise DataError(f"{where}: a {img.mode} image with {len(img.getbands())} channel(s); "
                                    "images must be 3-channel RGB (JPEG or PNG)")
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except OSError as e:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"{where}: not a readable JPEG or PNG image ({e})") from None


def encode_image(array, image_format: str = "PNG", quality: int = 95) -> bytes:
    """An H x W x 3 uint8 array as PNG or JPEG bytes."""
    Image = pillow()
    arr = np.asarray(array)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"an image to write must be H x W x 3 (RGB), got shape {arr.shape}")
    buf = io.BytesIO()
    options = {"quality": quality} if image_format.upper() == "JPEG" else {}
    Image.fromarray(arr.astype(np.uint8), "RGB").save(buf, format=image_format.upper(), **options)
    return buf.getvalue()


# ---- annotations ---------------------------------------------------------------------------------
def _number(value, where: str, field: str, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"{where}: {field} = {json.dumps(value)} is not a number")
    if value < minimum or (strict and value == minimum):
        raise DataError(f"{where}: {field} = {value} must be {'>' if strict else '>='} {minimum:g}")
    return float(value)


def validate_annotation(doc, where: str) -> dict:
    """Check one annotation document; errors name `where`, the entry and the field."""
    if not isinstance(doc, dict):
        raise DataError(f"{where}: an annotation file holds one JSON object, {ANNOTATION_SHAPE}")
    for field in ("file", "image_size", "annotations"):
        if field not in doc:
            raise DataError(f"{where}: no {field!r} field; annotation files are {ANNOTATION_SHAPE}")
    if not isinstance(doc["file"], str) or not doc["file"]:
        raise DataError(f"{where}: 'file' must name the image, found {json.dumps(doc['file'])}")
    sizes = doc["image_size"]
    if isinstance(sizes, dict):
        sizes = [sizes]
    if not isinstance(sizes, list) or len(sizes) != 1 or not isinstance(sizes[0], dict):
        raise DataError(f"{where}: 'image_size' must be [{{\"width\": w, \"height\": h, \"depth\": 3}}]")
    size = sizes[0]
    for field in ("width", "height"):
        if field not in size:
            raise DataError(f"{where}: image_size has no {field!r}")
        _number(size[field], where, f"image_size.{field}", strict=True)
    if size.get("depth", 3) != 3:
        raise DataError(f"{where}: image_size.depth = {size.get('depth')}; images must be 3-channel")
    boxes = doc["annotations"]
    if not isinstance(boxes, list):
        raise DataError(f"{where}: 'annotations' must be a list of boxes")
    for i, box in enumerate(boxes):
        at = f"{where}: annotations[{i}]"
        if not isinstance(box, dict):
            raise DataError(f"{at} is not an object; each box holds {', '.join(ANNOTATION_FIELDS)}")
        missing = [f for f in ANNOTATION_FIELDS if f not in box]
        if missing:
            raise DataError(f"{at} has no {', '.join(repr(m) for m in missing)} field; each box needs "
                            f"{', '.join(ANNOTATION_FIELDS)}")
        cid = box["class_id"]
        if isinstance(cid, bool) or not isinstance(cid, numbers.Real) or cid != int(cid) or cid < 0:
            raise DataError(f"{at}: class_id = {json.dumps(cid)} is not a class index (0, 1, 2, ...)")
        _number(box["left"], at, "left")
        _number(box["top"], at, "top")
        _number(box["width"], at, "width", strict=True)
        _number(box["height"], at, "height", strict=True)
    categories = doc.get("categories", [])
    if not isinstance(categories, list) or any(not isinstance(c, dict) or "class_id" not in c for c in categories):
        raise DataError(f"{where}: 'categories' must be a list of {{\"class_id\": n, \"name\": ...}}")
    return doc


def read_annotation(path) -> dict:
    """One annotation file, checked."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e}); annotation files are {ANNOTATION_SHAPE}") from None
    return validate_annotation(doc, str(path))


def annotation(file: str, width: int, height: int, boxes, categories=None, depth: int = 3) -> dict:
    """An annotation document; boxes are (class_id, left, top, width, height) or dicts."""
    out = {"file": file, "image_size": [{"width": int(width), "height": int(height), "depth": depth}],
           "annotations": [dict(zip(ANNOTATION_FIELDS, b)) if not isinstance(b, dict) else dict(b) for b in boxes]}
    for box in out["annotations"]:
        box["class_id"] = int(box["class_id"])
    if categories is not None:
        out["categories"] = ([{"class_id": i, "name": n} for i, n in enumerate(categories)]
                             if categories and isinstance(categories[0], str) else list(categories))
    validate_annotation(out, f"annotation of {file}")
    return out


def write_annotation(path, doc: dict) -> None:
    validate_annotation(doc, str(path))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1))


def pair_annotations(images, annotations) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs matched by base name; an image without one is an error naming it."""
    by_stem: dict[str, Path] = {}
    for a in annotations:
        a = Path(a)
        if a.suffix.lower() == ".json":
            by_stem.setdefault(a.stem, a)
    pairs = []
    for img in images:
        img = Path(img)
        if img.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        ann = by_stem.get(img.stem)
        if ann is None:
            raise DataError(f"{img}: no annotation file {img.stem}.json in the annotation channel; each image "
                            "needs a JSON annotation with the same base name")
        pairs.append((img, ann))
    return pairs


@register
class ImageFormat(Format):
    """Image files (JPEG, PNG) as H x W x 3 arrays, with their annotation documents as labels.

    `iter_batches(images, annotations=annotation_files)` pairs them by base name; without
    annotations, labels are None. decode=False leaves images as encoded bytes.
    """

    content_type = CONTENT_TYPE
    aliases = ("image/jpeg", "image/png")
    suffix = ".png"
    tabular = False
    not_a_table = "images (JPEG, PNG) with JSON annotations, not rows of numbers"

    def _chunks(self, files, batch_rows, *, annotations=None, decode: bool = True, rgb_only: bool = True,
                **options) -> Iterator[Table]:
        batch_rows = batch_rows or DEFAULT_BATCH_ROWS
        files = [Path(f) for f in files]
        if annotations is not None:
            items = [(img, ann) for img, ann in pair_annotations(files, annotations)]
        else:
            items = [(f, None) for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
        features, labels = [], []
        for img, ann in items:
            doc = read_annotation(ann) if ann is not None else None
            pixels = decode_image(img, rgb_only=rgb_only) if decode else img.read_bytes()
            if doc is not None and decode:
                size = doc["image_size"][0]
                if (pixels.shape[1], pixels.shape[0]) != (size["width"], size["height"]):
                    raise DataError(f"{ann}: image_size says {size['width']}x{size['height']}, and {img.name} is "
                                    f"{pixels.shape[1]}x{pixels.shape[0]}")
            features.append(pixels)
            labels.append(doc)
            if len(features) == batch_rows:
                yield Table(features, labels)
                features, labels = [], []
        if features:
            yield Table(features, labels)

    def read_features(self, body: bytes, num_features: int | None = None):
        return decode_image(body, "request body")

    def write(self, obj, path_or_file, labels=None, annotation_path=None, **options) -> None:
        """One image (H x W x 3 array, or encoded bytes) to a .jpg/.png path or a file; labels, an
        annotation document or a list of boxes, go to annotation_path (default: beside the image)."""
        name = str(path_or_file) if not hasattr(path_or_file, "write") else getattr(path_or_file, "name", "image.png")
        fmt = IMAGE_SUFFIXES.get(Path(name).suffix.lower(), "PNG")
        if isinstance(obj, (bytes, bytearray)):
            data = bytes(obj)
            arr_shape = decode_image(data, name, rgb_only=False).shape if labels is not None else None
        else:
            arr = np.asarray(obj)
            data = encode_image(arr, fmt)
            arr_shape = arr.shape
        if hasattr(path_or_file, "write"):
            path_or_file.write(data)
        else:
            Path(path_or_file).parent.mkdir(parents=True, exist_ok=True)
            Path(path_or_file).write_bytes(data)
        if labels is not None:
            doc = (labels if isinstance(labels, dict)
                   else annotation(Path(name).name, arr_shape[1], arr_shape[0], labels))
            target = Path(annotation_path) if annotation_path else Path(name).with_suffix(".json")
            write_annotation(target, doc)
