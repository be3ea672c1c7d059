"""GPU endpoints: a GPU instance type is served on CUDA where there is a GPU, and refused at deploy,
naming the instance type and the CPU alternative, where there is none."""
from __future__ import annotations

import numpy as np
import pytest

from nbsage.errors import EndpointError
from nbsage.runtime.environment import count_gpus

HAS_GPU = count_gpus() > 0


@pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU: the deploy is not refused")
@pytest.mark.parametrize("instance_type, accelerator_type", [("ml.g5.xlarge", None), ("local_gpu", None),
                                                             ("ml.m5.xlarge", "ml.eia2.medium")])
def test_a_gpu_endpoint_without_a_gpu_is_refused_at_deploy(session, pipeline_parts, instance_type,
                                                           accelerator_type):
    from nbsage.model import Model
    _, _, folder, _ = pipeline_parts
    model = Model(str(folder / "xgboost.tar.gz"), algorithm="xgboost", sagemaker_session=session)
    with pytest.raises(EndpointError) as caught:
        model.deploy(instance_type=instance_type, accelerator_type=accelerator_type, endpoint_name="on-gpu")
    message = str(caught.value)
    assert repr(instance_type) in message and "instance_type='local'" in message
    assert "has none" in message
    assert session.store.list_endpoints() == []  # nothing recorded, nothing started


@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU")
def test_xgboost_on_a_gpu_endpoint_answers_as_on_cpu(session, pipeline_parts):
    from nbsage.model import Model
    from nbsage.serializers import CSVSerializer
    _, booster, folder, _ = pipeline_parts
    rows = np.random.default_rng(3).random((20, 6)).astype(np.float32)
    body = "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in rows)
    model = Model(str(folder / "xgboost.tar.gz"), algorithm="xgboost", sagemaker_session=session)
    predictor = model.deploy(instance_type="local_gpu", serializer=CSVSerializer())
    try:
        served = np.array([float(r[0]) for r in predictor.predict(body)])
        parsed = np.array([[float(v) for v in line.split(",")] for line in body.splitlines()], dtype=np.float32)
        np.testing.assert_allclose(served, booster.inplace_predict(parsed), atol=1e-6)
        assert predictor.describe()["ProductionVariants"][0]["InstanceType"] == "local_gpu"
    finally:
        predictor.delete_endpoint()


def test_blazingtext_classifier_on_a_device_answers_as_the_numpy_one(tmp_path):
    """The GPU endpoint's classifier (torch embedding_bag), on CUDA where there is one, else on the CPU."""
    from compilation import models

    from nbsage.algorithms.blazingtext.cuda_inference import on_device
    from nbsage.algorithms.blazingtext.model import load_model
    models.blazingtext_model(tmp_path)
    native = load_model(tmp_path / "bt")
    moved = on_device(native, "cuda" if HAS_GPU else "cpu")
    texts = ["good movie", "", "unknown words only", "the plot was awful awful bad"]
    ptr, rows = native.rows([t.split() for t in texts])
    np.testing.assert_allclose(moved.probabilities(ptr, rows), native.probabilities(ptr, rows), atol=1e-6)
    assert [labels for labels, _ in moved.predict(texts, 2)] == [labels for labels, _ in native.predict(texts, 2)]


@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU")
def test_deepar_on_cuda_forecasts_as_on_cpu(tmp_path, monkeypatch):
    from compilation import models

    from nbsage import algorithms
    archive, records = models.deepar_model(tmp_path)
    model_dir = str(tmp_path / "root" / "model")
    cpu = algorithms.get("deepar").load(model_dir)
    monkeypatch.setenv("NBSAGE_INFERENCE_DEVICE", "cuda")
    gpu = algorithms.get("deepar").load(model_dir)
    assert gpu.predictor.device.type == "cuda"
    series = [cpu.parse_instance(r, f"record {i}") for i, r in enumerate(records[:2])]
    ours, theirs = gpu.predictor.forecast(series, 200, seed=1), cpu.predictor.forecast(series, 200, seed=1)
    # different random streams on the two devices: the forecasts agree in distribution
    np.testing.assert_allclose(ours.mean(axis=1), theirs.mean(axis=1), rtol=0.2,
                               atol=0.2 * float(np.abs(theirs).mean()))
