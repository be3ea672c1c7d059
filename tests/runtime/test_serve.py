"""The model server (`python -m nbsage.runtime serve`) as a real process answering real HTTP."""
from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from nbsage.errors import InvalidRequest, UnsupportedAccept, UnsupportedContentType
from nbsage.runtime import user_code

LINEAR = """
import os
import numpy as np

def model_fn(model_dir):
    return np.load(os.path.join(model_dir, "weights.npy"))

def predict_fn(data, model):
    return np.atleast_2d(np.asarray(data, dtype=float)) @ model
"""

TRIVIAL = """
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return b"1", "text/csv"
"""


def make_model_dir(root: Path, script: str, weights=(1.0, 2.0, 3.0), name="inference.py") -> Path:
    (root / "code").mkdir(parents=True, exist_ok=True)
    (root / "code" / name).write_text(textwrap.dedent(script))
    np.save(root / "weights.npy", np.asarray(weights))
    return root


class Server:
    """A model server subprocess and a keep-alive client to it."""

    def __init__(self, model_dir: Path, env: dict | None = None, *args: str):
        self.ready = model_dir.parent / f"{model_dir.name}.ready"
        self.ready.unlink(missing_ok=True)
        self.log = open(model_dir.parent / f"{model_dir.name}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbsage.runtime", "serve", "--model-dir", str(model_dir), "--port", "0",
             "--ready-file", str(self.ready), *args],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.ready.exists():
                self.port = int(self.ready.read_text())
                if self.get("/ping")[0] == 200:
                    break
            time.sleep(0.02)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port) if self.port else None

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, response.read(), response

    def post(self, body, content_type="application/json", accept=None, **headers):
        h = {"Content-Type": content_type, **headers}
        if accept:
            h["Accept"] = accept
        return self.request("POST", "/invocations", body, h)

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError:
            return None, b""
        finally:
            conn.close()

    def stop(self):
        if self.conn:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def linear_server(tmp_path_factory):
    server = Server(make_model_dir(tmp_path_factory.mktemp("linear") / "model", LINEAR))
    assert server.port, "the server did not start"
    yield server
    server.stop()


def test_ping_answers_200_and_ready_file_holds_the_bound_port(linear_server):
    assert linear_server.port > 0
    assert linear_server.get("/ping")[0] == 200


def test_json_request_gets_json_predictions(linear_server):
    status, body, response = linear_server.post(b"[[1, 2, 3], [1, 1, 1]]")
    assert status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(body) == [14.0, 6.0]


def test_csv_request_with_csv_accept_gets_csv(linear_server):
    status, body, response = linear_server.post(b"1,2,3\n0,0,1", "text/csv", "text/csv")
    assert status == 200 and response.getheader("Content-Type") == "text/csv"
    assert [float(x) for x in body.decode().split()] == [14.0, 3.0]


def test_npy_request_and_npy_accept_round_trip(linear_server):
    buf = io.BytesIO()
    np.save(buf, np.array([[1.0, 0.0, 0.0]]))
    status, body, response = linear_server.post(buf.getvalue(), "application/x-npy", "application/x-npy")
    assert status == 200
    np.testing.assert_allclose(np.load(io.BytesIO(body)), [1.0])


def test_missing_or_wildcard_accept_gets_the_default(linear_server):
    for accept in (None, "*/*"):
        status, body, response = linear_server.post(b"[[1,1,1]]", accept=accept)
        assert status == 200 and response.getheader("Content-Type") == "application/json"


def test_bad_requests_get_their_status_and_the_server_keeps_serving(linear_server):
    cases = [
        (dict(body=b"x", content_type="image/png"), 415, "image/png"),
        (dict(body=b"[[1,2,3]]", accept="application/unknown"), 406, "application/unknown"),
        (dict(body=b"[[1, 2, 3"), 400, "not valid JSON"),
        (dict(body=b""), 400, "empty"),
        (dict(body=b"[[1, 2]]"), 500, "ValueError"),
    ]
    for kwargs, expected, words in cases:
        status, body, _ = linear_server.post(**kwargs)
        assert status == expected, body
        error = json.loads(body)
        assert error["code"] == expected and words in error["message"]
        assert "Traceback" not in body.decode() and "\n" not in error["message"]
        # the same keep-alive connection still answers a good request
        assert linear_server.post(b"[[1, 1, 1]]")[:2] == (200, b"[6.0]")


def test_body_over_6_mb_is_413_and_the_connection_still_works(linear_server):
    status, body, _ = linear_server.post(b"1" * (7 * 1024 * 1024), "text/csv")
    assert status == 413
    assert "6,291,456" in json.loads(body)["message"]
    assert linear_server.post(b"[[1, 1, 1]]")[:2] == (200, b"[6.0]")


def test_413_is_decided_on_content_length_before_the_body_is_read(linear_server):
    conn = http.client.HTTPConnection("127.0.0.1", linear_server.port, timeout=5)
    conn.putrequest("POST", "/invocations")
    conn.putheader("Content-Type", "text/csv")
    conn.putheader("Content-Length", str(7 * 1024 * 1024))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()  # no body sent at all
    response = conn.getresponse()
    assert response.status == 413
    conn.close()


def test_custom_attributes_are_passed_through(linear_server):
    status, _, response = linear_server.post(b"[[1,1,1]]", **{"X-Amzn-SageMaker-Custom-Attributes": "trace=abc"})
    assert status == 200
    assert response.getheader("X-Amzn-SageMaker-Custom-Attributes") == "trace=abc"


