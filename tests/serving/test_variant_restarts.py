"""A variant's model servers that crash: restarted with a growing backoff and a log line each time, shown in
describe_endpoint; a create or update whose instance never passes its health check fails (create) or rolls
back (update) with SageMaker's reason. Updates while the endpoint is Creating or Updating are refused."""
from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path

import pytest

from nbsage.errors import EndpointError, ValidationError
from nbsage.predictor import Predictor
from nbsage.serving import endpoints, variants
from support import make_tarball, release, wait_for

# exits on start while CRASH_MARKER exists; with HOLD_PIPE.armed, waits for HOLD_PIPE (saying so in
# HOLD_PIPE.held) before loading, so a create or an update can be seen under way
SCRIPT = """
import os
import sys
import numpy as np

def model_fn(model_dir):
    if os.path.exists(os.environ.get("CRASH_MARKER", "/nonexistent")):
        print("inference.py: cannot open /dev/nvidia0; exiting", file=sys.stderr, flush=True)
        os._exit(3)
    pipe = os.environ.get("HOLD_PIPE")
    if pipe and os.path.exists(pipe + ".armed"):
        open(pipe + ".held", "w").close()
        with open(pipe) as held:
            held.read()
    return np.load(os.path.join(model_dir, "weights.npy"))

def predict_fn(data, model):
    return np.atleast_2d(np.asarray(data, dtype=float)) @ model
"""


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_tarball(tmp_path_factory.mktemp("restart-model"), SCRIPT)


def invoke(session, name: str) -> float:
    return float(endpoints.invoke_endpoint(session, name, b"1,1,1", "text/csv", "text/csv")[0])


def config(sm, name: str, model: str, count: int = 1) -> None:
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "A", "ModelName": model, "InitialInstanceCount": count, "InitialVariantWeight": 1}])


def held(pipe: Path) -> None:
    """Wait until a model server waits on the pipe."""
    wait_for(lambda: Path(f"{pipe}.held").exists(), 120, "a model server to wait for the pipe")
    Path(f"{pipe}.held").unlink()


def release_until(pipe: Path, done) -> None:
    """Open the pipe until `done()`: the server may say it is held a moment before it opens the pipe."""
    wait_for(lambda: release(pipe) or done(), 120, "the held model server to go on")


def test_updates_are_refused_while_the_endpoint_is_creating_or_updating_and_the_change_under_way_goes_on(
        session, archive, tmp_path):
    pipe = tmp_path / "hold"
    os.mkfifo(pipe)
    sm = session.sagemaker_client
    sm.create_model(ModelName="held", PrimaryContainer={"ModelDataUrl": str(archive),
                                                       "Environment": {"HOLD_PIPE": str(pipe)}})
    config(sm, "busy", "held")
    config(sm, "busy-2", "held", count=3)
    Path(f"{pipe}.armed").touch()
    arn = sm.create_endpoint(EndpointName="busy", EndpointConfigName="busy")["EndpointArn"]
    refused = re.escape(f'Cannot update in-progress endpoint "{arn}".')
    held(pipe)  # Creating until the pipe opens
    for update in (lambda: sm.update_endpoint(EndpointName="busy", EndpointConfigName="busy-2"),
                   lambda: sm.update_endpoint_weights_and_capacities(
                       EndpointName="busy", DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 2}]),
                   lambda: session.update_endpoint("busy", "busy-2")):
        with pytest.raises(ValidationError, match=refused):
            update()
    assert session.describe_endpoint("busy")["EndpointStatus"] == "Creating"
    release_until(pipe, lambda: session.describe_endpoint("busy")["EndpointStatus"] == "InService")

    variants.set_desired_instance_count(session, "busy", "A", 2)  # returns at once; held while Updating
    held(pipe)
    for update in (lambda: session.update_endpoint_weights_and_capacities(
                       "busy", [{"VariantName": "A", "DesiredInstanceCount": 3}]),
                   lambda: Predictor("busy", session).update_endpoint(initial_instance_count=3),
                   lambda: sm.update_endpoint(EndpointName="busy", EndpointConfigName="busy-2")):
        with pytest.raises(ValidationError, match=refused):
            update()
    assert session.describe_endpoint("busy")["EndpointStatus"] == "Updating"
    Path(f"{pipe}.armed").unlink()
    release_until(pipe, lambda: session.describe_endpoint("busy")["EndpointStatus"] == "InService")
    desc = session.describe_endpoint("busy")
    # the update under way finished as asked; none of the refused ones left a trace
    assert desc["EndpointConfigName"] == "busy" and not desc.get("FailureReason")
    assert [(v["CurrentInstanceCount"], v["DesiredInstanceCount"], v["CurrentWeight"])
            for v in desc["ProductionVariants"]] == [(2, 2, 1.0)]
    assert sorted(c["EndpointConfigName"] for c in session.list_endpoint_configs()) == ["busy", "busy-2"]
    assert invoke(session, "busy") == 6.0
    session.delete_endpoint("busy")


