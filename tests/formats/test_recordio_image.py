"""RecordIO image lists: `.lst` lines, `.rec` records in MXNet's im2rec layout (IRHeader, packed
label, image bytes), dmlc framing with payloads split where the magic occurs."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from nbsage.errors import DataError
from nbsage.formats import read_table
from nbsage.formats import recordio_image as ri
from nbsage.formats.recordio_protobuf import MAGIC, frame_parts, iter_payloads

MAGIC_BYTES = struct.pack("<I", MAGIC)


@pytest.fixture
def image_list(tmp_path):
    pytest.importorskip("PIL")
    from nbsage.formats.image import encode_image
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    items = []
    for i in range(3):
        pixels = rng.integers(0, 255, (16, 16, 3), np.uint8)
        (tmp_path / "images" / f"{i}.jpg").write_bytes(encode_image(pixels, "JPEG"))
        labels = [2, 5, i, 0.1, 0.2, 0.5, 0.6] + ([1, 0.5, 0.5, 0.9, 0.9] if i == 2 else [])
        items.append(ri.LstItem(i, np.asarray(labels, np.float32), f"images/{i}.jpg"))
    ri.write_lst(items, tmp_path / "train.lst")
    return tmp_path


def test_lst_lines_are_index_labels_path_tab_separated(image_list):
    first = (image_list / "train.lst").read_text().splitlines()[0]
    assert first.split("\t") == ["0", "2", "5", "0", "0.1", "0.2", "0.5", "0.6", "images/0.jpg"]
    items = ri.read_lst(image_list / "train.lst")
    assert items[2].index == 2 and items[2].labels.size == 12 and items[2].path == "images/2.jpg"


def test_rec_records_hold_irheader_packed_label_and_the_image_bytes_unchanged(image_list):
    n = ri.write_rec(image_list / "train.lst", image_list, image_list / "train.rec", image_list / "train.idx")
    assert n == 3
    payload = list(iter_payloads(open(image_list / "train.rec", "rb")))[2]
    flag, label, id1, id2 = struct.unpack_from("<IfQQ", payload)
    assert (flag, label, id1, id2) == (12, 0.0, 2, 0)
    assert np.frombuffer(payload[24:24 + 48], "<f4")[:3].tolist() == [2, 5, 2]
    assert payload[24 + 48:] == (image_list / "images" / "2.jpg").read_bytes()
    offsets = [int(line.split("\t")[1]) for line in (image_list / "train.idx").read_text().splitlines()]
    with open(image_list / "train.rec", "rb") as f:
        for offset in offsets:
            f.seek(offset)
            assert f.read(4) == MAGIC_BYTES


def test_a_scalar_label_is_stored_in_the_header(tmp_path):
    header, data = ri.unpack(ri.pack(ri.IRHeader(0, 3.0, 7, 0), b"jpeg"))
    assert header == ri.IRHeader(0, 3.0, 7, 0) and data == b"jpeg"


def test_detection_channels_read_as_images_with_object_arrays(image_list):
    ri.write_rec(image_list / "train.lst", image_list, image_list / "train.rec")
    for path in (image_list / "train.rec", image_list / "train.lst"):
        table = read_table([path], "application/x-recordio", detection=True)
        assert table.features[0].shape == (16, 16, 3)
        assert table.labels[2].shape == (2, 5)
        np.testing.assert_allclose(table.labels[2][1], [1, 0.5, 0.5, 0.9, 0.9], rtol=1e-6)


@pytest.mark.parametrize("labels,message", [
    ([2, 5, 0, 0.1, 0.2, 0.5], "do not split into objects of 5 values"),
    ([2, 5, 0.5, 0.1, 0.2, 0.5, 0.6], "class 0.5 is not a class index"),
    ([2, 5, 0, 0.1, 0.2, 1.5, 0.6], r"is not normalised to \[0, 1\]"),
    ([2, 5, 0, 0.5, 0.2, 0.1, 0.6], "needs xmin < xmax"),
    ([1, 5, 0, 0.1, 0.2, 0.5, 0.6], "header width 1 and label width 5 are not valid"),
])
def test_bad_detection_labels_name_the_line_and_object(tmp_path, labels, message):
    with pytest.raises(DataError, match=r"train\.lst line 4: .*" + message):
        ri.detection_label(labels, f"{tmp_path}/train.lst line 4")


def test_a_bad_lst_line_is_named(tmp_path):
    (tmp_path / "t.lst").write_text("0\t1\ta.jpg\n1 2 b.jpg\n")
    with pytest.raises(DataError, match=r"t\.lst line 2: expected `index<TAB>label"):
        ri.read_lst(tmp_path / "t.lst")


def test_an_image_holding_the_magic_is_split_and_put_back_together():
    data = b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES + b"xy"
    framed = frame_parts(ri.pack(ri.IRHeader(0, 1.0, 0, 0), data))
    # three parts (cflag 1, 2, 3): the magic appears only as record headers, never at an aligned offset inside
    words = [framed[i:i + 4] for i in range(0, len(framed), 4)]
    assert words.count(MAGIC_BYTES) == 3
    (payload,) = list(iter_payloads(io.BytesIO(framed)))
    assert ri.unpack(payload)[1] == data


def test_a_truncated_rec_names_the_record(image_list):
    ri.write_rec(image_list / "train.lst", image_list, image_list / "train.rec")
    data = (image_list / "train.rec").read_bytes()
    (image_list / "cut.rec").write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"cut\.rec: truncated RecordIO file: record 2"):
        read_table([image_list / "cut.rec"], "application/x-recordio", decode=False)