def test_execution_parameters_describe_batch_settings(linear_server):
    status, body = linear_server.get("/execution-parameters")
    params = json.loads(body)
    assert status == 200
    assert params["BatchStrategy"] == "MULTI_RECORD" and params["MaxPayloadInMB"] == 6
    assert params["MaxConcurrentTransforms"] >= 1


def test_unknown_route_is_404(linear_server):
    assert linear_server.get("/nope")[0] == 404


def test_payload_limit_and_default_accept_follow_the_environment(tmp_path):
    server = Server(make_model_dir(tmp_path / "model", LINEAR),
                    {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    try:
        assert server.post(b"1" * (2 * 1024 * 1024), "text/csv")[0] == 413
        status, body, response = server.post(b"[[1,1,1]]")
        assert status == 200 and response.getheader("Content-Type") == "text/csv"
        assert json.loads(server.get("/execution-parameters")[1])["MaxPayloadInMB"] == 1
    finally:
        server.stop()


def test_sigterm_stops_the_server_cleanly(tmp_path):
    server = Server(make_model_dir(tmp_path / "model", TRIVIAL))
    assert server.port
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0
    server.stop()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", server.port, timeout=2).connect()


def test_a_model_fn_that_raises_exits_1_with_the_reason_in_a_failure_file(tmp_path):
    model_dir = make_model_dir(tmp_path / "model", "def model_fn(model_dir):\n    raise RuntimeError('no weights here')\n")
    server = Server(model_dir)
    assert server.proc.wait(30) == 1
    server.stop()
    assert "no weights here" in Path(f"{server.ready}.failure").read_text()


def test_a_keep_alive_client_gets_every_single_row_answer_on_one_connection(tmp_path):
    """A trivial handler, one keep-alive client, 2,000 single-row requests (the latency itself is
    measured by benchmarks/bench_endpoint.py, not asserted here)."""
    server = Server(make_model_dir(tmp_path / "model", TRIVIAL))
    try:
        headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
        for _ in range(200):
            server.request("POST", "/invocations", b"1,2,3", headers)
        for _ in range(2000):
            status, _, _ = server.request("POST", "/invocations", b"1,2,3", headers)
            assert status == 200
    finally:
        server.stop()


# ---- user inference code, loaded in this process ------------------------------------------------
def test_transform_fn_with_context_and_tuple_return(tmp_path):
    model_dir = make_model_dir(tmp_path / "model", """
        def model_fn(model_dir, context):
            return {"scale": 2}

        def transform_fn(model, body, content_type, accept, context):
            attrs = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
            context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", f"seen={attrs}")
            return str(float(body) * model["scale"]), "text/plain"
    """)
    handler = user_code.load(model_dir)
    out, ctype, headers = handler.invoke_request(b"21", "text/plain", None,
                                                 {"x-amzn-sagemaker-custom-attributes": "a=1"})
    assert (out, ctype) == (b"42.0", "text/plain")
    assert headers == {"X-Amzn-SageMaker-Custom-Attributes": "seen=a=1"}


def test_json_and_csv_bodies_reach_input_fn_as_str(tmp_path):
    model_dir = make_model_dir(tmp_path / "model", """
        def model_fn(model_dir):
            return None

        def input_fn(body, content_type):
            return type(body).__name__

        def predict_fn(data, model):
            return data

        def output_fn(prediction, accept):
            return prediction
    """)
    handler = user_code.load(model_dir)
    assert handler.invoke(b"[1]", "application/json", None) == (b"str", "application/json")
    assert handler.invoke(b"1", "text/csv", "text/csv")[0] == b"str"
    assert handler.invoke(b"1", "application/octet-stream", None)[0] == b"bytes"


def test_transform_fn_together_with_input_fn_is_an_error_at_load(tmp_path):
    model_dir = make_model_dir(tmp_path / "model", """
        def model_fn(model_dir): return None
        def input_fn(body, content_type): return body
        def transform_fn(model, body, content_type, accept): return body
    """)
    with pytest.raises(user_code.InferenceCodeError, match="transform_fn together with input_fn"):
        user_code.load(model_dir)


def test_a_script_without_model_fn_is_an_error_at_load(tmp_path):
    with pytest.raises(user_code.InferenceCodeError, match="no model_fn"):
        user_code.load(make_model_dir(tmp_path / "model", "x = 1\n"))


def test_default_decoders_and_encoders():
    np.testing.assert_allclose(user_code.decode("[[1, 2]]", "application/json"), [[1, 2]])
    np.testing.assert_allclose(user_code.decode("1,2\n3,4", "text/csv; charset=utf-8"), [[1, 2], [3, 4]])
    buf = io.BytesIO()
    np.save(buf, np.arange(3))
    np.testing.assert_array_equal(user_code.decode(buf.getvalue(), "application/x-npy"), [0, 1, 2])
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        user_code.decode("{", "application/json")
    with pytest.raises(UnsupportedContentType):
        user_code.decode(b"x", "image/png")
    assert user_code.default_output_fn(np.array([1.5]), "text/csv, application/json") == (b"1.5\n", "text/csv")
    assert user_code.default_output_fn(np.float32(2.0), None) == (b"2.0", "application/json")
    with pytest.raises(UnsupportedAccept):
        user_code.default_output_fn([1], "image/png")
