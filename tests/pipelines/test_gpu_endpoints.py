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
