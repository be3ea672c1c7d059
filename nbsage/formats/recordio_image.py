"""application/x-recordio image lists: MXNet's `.lst` files and the `.rec` files im2rec packs from them.

`.lst`: one image per line, tab-separated `index <TAB> label ... <TAB> relative/path.jpg`. For
Object Detection (`im2rec.py --pack-label`) the labels are `A B` (header width 2, label width 5),
then per object `class xmin ymin xmax ymax`, coordinates normalised to [0, 1] (top-left origin):

    0	2	5	0	0.222	0.335	0.344	0.655	images/dog1.jpg

`.rec`: dmlc RecordIO (the framing of `recordio_protobuf`), one record per image: MXNet's
IRHeader `struct.pack("IfQQ", flag, label, id, id2)`, then `flag` float32 labels when the label is
a vector (flag = its length, label = 0), then the encoded image bytes. An optional `.idx` holds
`index <TAB> byte offset` per record. `write_rec` is `im2rec --pass-through --pack-label`: images
are stored as they are, not re-encoded.
"""
from __future__ import annotations

import os
import struct
from collections import namedtuple
from pathlib import Path
from typing import Iterator

import numpy as np

from nbsage.errors import DataError
from nbsage.formats import DEFAULT_BATCH_ROWS, Format, Table, register
from nbsage.formats import compression
from nbsage.formats.recordio_protobuf import _iter_payloads_at, frame_parts

CONTENT_TYPE = "application/x-recordio"
IRHeader = namedtuple("IRHeader", ["flag", "label", "id", "id2"])
_IR_FORMAT = "<IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)  # 24

LstItem = namedtuple("LstItem", ["index", "labels", "path"])


# ---- .lst ----------------------------------------------------------------------------------------
def parse_lst_line(line: str, where: str) -> LstItem:
    cells = line.rstrip("\r\n").split("\t")
    if len(cells) < 3:
        raise DataError(f"{where}: expected `index<TAB>label ...<TAB>path` (tab-separated, at least 3 fields), "
                        f"found {len(cells)} field(s)")
    try:
        index = int(cells[0])
    except ValueError:
        raise DataError(f"{where}: index {cells[0]!r} is not an integer") from None
    labels = []
    for k, cell in enumerate(cells[1:-1], start=1):
        try:
            labels.append(float(cell))
        except ValueError:
            raise DataError(f"{where}: label field {k} = {cell!r} is not a number") from None
    path = cells[-1].strip()
    if not path:
        raise DataError(f"{where}: the last field must be the image's relative path")
    return LstItem(index, np.asarray(labels, dtype=np.float32), path)