def restart_lines(session, name: str) -> list[tuple[int, float]]:
    """(crash in a row, seconds to the next start) of each restart line in the endpoint's log."""
    log = (session.endpoints_dir / name / endpoints.LOG_NAME).read_text()
    return [(int(m[0]), float(m[1])) for m in re.findall(
        r"variant 'A' instance \d+ ended \([^)]*\); crash (\d+) in a row, starting another in ([\d.]+) s", log)]


def test_crashing_model_servers_are_restarted_with_backoff_and_a_create_or_update_they_never_pass_fails(
        session, archive, tmp_path, monkeypatch):
    """Three endpoints at once: a create and an update that never pass the health check (one deadline for
    both), and meanwhile a serving instance that dies and whose replacements crash-loop."""
    monkeypatch.setenv("NBSAGE_STARTUP_TIMEOUT_SECONDS", "8")  # each front's health-check deadline
    marker, always = tmp_path / "crash", tmp_path / "always"
    always.touch()
    sm = session.sagemaker_client
    sm.create_model(ModelName="steady", PrimaryContainer={"ModelDataUrl": str(archive),
                                                         "Environment": {"CRASH_MARKER": str(marker)}})
    sm.create_model(ModelName="crashing", PrimaryContainer={"ModelDataUrl": str(archive),
                                                           "Environment": {"CRASH_MARKER": str(always)}})
    for name, model in (("stays", "steady"), ("stays-2", "crashing"), ("never", "crashing"), ("loops", "steady")):
        config(sm, name, model)
    for name in ("stays", "loops"):
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    for name in ("stays", "loops"):
        session.wait_for_endpoint(name)

    creating = []  # what the caller waiting for the create gets: the front's reason

    def create() -> None:
        try:
            session.create_endpoint("never", "never", wait=True)
        except EndpointError as exc:
            creating.append(str(exc))
    creator = threading.Thread(target=create)
    creator.start()
    wait_for(lambda: _exists(session, "never"), 120, "the create to start")
    sm.update_endpoint(EndpointName="stays", EndpointConfigName="stays-2")
    seen = []  # what the failing create's variant says while it waits

    def look() -> None:
        never = session.describe_endpoint("never")
        seen.extend(s["StatusMessage"] for v in never["ProductionVariants"] for s in v["VariantStatus"])

    # a serving instance dies, and its replacements exit on start: restarted after 0.5, 1 ... s, the endpoint
    # InService (it can still be updated) and its variant saying what happens
    marker.touch()
    front = session.store.get_endpoint("loops")["pid"]
    server = next(int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == front)
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: look() or len(restart_lines(session, "loops")) >= 2, 120, "two restarts of the crashed instance")
    desc = session.describe_endpoint("loops")  # while the replacements still crash
    marker.unlink()  # the next restart serves
    message = desc["ProductionVariants"][0]["VariantStatus"][0]["StatusMessage"]
    assert desc["EndpointStatus"] == "InService" and message.startswith("0 of 1 instances serving")
    assert re.search(r"\(exit code 3\), crash \d+ in a row; restarting in [\d.]+ s; its log ends with: .*"
                     r"cannot open /dev/nvidia0", message)
    assert restart_lines(session, "loops")[:2] == [(1, 0.5), (2, 1.0)]
    loops_log = session.endpoints_dir / "loops" / endpoints.LOG_NAME
    log = loops_log.read_text()
    assert "instance 1 ended (killed by SIGKILL); crash 1 in a row, starting another in 0.5 s" in log
    assert re.search(r"instance \d+ ended \(exit code 3\); crash 2 in a row, starting another in 1 s; its log ends "
                     r"with: .*inference.py: cannot open /dev/nvidia0; exiting", log)
    wait_for(lambda: look() or session.describe_endpoint("loops")["ProductionVariants"][0]["VariantStatus"] == [],
             120, "the variant to serve again")
    assert invoke(session, "loops") == 6.0
    assert re.search(r"variant 'A' instance \d+ serves \(after \d+ crashes in a row\)", loops_log.read_text())

    def both_done() -> bool:
        look()
        never = session.describe_endpoint("never")["EndpointStatus"]
        return never == "Failed" and session.describe_endpoint("stays")["EndpointStatus"] == "InService"
    wait_for(both_done, 120, "the create to fail and the update to roll back")
    # the update rolls back: InService on the old config, with SageMaker's reason
    desc = session.describe_endpoint("stays")
    stays_log = session.endpoints_dir / "stays" / endpoints.LOG_NAME
    assert desc["EndpointConfigName"] == "stays" and "rolled back: The primary container for production " \
        f"variant A did not pass the ping health check. Please check the log {stays_log} for this endpoint." \
        in desc["FailureReason"]
    assert invoke(session, "stays") == 6.0
    # the create fails; while it waited, its variant said why
    never_log = session.endpoints_dir / "never" / endpoints.LOG_NAME
    assert session.describe_endpoint("never")["FailureReason"] == (
        "The primary container for production variant A did not pass the ping health check. "
        f"Please check the log {never_log} for this endpoint.")
    assert any(re.search(r"^0 of 1 instances serving this variant's model; instance \d+ ended \(exit code 3\), "
                         r"crash \d+ in a row; restarting in [\d.]+ s; its log ends with: .*cannot open", m)
               for m in seen), seen
    creator.join(120)
    assert len(creating) == 1 and "did not pass the ping health check" in creating[0], creating
    # the model servers' own output is in the endpoint's log, as before, whole lines among the front's
    assert re.search(r"^inference.py: cannot open /dev/nvidia0; exiting$", never_log.read_text(), re.M)
    for name in ("stays", "never"):  # each crash restarted after 0.5, 1, 2 ... s
        lines = restart_lines(session, name)
        assert lines and lines == [(n, min(30.0, 0.5 * 2 ** (n - 1))) for n in range(1, len(lines) + 1)], name
    for name in ("stays", "never", "loops"):
        session.delete_endpoint(name)


def _exists(session, name: str) -> bool:
    try:
        session.describe_endpoint(name)
        return True
    except EndpointError:
        return False


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_variants_startup_health_check_timeout_is_sagemakers_field_within_its_bounds(session, archive):
    from nbsage.session import production_variant
    session.create_model("timed", container_defs={"ModelDataUrl": str(archive)})
    variant = production_variant("timed", "local", 1, "A", container_startup_health_check_timeout=120)
    session.create_endpoint_config_from_variants("timed", [variant])
    assert session.describe_endpoint_config("timed")["ProductionVariants"][0][
        "ContainerStartupHealthCheckTimeoutInSeconds"] == 120
    for seconds, words in ((30, "must be at least 60"), (4000, "must be at most 3600"), ("soon", "must be a whole number")):
        with pytest.raises(ValidationError, match=rf"ProductionVariants\[0\] \('A'\): "
                                                  rf"ContainerStartupHealthCheckTimeoutInSeconds {words}"):
            session.create_endpoint_config_from_variants(
                "bad", [variant | {"ContainerStartupHealthCheckTimeoutInSeconds": seconds}])
