"""The model server under abuse: every limit answered with its status, and a good request never waits
behind a bad one. Real server processes on 127.0.0.1, raw sockets where a well-behaved client could
not send the request."""
from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time

import numpy as np
import pytest

from tests.runtime.test_serve import LINEAR, Server, make_model_dir

BLOCKING = """
import os
import socket

def model_fn(model_dir):
    return None

def predict_fn(data, model):
    with socket.socket(socket.AF_UNIX) as gate:  # wait for the test to let this call through
        gate.connect(os.environ["GATE"])
        gate.recv(1)
    return [1.0]
"""


class Gate:
    """A Unix socket each predict_fn call of the BLOCKING model connects to and waits on."""

    def __init__(self, path):
        self.path = str(path)
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen(16)
        self.listener.settimeout(60)

    def let_one_through(self) -> None:
        """Wait for a predict_fn call to arrive (60 s at most) and let it return."""
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(b"x")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def xgboost_model(tmp_path_factory):
    import xgboost as xgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2},
                        xgb.DMatrix(X, label=(X[:, 0] > 0).astype(float)), 5)
    model_dir = tmp_path_factory.mktemp("xgb") / "model"
    model_dir.mkdir()
    booster.save_model(str(model_dir / "xgboost-model"))
    return model_dir


@pytest.fixture
def start(tmp_path):
    """start(model_dir, **env) -> a running Server; every one is stopped afterwards."""
    servers = []

    def _start(model_dir, algorithm=None, **env):
        server = Server(model_dir, env, *(["--algorithm", algorithm] if algorithm else []))
        servers.append(server)
        assert server.port and server.get("/ping")[0] == 200, server_log(server)
        return server

    yield _start
    for server in servers:
        server.stop()


def server_log(server) -> str:
    with open(server.log.name, errors="replace") as f:
        return f.read()


@pytest.fixture
def gated(tmp_path):
    """(model dir of the BLOCKING model, its Gate)."""
    gate = Gate(tmp_path / "gate.sock")
    yield make_model_dir(tmp_path / "blocking", BLOCKING), gate
    gate.close()


