"""Object Detection on an augmented manifest in Pipe mode, as a real training job: the local place
streams each line's image and Ground Truth label through the channel's FIFO, and SSD trains on them."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")

from algorithms.test_object_detection import SIZE, TINY  # noqa: E402
from nbsage.algorithms.object_detection import sample_data as sd  # noqa: E402
from nbsage.estimator import Estimator  # noqa: E402
from nbsage.inputs import TrainingInput  # noqa: E402
from nbsage.session import Session  # noqa: E402


def ground_truth_manifest(dataset, folder):
    """A Ground Truth bounding-box job's output manifest: source-ref and pixel boxes, one line per image."""
    paths = sd.write_images(dataset, folder / "images")
    lines = []
    for (_, objects), path in zip(dataset, paths):
        annotations = [{"class_id": int(c), "left": x0 * SIZE, "top": y0 * SIZE, "width": (x1 - x0) * SIZE,
                        "height": (y1 - y0) * SIZE} for c, x0, y0, x1, y1 in objects.tolist()]
        lines.append({"source-ref": str(path),
                      "bounding-box": {"image_size": [{"width": SIZE, "height": SIZE, "depth": 3}],
                                       "annotations": annotations},
                      "bounding-box-metadata": {"class-map": {"0": "rectangle", "1": "ellipse"}}})
    manifest = folder / "manifest" / "train.manifest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def test_an_augmented_manifest_trains_in_pipe_mode_through_the_local_place(tmp_path):
    dataset = sd.make_dataset(6, SIZE, 2, seed=6)
    manifest = ground_truth_manifest(dataset, tmp_path)
    objects = sum(len(o) for _, o in dataset)
    estimator = Estimator("object-detection", hyperparameters=TINY, input_mode="Pipe")
    job = estimator.fit({"train": TrainingInput(str(manifest), content_type="application/x-recordio",
                                                s3_data_type="AugmentedManifestFile",
                                                attribute_names=["source-ref", "bounding-box"],
                                                record_wrapping="RecordIO")}, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    lines = job.logs()
    request = job.describe()
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    channel = request["InputDataConfig"][0]
    assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "AugmentedManifestFile"
    assert channel["RecordWrapperType"] == "RecordIO"
    data_dir = Session.default().jobs_dir / job.name / "opt_ml" / "input" / "data"
    assert not list(data_dir.glob("train*"))  # streamed through FIFOs, nothing staged (and the feeder cleaned up)
    assert any(f"6 training images ({objects} objects)" in line for line in lines), lines
    assert any("train cross_entropy" in line for line in lines)
