"""Endpoints as detached server processes recorded in the store, used from several processes."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nbsage.errors import EndpointError, ModelError
from nbsage.serving import endpoints
from nbsage.store.metadata import pid_alive
from support import make_tarball, wait_for



def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def run_python(code: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "NBSAGE_HOME": str(home)})


def test_deploy_describe_invoke_delete(session, tmp_path):
    desc = endpoints.deploy(session, "linear", str(make_tarball(tmp_path)))
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointName"] == "linear" and desc["EndpointArn"].endswith("endpoint/linear")
    variant = desc["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic" and variant["CurrentInstanceCount"] == 1
    assert desc["Url"].startswith("http://127.0.0.1:") and desc["CreationTime"] and desc["LastModifiedTime"]
    record = session.store.get_endpoint("linear")
    assert record["config"]["ModelDataUrl"].endswith("model.tar.gz")
    assert record["config"]["InstanceType"] == "local" and pid_alive(record["pid"])

    body, content_type, headers = endpoints.invoke_endpoint(session, "linear", b"1,2,3", "text/csv", "text/csv",
                                                            custom_attributes="k=v")
    assert float(body) == 14.0 and content_type == "text/csv"
    assert headers["X-Amzn-SageMaker-Custom-Attributes"] == "k=v"
    assert headers["X-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    assert [e["EndpointName"] for e in endpoints.list_endpoints(session)] == ["linear"]

    port = record["port"]
    endpoints.delete_endpoint(session, "linear")
    assert not pid_alive(record["pid"]) and port_is_free(port)
    assert session.store.list_endpoints() == []
    assert not (session.endpoints_dir / "linear").exists()


def test_non_2xx_answers_raise_model_error_with_the_status(session, tmp_path):
    endpoints.deploy(session, "errors", str(make_tarball(tmp_path)))
    with pytest.raises(ModelError) as info:
        endpoints.invoke_endpoint(session, "errors", b"[[1, 2", "application/json", None)
    assert info.value.status == 400 and "not valid JSON" in info.value.message
    assert endpoints.invoke_endpoint(session, "errors", b"[[1,1,1]]", "application/json", None)[0] == b"[6.0]"


def test_a_server_that_fails_to_start_marks_the_endpoint_failed_with_the_reason(session, tmp_path):
    archive = make_tarball(tmp_path, "def model_fn(model_dir):\n    raise RuntimeError('weights.bin is missing')\n")
    with pytest.raises(EndpointError, match="weights.bin is missing"):
        endpoints.deploy(session, "broken", str(archive))
    desc = endpoints.describe_endpoint(session, "broken")
    assert desc["EndpointStatus"] == "Failed" and "weights.bin is missing" in desc["FailureReason"]
    with pytest.raises(EndpointError, match="Failed"):
        endpoints.invoke_endpoint(session, "broken", b"1", "text/csv", None)


def test_missing_model_data_fails_with_a_clear_error(session, tmp_path):
    with pytest.raises(EndpointError, match="does not exist"):
        endpoints.deploy(session, "nothing", str(tmp_path / "nope.tar.gz"))
    assert endpoints.describe_endpoint(session, "nothing")["EndpointStatus"] == "Failed"


def test_a_dead_server_is_listed_as_failed_and_invoking_it_raises(session, tmp_path):
    endpoints.deploy(session, "victim", str(make_tarball(tmp_path)))
    endpoints.invoke_endpoint(session, "victim", b"[[1,1,1]]", "application/json", None)
    pid = session.store.get_endpoint("victim")["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 60, "the killed server to be gone")
    with pytest.raises(EndpointError, match="no longer running"):
        endpoints.invoke_endpoint(session, "victim", b"[[1,1,1]]", "application/json", None)
    [desc] = endpoints.list_endpoints(session)
    assert desc["EndpointStatus"] == "Failed" and str(pid) in desc["FailureReason"]


def test_names_are_unique_and_unknown_names_get_did_you_mean(session, tmp_path):
    archive = str(make_tarball(tmp_path))
    endpoints.deploy(session, "churn-model", archive)
    with pytest.raises(EndpointError, match="already exists"):
        endpoints.deploy(session, "churn-model", archive)
    with pytest.raises(EndpointError, match="did you mean 'churn-model'"):
        endpoints.delete_endpoint(session, "churn-modle")
    with pytest.raises(Exception, match="not valid"):
        endpoints.deploy(session, "bad_name!", archive)


def test_deploy_without_wait_returns_creating_and_becomes_in_service(session, tmp_path):
    desc = endpoints.deploy(session, "later", str(make_tarball(tmp_path)), wait=False)
    assert desc["EndpointStatus"] in ("Creating", "InService")
    assert endpoints.wait_for_endpoint(session, "later", timeout=30)["EndpointStatus"] == "InService"


def test_an_endpoint_outlives_its_creator_and_other_processes_use_it(session, tmp_path):
    archive = make_tarball(tmp_path)
    created = run_python(f"""
        from nbsage.session import Session
        from nbsage.serving import deploy
        print(deploy(Session(), "shared", {str(archive)!r})["EndpointStatus"])
    """, session.home)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "InService"
    record = session.store.get_endpoint("shared")
    assert pid_alive(record["pid"])  # the creating interpreter has exited; the server has not

    # this process invokes it; another process lists, invokes and deletes it
    assert endpoints.invoke_endpoint(session, "shared", b"[[1,1,1]]", "application/json", None)[0] == b"[6.0]"
    other = run_python("""
        import json
        from nbsage.session import Session
        from nbsage.serving import list_endpoints, invoke_endpoint, delete_endpoint
        s = Session()
        names = [e["EndpointName"] for e in list_endpoints(s)]
        body, ctype, _ = invoke_endpoint(s, "shared", b"0,0,1", "text/csv", "application/json")
        delete_endpoint(s, "shared")
        print(json.dumps({"names": names, "body": body.decode(), "ctype": ctype}))
    """, session.home)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == {"names": ["shared"], "body": "[3.0]", "ctype": "application/json"}
    assert not pid_alive(record["pid"]) and port_is_free(record["port"])
    with pytest.raises(EndpointError, match="no endpoint named 'shared'"):
        endpoints.invoke_endpoint(session, "shared", b"[[1,1,1]]", "application/json", None)


@pytest.mark.filterwarnings("ignore:.*UBJSON:UserWarning")
@pytest.mark.skipif(importlib.util.find_spec("nbsage.algorithms.xgboost") is None,
                    reason="nbsage.algorithms.xgboost is not written yet")
def test_xgboost_model_tar_gz_answers_csv_predictions(session, tmp_path):
    import xgboost as xgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(float)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 10)
    (tmp_path / "model").mkdir()
    booster.save_model(str(tmp_path / "model" / "xgboost-model"))
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "model" / "xgboost-model", arcname="xgboost-model")
    endpoints.deploy(session, "xgb", str(archive), algorithm="xgboost")
    rows = "\n".join(",".join(f"{v:.6f}" for v in row) for row in X[:3]).encode()
    body, content_type, _ = endpoints.invoke_endpoint(session, "xgb", rows, "text/csv", "text/csv")
    predictions = [float(v) for v in body.decode().replace("\n", ",").split(",") if v.strip()]
    expected = booster.predict(xgb.DMatrix(np.array([[float(f"{v:.6f}") for v in row] for row in X[:3]])))
    assert content_type.startswith("text/csv")
    np.testing.assert_allclose(predictions, expected, rtol=1e-4)
