"""Endpoints of production variants behind one address: routing by weight and TargetVariant, weight,
capacity and model changes under traffic with no failed request, bad endpoint configs."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from nbsage.errors import EndpointError, ValidationError
from nbsage.model import Model
from nbsage.predictor import Predictor
from nbsage.serving import endpoints, variants
from nbsage.session import production_variant
from nbsage.store.metadata import pid_alive
from support import make_tarball, release, wait_for


# predictions are rows @ weights; a server started while HOLD_PIPE.armed exists loads its model only once
# the test opens HOLD_PIPE (a FIFO), so a scaling change can be seen under way
LINEAR = """
import os
import numpy as np

def model_fn(model_dir):
    pipe = os.environ.get("HOLD_PIPE")
    if pipe and os.path.exists(pipe + ".armed"):
        with open(pipe) as held:
            held.read()
    return np.load(os.path.join(model_dir, "weights.npy"))

def predict_fn(data, model):
    return np.atleast_2d(np.asarray(data, dtype=float)) @ model
"""


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    """Two linear models as training jobs write them, made once."""
    root = tmp_path_factory.mktemp("variant-models")
    out = {}
    for name, weights in (("one", (1.0, 2.0, 3.0)), ("two", (1.0, 2.0, 3.5))):
        (root / name).mkdir()
        out[name] = make_tarball(root / name, LINEAR, weights=weights)
    return out


def models(session, archives, *names, environment: dict | None = None) -> None:
    for name in names:
        session.create_model(f"model-{name}", container_defs={"ModelDataUrl": str(archives[name]),
                                                              "Environment": environment or {}})


def invoke(session, name: str, body: bytes = b"1,1,1", **kwargs) -> tuple[float, str]:
    data, _, headers = endpoints.invoke_endpoint(session, name, body, "text/csv", "text/csv", **kwargs)
    return float(data), headers["X-Amzn-Invoked-Production-Variant"]


class Traffic:
    """Threads invoking an endpoint until stopped, keeping every answer and every error."""

    def __init__(self, session, name: str, threads: int = 3):
        self.session, self.name = session, name
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                answer = invoke(self.session, self.name)
            except Exception as exc:  # noqa: BLE001 - every failure is what the test counts
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with self.lock:
                self.answers.append(answer)

    def count(self) -> int:
        with self.lock:
            return len(self.answers) + len(self.errors)

    def more(self, n: int) -> None:
        """Wait until n more requests have been answered."""
        target = self.count() + n
        wait_for(lambda: self.count() >= target, 120, f"{n} more requests")

    def stop(self) -> list[str]:
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        return self.errors


def process_group(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_requests_split_by_weight_honour_target_variant_and_follow_weight_changes_under_traffic(session, archives,
                                                                                              monkeypatch, tmp_path):
    for name, value in (("INTERVAL", "0.2"), ("TIMEOUT", "0.5"), ("FAILURES", "2")):  # the front's checks
        monkeypatch.setenv(f"NBSAGE_HEALTH_CHECK_{name}{'_SECONDS' if name != 'FAILURES' else ''}", value)
    pipe = tmp_path / "hold"
    os.mkfifo(pipe)
    models(session, archives, "one", "two", environment={"HOLD_PIPE": str(pipe)})
    session.endpoint_from_production_variants("split", [production_variant("model-one", "local", 1, "A", 7),
                                                        production_variant("model-two", "local", 1, "B", 3)])
    desc = session.describe_endpoint("split")
    assert desc["EndpointStatus"] == "InService" and desc["EndpointConfigName"] == "split"
    assert [(v["VariantName"], v["CurrentWeight"], v["DesiredWeight"], v["CurrentInstanceCount"],
             v["DesiredInstanceCount"], v["VariantStatus"]) for v in desc["ProductionVariants"]] == \
        [("A", 7.0, 7.0, 1, 1, []), ("B", 3.0, 3.0, 1, 1, [])]

    n = 2000
    seen = Counter()
    for _ in range(n):
        value, variant = invoke(session, "split")
        assert value == {"A": 6.0, "B": 6.5}[variant]
        seen[variant] += 1
    sigma = math.sqrt(n * 0.7 * 0.3)
    assert abs(seen["A"] - 0.7 * n) <= 4.5 * sigma, seen

    assert invoke(session, "split", target_variant="B") == (6.5, "B")
    assert Predictor("split", session).predict(b"1,1,1", initial_args={"ContentType": "text/csv", "Accept": "text/csv"},
                                               target_variant="A") == b"6.0\n"
    with pytest.raises(ValidationError, match="The variant 'C' is not present .* 'A', 'B'"):
        invoke(session, "split", target_variant="C")

    traffic = Traffic(session, "split")
    try:
        traffic.more(50)
        for weights in ((0, 1), (1, 0), (1, 1)):
            session.update_endpoint_weights_and_capacities(
                "split", [{"VariantName": "A", "DesiredWeight": weights[0]},
                          {"VariantName": "B", "DesiredWeight": weights[1]}])
            if weights != (1, 1):
                start = traffic.count()
                traffic.more(100)
                with traffic.lock:
                    after = {variant for _, variant in traffic.answers[start + 10:]}
                assert after == {"B" if weights == (0, 1) else "A"}
        Path(f"{pipe}.armed").touch()  # the next model server waits for the pipe before loading
        try:
            variants.set_desired_instance_count(session, "split", "B", 2)
            desc = session.describe_endpoint("split")
            b = desc["ProductionVariants"][1]
            assert desc["EndpointStatus"] == "Updating"
            assert (b["CurrentInstanceCount"], b["DesiredInstanceCount"]) == (1, 2)
            assert b["VariantStatus"][0]["Status"] == "Updating"
            traffic.more(30)  # served while the endpoint is Updating
        finally:
            Path(f"{pipe}.armed").unlink()
            release(pipe)
        session.wait_for_endpoint("split")
        traffic.more(100)
    finally:
        errors = traffic.stop()
    assert errors == []
    desc = session.describe_endpoint("split")
    assert [(v["CurrentWeight"], v["CurrentInstanceCount"]) for v in desc["ProductionVariants"]] == [(1.0, 1), (1.0, 2)]
    # the front rewrites metrics.json every 0.5 s: the change may show there a moment after describe has it
    metrics = wait_for(lambda: (m := variants.variant_metrics(session, "split"))["B"]["CurrentInstanceCount"] == 2
                       and m, what="the metrics to count B's second instance")
    assert metrics["A"]["Invocation5XXErrors"] == 0

    with pytest.raises(ValidationError, match="DesiredWeight of the production variants must add up to more than 0"):
        session.update_endpoint_weights_and_capacities("split", [{"VariantName": "A", "DesiredWeight": 0},
                                                                 {"VariantName": "B", "DesiredWeight": 0}])
    with pytest.raises(ValidationError, match="VariantName 'X' is not a production variant"):
        session.update_endpoint_weights_and_capacities("split", [{"VariantName": "X", "DesiredWeight": 1}])

    record = session.store.get_endpoint("split")
    group = process_group(record["pid"])
    assert len(group) == 4  # the front and its 3 model servers
    # an instance that stops answering fails its health checks and is replaced; its requests go to another
    traffic = Traffic(session, "split")
    try:
        traffic.more(20)
        victim = next(p for p in group if "/instances/variant-B-" in Path(f"/proc/{p}/cmdline").read_text())
        os.kill(victim, signal.SIGSTOP)
        wait_for(lambda: victim not in process_group(record["pid"]) and len(process_group(record["pid"])) == 4,
                 120, "the killed model server to be replaced")
        traffic.more(50)
    finally:
        errors = traffic.stop()
    assert errors == []
    group = process_group(record["pid"])
    endpoints.delete_endpoint(session, "split")
    assert not any(pid_alive(p) for p in group)
    assert not (session.endpoints_dir / "split").exists()


def test_update_endpoint_to_a_new_model_under_traffic_fails_no_request(session, archives):
    models(session, archives, "two")
    Model(str(archives["one"]), sagemaker_session=session).deploy(initial_instance_count=2, endpoint_name="swap")
    assert session.describe_endpoint("swap")["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    old_group = set(process_group(session.store.get_endpoint("swap")["pid"]))
    assert len(old_group) == 3  # the front and 2 model servers behind the endpoint's one address
    traffic = Traffic(session, "swap")
    try:
        traffic.more(30)
        Predictor("swap", session).update_endpoint(model_name="model-two", initial_instance_count=1)
        traffic.more(60)
    finally:
        errors = traffic.stop()
    assert errors == []
    values = [v for v, _ in traffic.answers]
    switched = values.index(6.5)
    assert set(values[:switched]) == {6.0} and set(values[switched + 10:]) == {6.5}
    desc = session.describe_endpoint("swap")
    assert desc["EndpointConfigName"] != "swap" and desc["ProductionVariants"][0]["ModelName"] == "model-two"
    new_group = set(process_group(session.store.get_endpoint("swap")["pid"]))
    assert len(new_group) == 2 and len(old_group & new_group) == 1  # the front stayed; the old server is gone


def test_a_plain_endpoint_updated_under_traffic_moves_behind_a_front_without_a_failed_request(session, archives,
                                                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("NBSAGE_DRAIN_SECONDS", "0.3")  # clients look at the endpoint's address every 50 ms
    predictor = Model(str(archives["one"]), sagemaker_session=session).deploy(endpoint_name="plain")
    models(session, archives, "two")
    old_pid = session.store.get_endpoint("plain")["pid"]
    broken = make_tarball(tmp_path, "def model_fn(model_dir):\n    raise RuntimeError('weights.bin is missing')\n")
    session.create_model("broken", container_defs={"ModelDataUrl": str(broken)})
    with pytest.raises(EndpointError, match="weights.bin is missing"):
        predictor.update_endpoint(model_name="broken")
    assert session.describe_endpoint("plain")["EndpointStatus"] == "InService" and pid_alive(old_pid)
    assert invoke(session, "plain") == (6.0, "AllTraffic")
    traffic = Traffic(session, "plain")
    try:
        traffic.more(30)
        predictor.update_endpoint(model_name="model-two", initial_instance_count=1)
        traffic.more(60)
    finally:
        errors = traffic.stop()
    assert errors == []
    assert traffic.answers[-1][0] == 6.5 and not pid_alive(old_pid)
    assert session.describe_endpoint("plain")["ProductionVariants"][0]["ModelName"] == "model-two"


def test_boto3_calls_build_an_endpoint_and_a_model_that_fails_to_load_rolls_the_update_back(session, archives,
                                                                                             tmp_path):
    sm, runtime = session.sagemaker_client, session.sagemaker_runtime_client
    sm.create_model(ModelName="model-one", PrimaryContainer={"ModelDataUrl": str(archives["one"])})
    sm.create_endpoint_config(EndpointConfigName="rollback", ProductionVariants=[
        {"VariantName": "A", "ModelName": "model-one", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
         "InitialVariantWeight": 1}])
    assert sm.create_endpoint(EndpointName="rollback", EndpointConfigName="rollback")["EndpointArn"]
    assert session.wait_for_endpoint("rollback")["EndpointStatus"] == "InService"
    answer = runtime.invoke_endpoint(EndpointName="rollback", Body=b"1,1,1", ContentType="text/csv",
                                     Accept="text/csv", TargetVariant="A")
    assert answer["InvokedProductionVariant"] == "A" and answer["Body"].read() == b"6.0\n"
    assert sm.list_endpoint_configs()["EndpointConfigs"][0]["EndpointConfigName"] == "rollback"

    broken = make_tarball(tmp_path, "def model_fn(model_dir):\n    raise RuntimeError('weights.bin is missing')\n")
    session.create_model("broken", container_defs={"ModelDataUrl": str(broken)})
    session.create_endpoint_config("rollback-2", "broken", 1, "local")
    with pytest.raises(EndpointError, match="weights.bin is missing"):
        session.update_endpoint("rollback", "rollback-2")
    desc = session.describe_endpoint("rollback")
    assert desc["EndpointStatus"] == "InService" and desc["EndpointConfigName"] == "rollback"
    assert "rolled back" in desc["FailureReason"]
    assert invoke(session, "rollback") == (6.0, "A")


def test_bad_endpoint_configs_name_the_field(session, archives):
    models(session, archives, "one", "two")
    with pytest.raises(ValidationError, match="InitialVariantWeight of the production variants must add up to more "
                                              "than 0, got A=0, B=0"):
        session.create_endpoint_config_from_variants("zero", [production_variant("model-one", "local", 1, "A", 0),
                                                              production_variant("model-two", "local", 1, "B", 0)])
    with pytest.raises(ValidationError, match=r"ProductionVariants\[0\] \('A'\): InitialVariantWeight must be 0 or more"):
        session.create_endpoint_config_from_variants("neg", [production_variant("model-one", "local", 1, "A", -1)])
    with pytest.raises(ValidationError, match="ModelName 'model-on' is not a model; did you mean 'model-one'"):
        session.create_endpoint_config_from_variants("typo", [production_variant("model-on", "local", 1, "A")])
    with pytest.raises(ValidationError, match="VariantName 'A' is used more than once"):
        session.create_endpoint_config_from_variants("twice", [production_variant("model-one", "local", 1, "A"),
                                                               production_variant("model-two", "local", 1, "A")])
    with pytest.raises(ValidationError, match="InitialInstanceCount must be at least 1"):
        session.create_endpoint_config_from_variants("none", [production_variant("model-one", "local", 1, "A")
                                                              | {"InitialInstanceCount": 0}])
    with pytest.raises(ValidationError, match="exactly 1 ProductionVariant"):
        session.create_endpoint_config_from_variants(
            "shadow2", [production_variant("model-one", "local", 1, "A"), production_variant("model-one", "local", 1, "B")],
            shadow_production_variants=[production_variant("model-two", "local", 1, "S")])
    assert session.list_endpoint_configs() == []
    session.create_endpoint_config("good", "model-one", 1, "local")
    with pytest.raises(ValidationError, match="already exists"):
        session.create_endpoint_config("good", "model-two", 1, "local")
    config = session.describe_endpoint_config("good")
    assert config["ProductionVariants"][0]["ModelName"] == "model-one" and config["EndpointConfigArn"].endswith("good")
    with pytest.raises(ValidationError, match="no endpoint config named 'goof'; did you mean 'good'"):
        session.create_endpoint("e", "goof")
    session.delete_endpoint_config("good")
    assert session.list_endpoint_configs() == []
    assert not os.path.exists(session.endpoints_dir / "e")
