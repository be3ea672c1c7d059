"""application/x-image: images paired with JSON annotation files by base name; annotations checked
field by field; Pillow is optional and missing it says how to install it."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from nbsage.errors import DataError
from nbsage.formats import MissingDependency, image, iter_batches, read_features, read_table, write

pytest.importorskip("PIL")


@pytest.fixture
def channel(tmp_path):
    rng = np.random.default_rng(0)
    pixels = []
    for i in range(5):
        arr = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
        pixels.append(arr)
        write(arr, tmp_path / "train" / f"img{i}.png", "image/png", labels=[(i % 2, 4, 5, 10, 12)],
              annotation_path=tmp_path / "train_annotation" / f"img{i}.json")
    return tmp_path, pixels


def test_images_pair_with_annotations_by_base_name(channel):
    root, pixels = channel
    images = sorted((root / "train").iterdir())
    annotations = sorted((root / "train_annotation").iterdir(), reverse=True)
    table = read_table(images, "application/x-image", annotations=annotations)
    np.testing.assert_array_equal(table.features[3], pixels[3])
    doc = table.labels[3]
    assert doc["file"] == "img3.png" and doc["image_size"] == [{"width": 48, "height": 32, "depth": 3}]
    assert doc["annotations"] == [{"class_id": 1, "left": 4, "top": 5, "width": 10, "height": 12}]


def test_batches_of_images_stream(channel):
    root, _ = channel
    batches = list(iter_batches(sorted((root / "train").iterdir()), "image/png", batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1] and batches[0].labels == [None, None]


def test_an_image_without_annotation_is_named(channel):
    root, _ = channel
    (root / "train_annotation" / "img2.json").unlink()
    with pytest.raises(DataError, match=r"img2\.png: no annotation file img2\.json"):
        read_table(sorted((root / "train").iterdir()), "application/x-image",
                   annotations=sorted((root / "train_annotation").iterdir()))


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("image_size"), r"no 'image_size' field"),
    (lambda d: d["annotations"][0].pop("width"), r"annotations\[0\] has no 'width' field"),
    (lambda d: d["annotations"][0].update(class_id=-1), r"annotations\[0\]: class_id = -1 is not a class index"),
    (lambda d: d["annotations"][0].update(height=0), r"annotations\[0\]: height = 0 must be > 0"),
    (lambda d: d["image_size"][0].update(depth=1), r"depth = 1; images must be 3-channel"),
])
def test_annotation_errors_name_the_file_entry_and_field(tmp_path, change, message):
    doc = image.annotation("a.jpg", 100, 80, [(0, 1, 2, 3, 4)], categories=["dog"])
    change(doc)
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"a\.json.*" + message):
        image.read_annotation(tmp_path / "a.json")


def test_an_annotation_whose_size_disagrees_with_the_image_is_named(channel):
    root, _ = channel
    path = root / "train_annotation" / "img0.json"
    doc = json.loads(path.read_text())
    doc["image_size"][0]["width"] = 50
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"img0\.json: image_size says 50x32, and img0\.png is 48x32"):
        read_table([root / "train" / "img0.png"], "application/x-image", annotations=[path])


def test_grey_images_are_refused_unless_converted(tmp_path):
    from PIL import Image
    Image.new("L", (4, 4)).save(tmp_path / "g.png")
    with pytest.raises(DataError, match=r"g\.png: a L image with 1 channel"):
        image.decode_image(tmp_path / "g.png")
    assert image.decode_image(tmp_path / "g.png", rgb_only=False).shape == (4, 4, 3)


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    (tmp_path / "x.jpg").write_text("not an image")
    with pytest.raises(DataError, match=r"x\.jpg: not a readable JPEG or PNG image"):
        read_table([tmp_path / "x.jpg"], "image/jpeg")


def test_jpeg_requests_decode_for_the_model_server():
    arr = np.zeros((8, 8, 3), dtype=np.uint8)
    assert read_features(image.encode_image(arr, "JPEG"), "image/jpeg").shape == (8, 8, 3)


def test_without_pillow_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(MissingDependency, match="pip install pillow"):
        image.decode_image(b"\xff\xd8")
