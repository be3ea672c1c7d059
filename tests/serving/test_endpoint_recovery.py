"""An endpoint's supervisor replaces a model server that dies or stops answering /ping (real processes)."""
from __future__ import annotations

import os
import signal
import time

import pytest

from nbsage.errors import EndpointError
from nbsage.serving import endpoints
from nbsage.store.metadata import pid_alive
from support import make_tarball

FAST_CHECKS = {"NBSAGE_HEALTH_CHECK_INTERVAL_SECONDS": "0.2", "NBSAGE_HEALTH_CHECK_TIMEOUT_SECONDS": "1",
               "NBSAGE_HEALTH_CHECK_FAILURES": "2"}

CRASHES_ON_LOAD = """
import os, signal

def model_fn(model_dir):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def server_pid(session, name: str) -> int | None:
    try:
        return int((endpoints.endpoint_dir(session, name) / "server.pid").read_text())
    except (OSError, ValueError):
        return None


def wait_for(predicate, what: str, timeout: float = 90.0):
    """Poll `predicate` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"gave up after {timeout:g} s waiting for {what}")


def statuses_until_back_in_service(session, name: str, old_pid: int) -> list[str]:
    seen = []

    def back():
        record = session.store.get_endpoint(name)
        if not seen or seen[-1] != record["status"]:
            seen.append(record["status"])
        if record["status"] == "Failed":
            pytest.fail(f"the endpoint failed instead of recovering: {record['failure_reason']}")
        pid = server_pid(session, name)
        return record["status"] == "InService" and pid not in (None, old_pid)

    wait_for(back, f"endpoint {name!r} to be InService with a new server")
    return seen


def test_a_sigkilled_server_is_replaced_and_answers_again(session, tmp_path):
    endpoints.deploy(session, "phoenix", str(make_tarball(tmp_path)), environment=FAST_CHECKS)
    assert endpoints.invoke_endpoint(session, "phoenix", b"[[1,1,1]]", "application/json", None)[0]
    old = server_pid(session, "phoenix")
    supervisor = session.store.get_endpoint("phoenix")["pid"]
    os.kill(old, signal.SIGKILL)
    seen = statuses_until_back_in_service(session, "phoenix", old)
    assert "Updating" in seen, seen
    body, _, _ = endpoints.invoke_endpoint(session, "phoenix", b"[[1,1,1]]", "application/json", None)
    assert b"6" in body
    desc = endpoints.describe_endpoint(session, "phoenix")
    assert desc["EndpointStatus"] == "InService" and "FailureReason" not in desc
    assert session.store.get_endpoint("phoenix")["pid"] == supervisor and pid_alive(supervisor)


def test_a_server_that_stops_answering_ping_is_replaced(session, tmp_path):
    endpoints.deploy(session, "frozen", str(make_tarball(tmp_path)), environment=FAST_CHECKS)
    old = server_pid(session, "frozen")
    os.kill(old, signal.SIGSTOP)  # alive, but /ping never answers
    try:
        statuses_until_back_in_service(session, "frozen", old)
    finally:
        if pid_alive(old):
            os.kill(old, signal.SIGKILL)
    assert not pid_alive(old)
    body, _, _ = endpoints.invoke_endpoint(session, "frozen", b"[[1,0,0]]", "application/json", None)
    assert b"1" in body


def test_a_server_that_crashes_on_every_start_ends_failed_naming_the_crashes(session, tmp_path):
    env = {**FAST_CHECKS, "NBSAGE_ENDPOINT_MAX_CRASHES": "3"}
    with pytest.raises(EndpointError, match="crashed 3 times") as info:
        endpoints.deploy(session, "doomed", str(make_tarball(tmp_path, script=CRASHES_ON_LOAD)), environment=env)
    assert "SIGKILL" in str(info.value)
    desc = endpoints.describe_endpoint(session, "doomed")
    assert desc["EndpointStatus"] == "Failed"
    assert "crashed 3 times" in desc["FailureReason"] and "killed by SIGKILL" in desc["FailureReason"]
    supervisor = session.store.get_endpoint("doomed")["pid"]
    wait_for(lambda: not pid_alive(supervisor), "the supervisor to exit")
