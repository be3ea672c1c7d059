"""Automatic scaling end to end: an endpoint's instance count follows a bounded load generated on loopback
up and back down, with no failed request across either change."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from nbsage.boto_clients import client
from nbsage.predictor import Predictor
from nbsage.serving import endpoints
from support import make_tarball, wait_for

CONCURRENCY = "SageMakerVariantConcurrentRequestsPerModelHighResolution"
SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": "2"}

# a CPU-bound tiny model: a few milliseconds of arithmetic per request
BUSY = """
import os
import numpy as np

def model_fn(model_dir):
    return np.load(os.path.join(model_dir, "weights.npy"))

def predict_fn(data, model):
    x = np.atleast_2d(np.asarray(data, dtype=float))
    total = 0.0
    for i in range(3000):
        total += i * 1e-12
    return x @ model + total
"""


class Load:
    """`threads` clients, each on its own kept-alive connection, sending one CSV row per request until
    stopped or `limit` requests each (bounded either way); every failure is kept."""

    def __init__(self, session, endpoint: str, threads: int, limit: int = 20000):
        self.session, self.endpoint, self.limit = session, endpoint, limit
        self.stopping = threading.Event()
        self.sent, self.failures = [0] * threads, []
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(threads)]

    def _client(self, i: int) -> None:
        for _ in range(self.limit):
            if self.stopping.is_set():
                return
            try:
                body, _, _ = endpoints.invoke_endpoint(self.session, self.endpoint, b"1,2,3", "text/csv", "text/csv")
                assert float(body) == pytest.approx(14.0, abs=1e-3)
            except Exception as e:  # noqa: BLE001 - counted: the test asserts there are none
                self.failures.append(f"{type(e).__name__}: {e}")
            self.sent[i] += 1

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(120)


def test_instances_follow_the_load_up_and_back_down_with_no_failed_request(session, tmp_path):
    endpoints.deploy(session, "elastic", str(make_tarball(tmp_path, BUSY)))
    predictor = Predictor("elastic", sagemaker_session=session)
    predictor.enable_autoscaling(1, 3, target_value=1.0, metric=CONCURRENCY, scale_out_cooldown=0,
                                 scale_in_cooldown=1, evaluation_period=1)

    def done(direction: str, to=None):
        return [a for a in predictor.scaling_activities() if a["Direction"] == direction
                and a["StatusCode"] == "Successful" and (to is None or a["ToInstanceCount"] == to)]

    with Load(session, "elastic", threads=4) as heavy:
        (up,) = wait_for(lambda: done("out"), timeout=240, what="a scale-out under load")[-1:]
        heavy_before = sum(heavy.sent)
        wait_for(lambda: sum(heavy.sent) > heavy_before + 20, timeout=120, what="requests served after the scale-out")
    assert up["FromInstanceCount"] == 1 and up["ToInstanceCount"] >= 2 and CONCURRENCY in up["Cause"]
    variant = predictor.describe()["ProductionVariants"][0]
    assert variant["DesiredInstanceCount"] >= 2

    with Load(session, "elastic", threads=1) as light:  # traffic goes on while the instances drain
        (down,) = wait_for(lambda: done("in", to=1), timeout=240, what="a scale-in back to 1 after the load")[:1]
        light_before = sum(light.sent)
        wait_for(lambda: sum(light.sent) > light_before + 20, timeout=120, what="requests served after the scale-in")
    assert heavy.failures == [] and light.failures == []
    assert sum(heavy.sent) > 0 and sum(light.sent) > 0
    desc = predictor.describe()
    assert desc["ProductionVariants"][0]["DesiredInstanceCount"] == 1
    shown = desc["AutoScaling"]["ScalingActivities"]
    assert [a["ActivityId"] for a in shown[:1]] == [down["ActivityId"]]
    assert desc["AutoScaling"]["ScalableTargets"][0]["MinCapacity"] == 1


# registered by another process that then ends, as a notebook kernel that is shut down: scaling goes on
REGISTER = """
from nbsage.boto_clients import client
aas = client("application-autoscaling")
rid = "endpoint/calls/variant/AllTraffic"
aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=rid,
                             ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1,
                             MaxCapacity=2, EvaluationPeriod=1)
# 600 invocations per instance per minute is 10 a second: one busy client is far above it
aas.put_scaling_policy(PolicyName="calls-per-instance", ServiceNamespace="sagemaker", ResourceId=rid,
                       ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                       PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
                           "TargetValue": 600.0, "ScaleOutCooldown": 0, "ScaleInCooldown": 1,
                           "PredefinedMetricSpecification": {
                               "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
"""


def test_invocations_per_instance_scales_out_under_traffic_and_in_to_min_capacity_when_it_stops(session, tmp_path):
    """The policy is put by a process that has ended: the endpoint's front scales it on."""
    endpoints.deploy(session, "calls", str(make_tarball(tmp_path, BUSY)))
    done = subprocess.run([sys.executable, "-c", REGISTER], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NBSAGE_HOME": str(session.home)})
    assert done.returncode == 0, done.stderr[-2000:]
    aas = client("application-autoscaling", sagemaker_session=session)
    rid = "endpoint/calls/variant/AllTraffic"

    def activities(to: int):
        acts = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=rid)["ScalingActivities"]
        return [a for a in acts if a["ToInstanceCount"] == to and a["StatusCode"] == "Successful"]

    with Load(session, "calls", threads=1) as load:
        (up,) = wait_for(lambda: activities(2), timeout=240, what="a scale-out to MaxCapacity")
    assert load.failures == [] and "SageMakerVariantInvocationsPerInstance" in up["Cause"]
    assert "scale out to 2 (MaxCapacity)" in up["Cause"]
    (down,) = wait_for(lambda: activities(1), timeout=240, what="a scale-in once the traffic stopped")
    assert "was 0 per instance" in down["Cause"] and "(MinCapacity)" in down["Cause"]
