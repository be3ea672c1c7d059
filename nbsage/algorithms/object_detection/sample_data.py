"""Generated detection data with exact boxes, for tests, benchmarks and the notebook (nothing downloaded).

Shapes — class 0 rectangle, 1 ellipse, 2 triangle, then more classes as digits 0-9 of
scikit-learn's bundled digits set, scaled up — of random colour and size are pasted onto crops
of the photographs scikit-learn ships (`load_sample_images`: china.jpg, flower.jpg) or, where
scikit-learn is missing, onto coloured noise. Writers produce both of SageMaker's training
inputs: a RecordIO image list (`.lst` -> `.rec` + `.idx`) and images with per-image JSON
annotations.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from nbsage.formats.image import annotation, encode_image, write_annotation
from nbsage.formats.recordio_image import write_lst, write_rec

SHAPES = ("rectangle", "ellipse", "triangle")


@cache
def _backgrounds() -> tuple[np.ndarray, ...]:
    try:
        from sklearn.datasets import load_sample_images
        return tuple(np.asarray(im, dtype=np.uint8) for im in load_sample_images().images)
    except Exception:  # noqa: BLE001 - scikit-learn missing or its images unreadable: noise backgrounds
        return ()


@cache
def _digits() -> np.ndarray | None:
    try:
        from sklearn.datasets import load_digits
        return load_digits()
    except Exception:  # noqa: BLE001
        return None


def class_names(num_classes: int) -> list[str]:
    return [SHAPES[c] if c < len(SHAPES) else f"digit {c - len(SHAPES)}" for c in range(num_classes)]


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    photos = _backgrounds()
    if photos:
        photo = photos[rng.integers(len(photos))]
        h, w, _ = photo.shape
        side = int(rng.integers(size, min(h, w)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        from nbsage.algorithms.object_detection.augment import resize
        return (resize(np.ascontiguousarray(photo[y:y + side, x:x + side]), size) * 0.6).astype(np.uint8)
    base = rng.integers(0, 160, size=3)
    return np.clip(base + rng.normal(0, 25, size=(size, size, 3)), 0, 255).astype(np.uint8)


def _mask(cls: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    if cls == 0:
        return np.ones((h, w), dtype=bool)
    if cls == 1:
        return ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1
    if cls == 2:  # apex at the top centre, base along the bottom
        return np.abs(xx + 0.5 - w / 2) <= (yy + 0.5) / h * (w / 2)
    digits = _digits()
    if digits is None:
        raise ValueError("classes beyond the three shapes are scikit-learn digits; install scikit-learn")
    choices = np.flatnonzero(digits.target == (cls - len(SHAPES)) % 10)
    glyph = digits.images[choices[0]] / 16.0
    from nbsage.algorithms.object_detection.augment import resize
    big = resize((glyph[..., None].repeat(3, 2) * 255).astype(np.uint8), max(h, w))[:h, :w, 0]
    return big > 96


def make_image(size: int, num_classes: int, rng: np.random.Generator, max_objects: int = 2,
               min_fraction: float = 0.25, max_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(size x size x 3 image, objects rows [class, xmin, ymin, xmax, ymax] normalised), non-overlapping."""
    image = _background(size, rng)
    objects: list[list[float]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _trial in range(20):
            cls = int(rng.integers(num_classes))
            w = int(rng.uniform(min_fraction, max_fraction) * size)
            h = int(np.clip(w * rng.uniform(0.7, 1.4), min_fraction * size, max_fraction * size))
            x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            box = [x / size, y / size, (x + w) / size, (y + h) / size]
            if any(box[0] < o[3] and o[1] < box[2] and box[1] < o[4] and o[2] < box[3] for o in objects):
                continue
            mask = _mask(cls, h, w)
            colour = rng.integers(150, 256, size=3)
            colour[rng.integers(3)] = rng.integers(0, 80)
            image[y:y + h, x:x + w][mask] = colour
            ys, xs = np.nonzero(mask)  # the exact box of the pixels drawn
            objects.append([cls, (x + xs.min()) / size, (y + ys.min()) / size, (x + xs.max() + 1) / size,
                            (y + ys.max() + 1) / size])
            break
    return image, np.asarray(objects, dtype=np.float32).reshape(-1, 5)


def make_dataset(n: int, size: int = 96, num_classes: int = 3, seed: int = 0, max_objects: int = 2):
    """n (image, objects) pairs."""
    rng = np.random.default_rng(seed)
    return [make_image(size, num_classes, rng, max_objects) for _ in range(n)]


def write_images(dataset, folder, prefix: str = "image", image_format: str = "JPEG") -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".jpg" if image_format.upper() == "JPEG" else ".png"
    paths = []
    for i, (image, _) in enumerate(dataset):
        path = folder / f"{prefix}{i:05d}{suffix}"
        path.write_bytes(encode_image(image, image_format))
        paths.append(path)
    return paths


def write_recordio(dataset, folder, name: str = "train") -> Path:
    """images/ + name.lst + name.rec + name.idx under folder; returns the .rec path."""
    folder = Path(folder)
    paths = write_images(dataset, folder / "images", prefix=f"{name}-")
    items = []
    for i, ((_, objects), path) in enumerate(zip(dataset, paths)):
        label = np.concatenate([[2.0, 5.0], objects.ravel()])
        items.append((i, label, f"images/{path.name}"))
    write_lst(items, folder / f"{name}.lst")
    write_rec(folder / f"{name}.lst", folder, folder / f"{name}.rec", folder / f"{name}.idx")
    return folder / f"{name}.rec"


def write_json_annotations(dataset, image_folder, annotation_folder, num_classes: int = 3,
                           image_format: str = "JPEG") -> list[Path]:
    """Images in image_folder and one SageMaker JSON annotation each (pixel boxes) in annotation_folder."""
    paths = write_images(dataset, image_folder, image_format=image_format)
    names = class_names(num_classes)
    for (image, objects), path in zip(dataset, paths):
        h, w, _ = image.shape
        boxes = [(int(c), round(x0 * w, 3), round(y0 * h, 3), round((x1 - x0) * w, 3), round((y1 - y0) * h, 3))
                 for c, x0, y0, x1, y1 in objects.tolist()]
        doc = annotation(path.name, w, h, boxes, categories=names)
        write_annotation(Path(annotation_folder) / f"{path.stem}.json", doc)
    return paths