def raw_request(port: int, data: bytes, timeout: float = 60.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in b"".join(chunks):
                head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    return b"".join(chunks)


def post(port: int, body: bytes, content_type: str = "text/csv", timeout: float = 60.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read(), response
    finally:
        conn.close()


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


# ---- a bad body is refused by its first rows and holds up nobody -------------------------------------------
def test_a_6mb_body_of_one_value_rows_is_refused_by_its_first_row_before_a_one_row_request_is_held_up(
        start, xgboost_model):
    server = start(xgboost_model, "xgboost", SAGEMAKER_MODEL_SERVER_WORKERS="1")
    bad = b"1\n" * 2_999_999 + b"x\n"  # 6 MB; a full parse would only trip on the last line
    order, answers, lock = [], {}, threading.Lock()
    go = threading.Barrier(2)

    def send(name, body):
        go.wait(30)
        status, data, _ = post(server.port, body)
        with lock:
            order.append(name)
            answers[name] = (status, data)

    bad_client = threading.Thread(target=send, args=("bad", bad))
    bad_client.start()
    send("good", b"0.5,-1,2")
    bad_client.join(120)
    assert order == ["good", "bad"], answers
    assert answers["good"][0] == 200 and 0.0 <= float(answers["good"][1]) <= 1.0
    status, data = answers["bad"]
    assert status == 400
    assert "line 1 has 1 features, and the model expects 3" in json.loads(data)["message"]


def test_whitespace_only_is_an_empty_body_and_a_utf8_bom_is_accepted(start, xgboost_model, tmp_path):
    xgb_server = start(xgboost_model, "xgboost")
    assert post(xgb_server.port, b"")[0] == 204
    status, data, _ = post(xgb_server.port, b" \r\n\n  ")
    assert (status, data) == (204, b"")
    with_bom, _, _ = post(xgb_server.port, b"\xef\xbb\xbf0.5,-1,2\n")
    assert with_bom == 200
    linear = start(make_model_dir(tmp_path / "linear", LINEAR))
    status, data, _ = post(linear.port, b"\n \n", "text/csv")
    assert status == 400 and "empty" in json.loads(data)["message"]
    status, data, _ = post(linear.port, b"\xef\xbb\xbf[[1, 1, 1]]", "application/json")
    assert (status, data) == (200, b"[6.0]")


# ---- the worker pool: bounded queue, per-request time limit ---------------------------------------------------
def test_a_full_queue_answers_503_with_retry_after_and_the_rest_are_served(start, gated):
    model_dir, gate = gated
    server = start(model_dir, GATE=gate.path, SAGEMAKER_MODEL_SERVER_WORKERS="1",
                   NBSAGE_MAX_QUEUED_INVOCATIONS="1")
    answers, arrived = [], threading.Condition()

    def send():
        status, _, response = post(server.port, b"[[1, 1, 1]]", "application/json", timeout=120)
        with arrived:
            answers.append((status, response.getheader("Retry-After")))
            arrived.notify_all()

    clients = [threading.Thread(target=send) for _ in range(3)]
    for client in clients:
        client.start()
    with arrived:  # one worker and one place in the queue: the third request is turned away at once
        assert arrived.wait_for(lambda: answers, timeout=60), "no request was answered while the pool was full"
        assert answers == [(503, "1")]
    gate.let_one_through()  # the running one, then the queued one
    gate.let_one_through()
    for client in clients:
        client.join(60)
    assert sorted(answers) == [(200, None), (200, None), (503, "1")]


def test_a_model_that_does_not_answer_in_time_gets_504_and_the_server_keeps_serving(start, gated):
    model_dir, gate = gated
    server = start(model_dir, GATE=gate.path, NBSAGE_INVOCATION_TIMEOUT_SECONDS="1")
    status, data, _ = post(server.port, b"[[1, 1, 1]]", "application/json", timeout=60)
    assert status == 504 and "did not answer within 1 s" in json.loads(data)["message"]
    gate.let_one_through()  # the late call finishes and frees its worker
    done = []
    client = threading.Thread(target=lambda: done.append(post(server.port, b"[[1,1,1]]", "application/json")[0]))
    client.start()
    gate.let_one_through()
    client.join(60)
    assert done == [200]


def test_a_body_that_does_not_arrive_in_time_gets_408(start, tmp_path):
    server = start(make_model_dir(tmp_path / "linear", LINEAR), NBSAGE_INVOCATION_TIMEOUT_SECONDS="1")
    answer = raw_request(server.port, b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: 100\r\n\r\n[[1, 1", timeout=60)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 1 s" in answer


# ---- connections: a cap, and no idle or half-open one is held for long -----------------------------------------
def test_300_half_open_connections_are_capped_and_let_go(start, tmp_path):
    server = start(make_model_dir(tmp_path / "linear", LINEAR), NBSAGE_MAX_CONNECTIONS="20",
                   NBSAGE_HEADER_TIMEOUT_SECONDS="2", SAGEMAKER_MODEL_SERVER_WORKERS="2")
    threads_before = thread_count(server.proc.pid)  # the main thread, the accept loop, BLAS threads ...
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=60) for _ in range(300)]
    try:
        # accepted in order: once this one is answered, all 300 before it were accepted
        answer = raw_request(server.port, b"GET /ping HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in answer
        assert thread_count(server.proc.pid) <= threads_before + 20  # one a connection, at most 20
        for sock in idle:  # each is answered 503 and closed at once, or closed after the header timeout
            while sock.recv(65536):
                pass
    finally:
        for sock in idle:
            sock.close()
    assert server.post(b"[[1, 1, 1]]")[:2] == (200, b"[6.0]")
    assert "Traceback" not in server_log(server)


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(start, tmp_path):
    server = start(make_model_dir(tmp_path / "linear", LINEAR), NBSAGE_KEEP_ALIVE_TIMEOUT_SECONDS="1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
        answer = b""
        while b"Healthy" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in answer
        assert sock.recv(65536) == b""  # closed by the server once idle for 1 s (30 s at most here)


def test_a_70_mb_body_gets_413_read_by_the_client_not_a_broken_pipe(start, tmp_path):
    server = start(make_model_dir(tmp_path / "linear", LINEAR))
    status, data, response = post(server.port, b"1" * (70 * 1024 * 1024), "text/csv")
    assert status == 413 and "73,400,320 bytes" in json.loads(data)["message"]
    assert response.getheader("Connection") == "close"


def test_a_malformed_chunked_body_is_400_without_a_traceback(start, tmp_path):
    server = start(make_model_dir(tmp_path / "linear", LINEAR))
    bodies = {"not hexadecimal": b"zz\r\n1\r\n0\r\n\r\n", "negative": b"-1\r\n1\r\n0\r\n\r\n",
              "no CRLF after the data": b"3\r\n[1]XX0\r\n\r\n",
              "underscore": b"1_0\r\n" + b"1" * 16 + b"\r\n0\r\n\r\n"}
    for case, body in bodies.items():
        answer = raw_request(server.port, b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
                                          b"Transfer-Encoding: chunked\r\n\r\n" + body)
        assert answer.startswith(b"HTTP/1.1 400 ") and b"malformed chunked body" in answer, case
    assert server.post(b"[[1, 1, 1]]")[:2] == (200, b"[6.0]")
    assert "Traceback" not in server_log(server)


def test_an_endpoints_environment_sets_its_time_limit_and_invoke_reports_504(tmp_path, gated):
    from nbsage.errors import ModelError
    from nbsage.serving import endpoints
    from nbsage.session import Session
    from tests.serving.test_endpoints import make_tarball
    _, gate = gated
    session = Session(home=tmp_path / "home")
    endpoints.deploy(session, "slow", str(make_tarball(tmp_path, script=BLOCKING)),
                     environment={"GATE": gate.path, "NBSAGE_INVOCATION_TIMEOUT_SECONDS": "1"})
    try:
        with pytest.raises(ModelError, match="did not answer within 1 s") as info:
            endpoints.invoke_endpoint(session, "slow", b"[[1, 1, 1]]", "application/json")
        assert info.value.status == 504
        gate.let_one_through()
    finally:
        endpoints.delete_endpoint(session, "slow")
