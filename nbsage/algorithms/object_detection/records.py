"""Object Detection's training input, in the three forms SageMaker reads, as checked examples.

1. RecordIO image lists (application/x-recordio, File or Pipe): `.rec` files packed by
   `im2rec --pack-label` (a `.lst` with its images is read too, an nbsage convenience); each
   record's label is `2 <label width> class xmin ymin xmax ymax ...`, normalised corners.
2. Images with JSON annotations (image/jpeg, image/png, application/x-image, File mode): the
   images in `train`/`validation`, one annotation per image with the same base name in
   `train_annotation`/`validation_annotation` (or, an nbsage convenience, beside the images).
3. Augmented manifests (Pipe mode, RecordWrapperType RecordIO, AttributeNames
   ["source-ref", "<label attribute>"]): the stream alternates an image record and its
   Ground Truth label `{"image_size": [...], "annotations": [...]}` (pixel boxes). A manifest
   staged in File mode is read line by line the same way.

Everything is checked before training starts, and every error names the file and record or
line: fewer than five numbers per object (SageMaker's "Not enough annotation packed ..."
message), a class id >= num_classes, boxes outside [0, 1] or with xmin >= xmax, a packed label
longer than `label_width` (naming the image and the label_width it needs), an image that does
not decode.
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import compression
from nbsage.formats.augmented_manifest import read_ref
from nbsage.formats.image import IMAGE_SUFFIXES, decode_image, pair_annotations, read_annotation
from nbsage.formats.recordio_image import iter_lst_images, unpack
from nbsage.formats.recordio_protobuf import MAGIC, _iter_payloads_at

NOT_ENOUGH = ("Not enough annotation packed in the list file or the RecordIO file. Each object requires at least "
              "five numbers [label_id, xmin, ymin, xmax, ymax] for annotation.")
JPEG, PNG = b"\xff\xd8", b"\x89PNG"
MANIFEST_SUFFIXES = (".manifest", ".jsonl")
CACHE_BYTES = 1 << 30  # decoded images kept in memory up to this size; past it, decoded per use


@dataclass
class Example:
    """One image and its objects: rows [class_id, xmin, ymin, xmax, ymax], normalised corners."""

    where: str
    data: bytes
    objects: np.ndarray
    pixels: np.ndarray | None = None

    def image(self) -> np.ndarray:
        return self.pixels if self.pixels is not None else decode_image(self.data, self.where)


def is_image(payload: bytes) -> bool:
    return payload[:2] == JPEG or payload[:4] == PNG


# ---- labels ---------------------------------------------------------------------------------------
def objects_from_packed(label, where: str) -> np.ndarray:
    """A packed label `A B obj...` (A header values, B per object) -> (objects, 5)."""
    label = np.atleast_1d(np.asarray(label, dtype=np.float64))
    if label.size < 2:
        raise DataError(f"{where}: {NOT_ENOUGH} The label holds {label.size} number(s); it starts with the "
                        "header width and the label width per object (`2 5`)")
    a, b = label[0], label[1]
    if a != int(a) or a < 2 or a > label.size or b != int(b):
        raise DataError(f"{where}: the label header `{a:g} {b:g}` is not valid; packed labels start with `2 5` "
                        "(header width 2, then 5 numbers per object)")
    a, b = int(a), int(b)
    body = label[a:]
    if b < 5 or body.size % b:
        raise DataError(f"{where}: {NOT_ENOUGH} Found label width {b} and {body.size} number(s) after the header")
    return body.reshape(-1, b)[:, :5].astype(np.float32)


def check_objects(objects: np.ndarray, where: str, num_classes: int) -> np.ndarray:
    """Class ids in [0, num_classes), boxes inside [0, 1] with min < max; errors name the object."""
    for k, (cls, x0, y0, x1, y1) in enumerate(objects.tolist()):
        at = f"{where}: object {k}"
        if cls != int(cls) or cls < 0:
            raise DataError(f"{at}: class id {cls:g} is not a class index (0, 1, 2, ...)")
        if cls >= num_classes:
            raise DataError(f"{at}: class id {int(cls)} is not below num_classes={num_classes}; class ids run "
                            f"from 0 to {num_classes - 1}")
        box = [x0, y0, x1, y1]
        if min(box) < 0 or max(box) > 1:
            raise DataError(f"{at}: box [xmin, ymin, xmax, ymax] = {[round(v, 6) for v in box]} is not inside "
                            "[0, 1]; coordinates are normalised by the image's width and height")
        if x0 >= x1 or y0 >= y1:
            raise DataError(f"{at}: box [xmin, ymin, xmax, ymax] = {[round(v, 6) for v in box]} needs "
                            "xmin < xmax and ymin < ymax")
    return objects


def objects_from_annotation(doc: dict, where: str) -> np.ndarray:
    """SageMaker's JSON annotation (pixel left/top/width/height) -> normalised rows; checks the fields."""
    sizes = doc.get("image_size")
    size = sizes[0] if isinstance(sizes, list) and sizes else sizes
    if not isinstance(size, dict) or not all(isinstance(size.get(k), numbers.Real) and size.get(k) > 0
                                             for k in ("width", "height")):
        raise DataError(f"{where}: 'image_size' must be [{{\"width\": w, \"height\": h, \"depth\": 3}}], "
                        f"found {json.dumps(sizes)}")
    w, h = float(size["width"]), float(size["height"])
    boxes = doc.get("annotations")
    if not isinstance(boxes, list):
        raise DataError(f"{where}: 'annotations' must be a list of "
                        "{\"class_id\", \"left\", \"top\", \"width\", \"height\"}")
    rows = []
    for i, box in enumerate(boxes):
        fields = ("class_id", "left", "top", "width", "height")
        if not isinstance(box, dict) or any(not isinstance(box.get(f), numbers.Real) or isinstance(box.get(f), bool)
                                            for f in fields):
            missing = [f for f in fields if not isinstance(box, dict) or not isinstance(box.get(f), numbers.Real)]
            raise DataError(f"{where}: annotations[{i}]: {NOT_ENOUGH} Field(s) {', '.join(missing)} missing or "
                            "not numbers")
        if box["left"] < 0 or box["top"] < 0 or box["left"] + box["width"] > w or box["top"] + box["height"] > h:
            raise DataError(f"{where}: annotations[{i}]: left={box['left']}, top={box['top']}, width={box['width']}, "
                            f"height={box['height']} reaches outside the {w:g}x{h:g} image (image_size)")
        if box["width"] <= 0 or box["height"] <= 0:
            raise DataError(f"{where}: annotations[{i}]: width and height must be > 0, found {box['width']} and "
                            f"{box['height']}")
        rows.append([box["class_id"], box["left"] / w, box["top"] / h, (box["left"] + box["width"]) / w,
                     (box["top"] + box["height"]) / h])
    return np.asarray(rows, dtype=np.float32).reshape(-1, 5)