def iter_lst_images(path: Path, image_root=None) -> Iterator[tuple[str, LstItem, bytes]]:
    """Each line of an image list with its image's bytes (read from `image_root`, else the list's
    folder), as (where, item, bytes); `where` names the list's file and line."""
    root = Path(image_root) if image_root else path.parent
    with compression.open_text(path, errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {lineno}"
            item = parse_lst_line(line, where)
            try:
                data = (root / item.path).read_bytes()
            except OSError as e:
                raise DataError(f"{where}: image {root / item.path} cannot be read ({e.strerror or e})") from None
            yield where, item, data


def read_lst(path) -> list[LstItem]:
    """Every line of a `.lst` file; errors name the file and line."""
    path = Path(path)
    items = []
    with compression.open_text(path, errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                items.append(parse_lst_line(line, f"{path} line {lineno}"))
    return items


def write_lst(items, path) -> None:
    """`.lst` lines from (index, labels, path) items."""
    with open(path, "w", encoding="utf-8") as f:
        for index, labels, rel in items:
            cells = [str(int(index))] + [_fmt(v) for v in np.atleast_1d(labels)] + [str(rel)]
            f.write("\t".join(cells) + "\n")


def _fmt(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.6g}"


def detection_label(labels, where: str) -> np.ndarray:
    """Object Detection's packed label -> (objects, label_width) array: class, xmin, ymin, xmax, ymax, ...

    Checks the header (width >= 2, label width >= 5), that the objects fill the label, class ids
    are non-negative integers and boxes lie in [0, 1] with min < max.
    """
    labels = np.asarray(labels, dtype=np.float32)
    if labels.size < 2:
        raise DataError(f"{where}: a detection label starts with header width and label width (`2 5`), "
                        f"found {labels.tolist()}")
    a, b = labels[0], labels[1]
    if a != int(a) or a < 2 or b != int(b) or b < 5:
        raise DataError(f"{where}: header width {a:g} and label width {b:g} are not valid; Object Detection "
                        "labels start with `2 5` (then class xmin ymin xmax ymax per object)")
    a, b = int(a), int(b)
    body = labels[a:]
    if body.size % b:
        raise DataError(f"{where}: {body.size} label values after the header do not split into objects of "
                        f"{b} values (class xmin ymin xmax ymax)")
    objects = body.reshape(-1, b)
    for k, obj in enumerate(objects):
        cls, box = obj[0], obj[1:5]
        if cls != int(cls) or cls < 0:
            raise DataError(f"{where}: object {k}: class {cls:g} is not a class index (0, 1, 2, ...)")
        if (box < 0).any() or (box > 1).any():
            raise DataError(f"{where}: object {k}: box {box.tolist()} is not normalised to [0, 1]")
        if box[0] >= box[2] or box[1] >= box[3]:
            raise DataError(f"{where}: object {k}: box {box.tolist()} needs xmin < xmax and ymin < ymax")
    return objects


def detection_labels_from_annotation(doc: dict) -> np.ndarray:
    """The packed `.lst` label of an annotation document (pixel boxes -> normalised [0, 1])."""
    size = doc["image_size"][0]
    w, h = float(size["width"]), float(size["height"])
    out = [2.0, 5.0]
    for box in doc["annotations"]:
        coords = [box["left"] / w, box["top"] / h, (box["left"] + box["width"]) / w, (box["top"] + box["height"]) / h]
        out += [float(box["class_id"]), *(min(1.0, max(0.0, c)) for c in coords)]
    return np.asarray(out, dtype=np.float32)


# ---- .rec ----------------------------------------------------------------------------------------
def pack(header, data: bytes) -> bytes:
    """MXNet's recordio.pack: IRHeader, the label vector when there is one, then the bytes."""
    header = IRHeader(*header)
    if isinstance(header.label, (int, float, np.integer, np.floating)):
        return struct.pack(_IR_FORMAT, 0, float(header.label), int(header.id), int(header.id2)) + data
    label = np.asarray(header.label, dtype="<f4").ravel()
    return (struct.pack(_IR_FORMAT, label.size, 0.0, int(header.id), int(header.id2)) + label.tobytes() + data)


def unpack(payload: bytes, where: str = "record") -> tuple[IRHeader, bytes]:
    """MXNet's recordio.unpack: (IRHeader with the label vector when flag > 0, image bytes)."""
    if len(payload) < _IR_SIZE:
        raise DataError(f"{where}: {len(payload)} bytes, shorter than the {_IR_SIZE}-byte image record header")
    flag, label, id1, id2 = struct.unpack_from(_IR_FORMAT, payload)
    rest = payload[_IR_SIZE:]
    if flag > 0:
        if len(rest) < 4 * flag:
            raise DataError(f"{where}: header says {flag} labels, the record is too short to hold them")
        label = np.frombuffer(rest, dtype="<f4", count=flag).copy()
        rest = rest[4 * flag:]
    return IRHeader(flag, label, id1, id2), rest


def iter_rec(path) -> Iterator[tuple[IRHeader, bytes]]:
    """(header, image bytes) of every record of a `.rec` file."""
    with compression.open_binary(path) as f:
        for i, _, payload in _iter_payloads_at(f, str(path), 0, 0):
            yield unpack(payload, f"{path} record {i}")


def write_rec(items, image_root, rec_path, idx_path=None, pack_label: bool = True) -> int:
    """im2rec --pass-through: pack the images an `.lst` (or its items) names into a `.rec` (+ `.idx`).

    Returns the number of records. A missing image is an error naming it and its `.lst` line.
    """
    if isinstance(items, (str, os.PathLike)):
        items = read_lst(items)
    image_root = Path(image_root)
    rec_path = Path(rec_path)
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(rec_path, "wb") as rec, (open(idx_path, "w") if idx_path else _Null()) as idx:
        for item in items:
            image = image_root / item.path
            try:
                data = image.read_bytes()
            except OSError as e:
                raise DataError(f"{image} (listed as index {item.index}): cannot be read ({e.strerror or e})") from None
            labels = np.atleast_1d(item.labels)
            label = labels if (pack_label or labels.size != 1) else float(labels[0])
            idx.write(f"{item.index}\t{rec.tell()}\n")
            rec.write(frame_parts(pack(IRHeader(0, label, item.index, 0), data)))
            count += 1
    return count


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, _):
        pass


@register
class RecordIOImageFormat(Format):
    """RecordIO image lists: `.rec` files (and `.lst` files with their images) as images and labels.

    Tables hold the images (H x W x 3 arrays; encoded bytes with decode=False) and their label
    vectors (`detection=True`: Object Detection's (objects, 5) arrays, checked).
    """

    content_type = CONTENT_TYPE
    suffix = ".rec"
    tabular = False
    not_a_table = "MXNet RecordIO of images with their class or box labels, not rows of numbers"

    def _chunks(self, files, batch_rows, *, decode: bool = True, detection: bool = False, image_root=None,
                **options) -> Iterator[Table]:
        from nbsage.formats.image import decode_image
        batch_rows = batch_rows or DEFAULT_BATCH_ROWS
        features, labels = [], []
        for path in files:
            path = Path(path)
            if path.suffix.lower() == ".idx":
                continue
            for where, label, data in self._records(path, image_root):
                if detection:
                    label = detection_label(label, where)
                features.append(decode_image(data, where) if decode else data)
                labels.append(label)
                if len(features) == batch_rows:
                    yield Table(features, labels)
                    features, labels = [], []
        if features:
            yield Table(features, labels)

    @staticmethod
    def _records(path: Path, image_root) -> Iterator[tuple[str, object, bytes]]:
        if path.suffix.lower() == ".lst":
            for where, item, data in iter_lst_images(path, image_root):
                yield where, item.labels, data
            return
        with compression.open_binary(path) as f:
            for i, _, payload in _iter_payloads_at(f, str(path), 0, 0):
                where = f"{path} record {i}"
                header, data = unpack(payload, where)
                yield where, header.label, data

    def write(self, obj, path_or_file, labels=None, ids=None, **options) -> None:
        """Images (arrays, encoded to JPEG, or encoded bytes) with labels as a `.rec` file."""
        from nbsage.formats.image import encode_image
        out, close = compression.open_output(path_or_file)
        try:
            for i, image in enumerate(obj):
                data = bytes(image) if isinstance(image, (bytes, bytearray)) else encode_image(image, "JPEG")
                label = labels[i] if labels is not None else 0.0
                index = ids[i] if ids is not None else i
                out.write(frame_parts(pack(IRHeader(0, label, index, 0), data)))
        finally:
            if close:
                out.close()


def read_rec_header_labels(path) -> list[tuple[int, np.ndarray]]:
    """(id, label vector) of every record, without touching the images (for checks and listings)."""
    return [(h.id, np.atleast_1d(np.asarray(h.label, dtype=np.float32))) for h, _ in iter_rec(path)]

