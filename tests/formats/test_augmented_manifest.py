"""Augmented manifests: AttributeNames pick what each line delivers; Pipe mode's RecordIO stream is
written and read back grouped per line; `-ref` attributes deliver the object's bytes."""
from __future__ import annotations

import io
import json

import pytest

from nbsage.errors import DataError
from nbsage.formats import augmented_manifest as am
from nbsage.formats import format_for, read_table
from nbsage.formats.recordio_protobuf import iter_payloads


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "images").mkdir()
    lines = []
    for i in range(4):
        (tmp_path / "images" / f"{i}.jpg").write_bytes(b"\xff\xd8 image %d " % i + bytes(range(i)))
        lines.append({"source-ref": f"images/{i}.jpg", "is-a-cat": i % 2, "extra": "ignored",
                      "bounding-box": {"annotations": [{"class_id": 0, "left": i, "top": 0, "width": 5, "height": 5}]}})
    path = tmp_path / "train.manifest"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_pipe_stream_is_one_recordio_record_per_attribute_in_order(manifest):
    out = io.BytesIO()
    assert am.write_stream([manifest], ["source-ref", "is-a-cat"], out) == 4
    payloads = list(iter_payloads(io.BytesIO(out.getvalue())))
    assert payloads[:4] == [b"\xff\xd8 image 0 ", b"0", b"\xff\xd8 image 1 \x00", b"1"]
    out.seek(0)
    examples = list(am.iter_stream(out, ["source-ref", "is-a-cat"]))
    assert [e["is-a-cat"] for e in examples] == [0, 1, 0, 1]


def test_the_registry_reads_manifests_and_streams_as_examples(manifest, tmp_path):
    stream = tmp_path / "train_0.rec"
    with open(stream, "wb") as f:
        am.write_stream([manifest], ["source-ref", "bounding-box"], f)
    for files in ([manifest], [stream]):
        table = read_table(files, "application/x-recordio", s3_data_type="AugmentedManifestFile",
                           attribute_names=["source-ref", "bounding-box"])
        assert table.features[2] == b"\xff\xd8 image 2 \x00\x01"
        assert table.labels[3]["bounding-box"]["annotations"][0]["left"] == 3


def test_spooled_records_one_file_each_are_grouped_per_line(manifest, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    out = io.BytesIO()
    am.write_stream([manifest], ["source-ref", "bounding-box"], out)
    for i, payload in enumerate(iter_payloads(io.BytesIO(out.getvalue()))):
        (spool / f"part-{i:05d}").write_bytes(payload)
    fmt = format_for("application/x-recordio", "AugmentedManifestFile")
    batches = list(fmt.iter_batches(sorted(spool.iterdir()), 3, attribute_names=["source-ref", "bounding-box"]))
    assert [b.num_rows for b in batches] == [3, 1]


def test_a_line_missing_an_attribute_names_the_line_and_attribute_names(tmp_path):
    path = tmp_path / "m.manifest"
    path.write_text('{"source-ref": "a.jpg", "class": 1}\n{"source-ref": "b.jpg"}\n')
    with pytest.raises(DataError, match=r"m\.manifest line 2: record has no attribute 'class'.*AttributeNames are"):
        list(am.iter_manifest([path], ["source-ref", "class"]))


def test_a_ref_that_does_not_exist_names_the_line(tmp_path):
    path = tmp_path / "m.manifest"
    path.write_text('{"source-ref": "missing.jpg", "class": 1}\n')
    with pytest.raises(DataError, match=r"m\.manifest line 1: .*missing\.jpg does not exist"):
        am.write_stream([path], ["source-ref", "class"], io.BytesIO())


def test_a_truncated_stream_says_how_many_attributes_arrived(manifest):
    out = io.BytesIO()
    am.write_stream([manifest], ["source-ref", "is-a-cat"], out)
    cut = io.BytesIO(out.getvalue()[: out.getvalue().rfind(b"\n\x23\xd7\xce")])  # drop the last record
    with pytest.raises(DataError, match=r"ends inside a manifest line: 1 of the 2 attributes"):
        list(am.iter_stream(cut, ["source-ref", "is-a-cat"]))


def test_attribute_names_are_checked():
    with pytest.raises(DataError, match="at most 16"):
        am.check_attribute_names([f"a{i}" for i in range(17)])
    with pytest.raises(DataError, match="needs AttributeNames"):
        am.check_attribute_names("source-ref")


def test_manifests_are_written_as_json_lines(tmp_path):
    fmt = format_for("application/jsonlines", "AugmentedManifestFile")
    fmt.write(["s3://b/1.jpg"], tmp_path / "o.manifest", labels=[{"class": 2}], attribute_names=["source-ref"])
    assert json.loads((tmp_path / "o.manifest").read_text()) == {"source-ref": "s3://b/1.jpg", "class": 2}