def declared_size(doc: dict) -> tuple[int, int]:
    """(width, height) of an annotation's image_size (checked by objects_from_annotation)."""
    sizes = doc["image_size"]
    size = sizes[0] if isinstance(sizes, list) else sizes
    return int(round(size["width"])), int(round(size["height"]))


# ---- the three inputs ----------------------------------------------------------------------------
def _payloads(path: Path) -> Iterator[tuple[str, bytes]]:
    """(where, payload) of a RecordIO file, or the file itself when it is one spooled Pipe record."""
    with compression.open_binary(path) as f:
        head = f.read(4)
    if len(head) == 4 and int.from_bytes(head, "little") == MAGIC:
        with compression.open_binary(path) as f:
            for i, _, payload in _iter_payloads_at(f, str(path), 0, 0):
                yield f"{path} record {i}", payload
    else:
        yield str(path), path.read_bytes()


def _from_stream(payloads: Iterator[tuple[str, bytes]]) -> Iterator[tuple[str, bytes, np.ndarray, int]]:
    """(where, image, objects, packed label length) from .rec records or augmented-manifest pairs."""
    pending: tuple[str, bytes] | None = None
    for where, payload in payloads:
        if pending is not None:
            image_where, image = pending
            pending = None
            try:
                doc = json.loads(payload)
            except ValueError:
                raise DataError(f"{where}: expected the label attribute (JSON) after the image of {image_where}; "
                                "an augmented manifest's AttributeNames are the image's '-ref' attribute, then "
                                "its bounding-box attribute") from None
            doc = _label_document(doc, where)
            objects = objects_from_annotation(doc, where)
            yield image_where, image, objects, 2 + 5 * len(objects), declared_size(doc)
        elif is_image(payload):
            pending = (where, payload)
        else:
            header, image = unpack(payload, where)
            if header.flag == 0:
                raise DataError(f"{where}: a single label {header.label:g}; {NOT_ENOUGH} Pack the list with "
                                "`im2rec.py --pack-label`")
            label = np.atleast_1d(header.label)
            yield where, image, objects_from_packed(label, where), int(label.size), None
    if pending is not None:
        raise DataError(f"{pending[0]}: an image with no label record after it; an augmented manifest needs "
                        "AttributeNames ['source-ref', '<bounding-box attribute>']")


