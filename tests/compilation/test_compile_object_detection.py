"""Compilation of Object Detection (SSD): the network exported to ONNX, served by onnxruntime with the
native model's raw outputs and boxes (decoding and NMS stay outside the graph)."""
from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("PIL")

from algorithms.test_object_detection import OD, RECORDIO, SIZE, TINY, job, rec, run  # noqa: E402
from compilation.test_compile import compiled_handler  # noqa: E402
from nbsage.algorithms.object_detection import sample_data as sd  # noqa: E402
from nbsage.compilation import CompilationError  # noqa: E402
from nbsage.compilation.job import TOLERANCE, CompilationJob  # noqa: E402
from nbsage.errors import InvalidRequest  # noqa: E402
from nbsage.formats.image import encode_image  # noqa: E402
from nbsage.model import Model  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model directory, model.tar.gz) of an SSD trained one epoch on six generated images."""
    tmp = tmp_path_factory.mktemp("od-compile")
    root = job(tmp / "job", TINY, {"train": (RECORDIO, rec(sd.make_dataset(6, SIZE, 2, seed=4)))})
    run(root)
    archive = tmp / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in root.model_dir.iterdir():
            tar.add(f, arcname=f.name)
    return root.model_dir, archive


def test_object_detection_compiles_its_network_and_answers_the_native_boxes(session, trained, tmp_path):
    model_dir, archive = trained
    model = Model(str(archive), algorithm="object-detection", sagemaker_session=session).compile(
        "ml_c5", output_path=str(tmp_path), framework="pytorch", job_name="od-c5")
    parity = CompilationJob("od-c5", session).describe()["nbsage:Parity"]
    assert parity["MaxAbsDiff"] <= parity["Tolerance"]
    compiled, native = compiled_handler(model), OD.load(str(model_dir))

    import torch
    batch = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 3, SIZE, SIZE)).astype(np.float32))
    with torch.no_grad():
        ours, theirs = compiled.detector.network(batch), native.detector.network(batch)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= TOLERANCE["object-detection"] * max(1.0, float(b.abs().max()))

    for image, _ in sd.make_dataset(4, SIZE, 2, seed=9):
        for fmt, content_type in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
            body = encode_image(image, fmt)
            got = np.asarray(json.loads(compiled.invoke(body, content_type, "application/json")[0])["prediction"])
            want = np.asarray(json.loads(native.invoke(body, content_type, "application/json")[0])["prediction"])
            assert got.shape == want.shape and want.shape[1:] == (6,)
            np.testing.assert_array_equal(got[:, 0], want[:, 0])  # the same classes, in the same order
            np.testing.assert_allclose(got[:, 1:], want[:, 1:], atol=1e-4)  # the same scores and boxes
    with pytest.raises(InvalidRequest, match="not a readable JPEG or PNG"):
        compiled.invoke(b"not a photo", "image/jpeg", None)


def test_an_input_shape_other_than_the_models_is_named(session, trained, tmp_path):
    _, archive = trained
    model = Model(str(archive), algorithm="object-detection", sagemaker_session=session)
    with pytest.raises(CompilationError, match=rf"give \{{'data': \[1, 3, {SIZE}, {SIZE}\]\}}"):
        model.compile("ml_c5", output_path=str(tmp_path), input_shape={"data": [1, 3, 300, 300]})