def _label_document(doc, where: str) -> dict:
    """A Ground Truth bounding-box attribute, or a document holding one (a manifest line)."""
    if isinstance(doc, dict) and "annotations" in doc:
        return doc
    if isinstance(doc, dict):
        for value in doc.values():
            if isinstance(value, dict) and "annotations" in value:
                return value
    raise DataError(f"{where}: no bounding-box label ({{\"image_size\": [...], \"annotations\": [...]}})")


def _from_manifest(path: Path) -> Iterator[tuple[str, bytes, np.ndarray, int]]:
    with compression.open_text(path, errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {lineno}"
            try:
                record = json.loads(line)
            except ValueError as e:
                raise DataError(f"{where}: not JSON ({e})") from None
            refs = [k for k in record if k.endswith("-ref")] if isinstance(record, dict) else []
            if not refs:
                raise DataError(f"{where}: no '-ref' attribute naming the image (e.g. 'source-ref')")
            image = read_ref(record[refs[0]], where, path.parent)
            doc = _label_document(record, where)
            objects = objects_from_annotation(doc, where)
            yield f"{where} ({record[refs[0]]})", image, objects, 2 + 5 * len(objects), declared_size(doc)


def _from_lst(path: Path) -> Iterator[tuple[str, bytes, np.ndarray, int]]:
    for where, item, data in iter_lst_images(path):
        yield f"{where} ({item.path})", data, objects_from_packed(item.labels, where), int(item.labels.size), None


def recordio_examples(files: list[Path]) -> Iterator[tuple[str, bytes, np.ndarray, int]]:
    """.rec files (or Pipe records) first; a `.lst` with its images only where the channel has no .rec;
    loose image files are the list's images, and manifests are read line by line."""
    stream, lists, manifests = [], [], []
    for path in files:
        name = path.name.lower().removesuffix(".gz")
        suffix = Path(name).suffix
        if suffix == ".idx" or suffix in IMAGE_SUFFIXES:
            continue
        (lists if suffix == ".lst" else manifests if name.endswith(MANIFEST_SUFFIXES) else stream).append(path)
    for path in manifests:
        yield from _from_manifest(path)
    if stream:
        yield from _from_stream(p for path in stream for p in _payloads(path))
    else:
        for path in lists:
            yield from _from_lst(path)


def image_examples(images: list[Path], annotations: list[Path]) -> Iterator[tuple[str, bytes, np.ndarray, int]]:
    if not annotations:  # nbsage convenience: annotations beside the images
        annotations = [p for p in images if p.suffix.lower() == ".json"]
    for image, annotation in pair_annotations([p for p in images if p.suffix.lower() in IMAGE_SUFFIXES],
                                              annotations):
        doc = read_annotation(annotation)
        where = f"{image} (annotation {annotation})"
        objects = objects_from_annotation(doc, str(annotation))
        yield where, image.read_bytes(), objects, 2 + 5 * len(doc["annotations"]), declared_size(doc)


def read_examples(env, channel: str, num_classes: int, label_width: int,
                  log: Callable[[str], None]) -> list[Example]:
    """The channel's examples, every one checked (labels, label_width, the image decodes)."""
    ch = env.channels[channel]
    files = env.channel_files(channel)
    if ch.content_type in ("image/jpeg", "image/png", "application/x-image"):
        annotations = env.channel_files(f"{channel}_annotation")
        source = image_examples(files, annotations)
        log(f"Reading {channel} images with JSON annotations "
            f"({'channel ' + channel + '_annotation' if annotations else 'beside the images'})")
    else:
        source = recordio_examples(files)
    examples, cached, resized = [], 0, []
    for where, data, objects, packed, declared in source:
        if packed > label_width:
            raise DataError(f"{where}: its label packs {packed} numbers ({len(objects)} objects); label_width="
                            f"{label_width} holds fewer: set label_width to at least {packed}")
        check_objects(objects, where, num_classes)
        pixels = decode_image(data, where)
        if declared is not None and declared != (pixels.shape[1], pixels.shape[0]):
            resized.append(f"{where}: image_size {declared[0]}x{declared[1]}, the image is "
                           f"{pixels.shape[1]}x{pixels.shape[0]}")
        keep = cached + pixels.nbytes <= CACHE_BYTES
        cached += pixels.nbytes if keep else 0
        examples.append(Example(where, data, objects, pixels if keep else None))
    if not examples:
        raise DataError(f"channel {channel!r} holds no images ({ch.content_type}, {len(files)} file(s))")
    if resized:
        log(f"WARNING: {len(resized)} {channel} image(s) are not the size their annotation's image_size says "
            f"(first: {resized[0]}); their boxes are scaled by image_size, as pixel annotations refer to it. "
            "Were the images resized after labelling?")
    return examples
