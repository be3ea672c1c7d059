"""FastFile reads remote objects lazily through a read-only FUSE mount (nbsage.backends.fastfile_mount).

Real jobs on the local place against real servers on loopback: an HTTP server that answers Range
requests and counts the bytes it sends (so laziness is measured, not assumed) and moto's S3 server.
Mount tests skip where FUSE cannot be used here (no fusepy, libfuse 2 or /dev/fuse); the fallback
test runs everywhere.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import signal
import textwrap
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nbsage.backends.fastfile_mount import mounts_under, unavailable_reason
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.store.metadata import pid_alive
from support import wait_for

BIG = 64 << 20
TIMEOUT = 60


def fuse_or_skip():
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"FUSE cannot be used here: {reason}")


class ObjectServer(ThreadingHTTPServer):
    """Serves `objects` (path -> bytes) with HEAD and GET, honouring `Range: bytes=a-b`; counts the
    body bytes it actually sent."""

    daemon_threads = True

    def __init__(self, objects: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.objects = objects
        self.sent = 0
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def _answer(self, body: bool):
        data = self.server.objects.get(self.path)
        with self.server.lock:
            self.server.requests.append((self.command, self.path, self.headers.get("Range")))
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = 0, len(data) - 1
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)), end) if m.group(2) else end
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        view = memoryview(data)[start:end + 1]
        try:
            for i in range(0, len(view), 1 << 16):  # a reader that hangs up stops the count
                self.wfile.write(view[i:i + (1 << 16)])
                with self.server.lock:
                    self.server.sent += len(view[i:i + (1 << 16)])
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@pytest.fixture(scope="module")
def big_object() -> bytes:
    return random.Random(7).randbytes(BIG)


@pytest.fixture
def http_objects(big_object):
    server = ObjectServer({"/data/big.bin": big_object, "/small/rows.csv": b"1,2\n3,4\n"})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_mount_left(nbsage_home):
    """Every test leaves no FastFile mount behind in its NBSAGE_HOME."""
    yield
    left = mounts_under(Path(nbsage_home).resolve())
    assert not left, f"FastFile mounts left behind: {left}"


def source(tmp_path: Path, body: str) -> Path:
    src = tmp_path / f"src-{uuid.uuid4().hex[:6]}"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent(body))
    return src


def reported(lines: list[str]) -> list[dict]:
    """The JSON objects the scripts print after 'REPORT ' (a host prefix may come first)."""
    return [json.loads(line.split("REPORT ", 1)[1]) for line in lines if "REPORT " in line]


SLICE_SCRIPT = """
    import hashlib, json, os
    folder = os.environ["SM_CHANNEL_TRAIN"]
    path = os.path.join(folder, "big.bin")
    with open(path, "rb") as f:
        head = f.read(4096)
        f.seek(40 << 20)
        middle = f.read(4096)
    print("REPORT " + json.dumps({
        "size": os.stat(path).st_size, "names": os.listdir(folder), "mounted": os.path.ismount(folder),
        "head": hashlib.sha256(head).hexdigest(), "middle": hashlib.sha256(middle).hexdigest()}), flush=True)
"""


def test_fastfile_http_object_is_read_by_ranges_only_where_the_script_reads(tmp_path, session, http_objects,
                                                                           big_object):
    fuse_or_skip()
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, SLICE_SCRIPT)), sagemaker_session=session)
    job = est.fit({"train": TrainingInput(f"{http_objects.url}/data/big.bin", input_mode="FastFile")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    (report,) = reported(job.logs())
    assert report["mounted"] and report["names"] == ["big.bin"]
    assert report["size"] == BIG  # os.stat sees the whole object's size ...
    assert report["head"] == hashlib.sha256(big_object[:4096]).hexdigest()
    assert report["middle"] == hashlib.sha256(big_object[40 << 20:(40 << 20) + 4096]).hexdigest()
    # ... and the server sent a small part of it: two read-ahead blocks, the listing's requests
    assert http_objects.sent < BIG // 4, f"{http_objects.sent} bytes of {BIG} were served"
    assert any("mounted read-only at input/data/train" in line for line in job.logs())
    assert not mounts_under(Path(session.jobs_dir).resolve())


def test_fastfile_falls_back_to_fetching_at_start_and_says_why(tmp_path, session, http_objects, monkeypatch):
    monkeypatch.setenv("NBSAGE_FASTFILE_FUSE", "0")  # the supervisor inherits it
    body = """
        import json, os
        folder = os.environ["SM_CHANNEL_TRAIN"]
        print("REPORT " + json.dumps({"mounted": os.path.ismount(folder),
                                      "link": os.path.islink(os.path.join(folder, "rows.csv")),
                                      "rows": open(os.path.join(folder, "rows.csv")).read()}), flush=True)
    """
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, body)), sagemaker_session=session)
    job = est.fit({"train": TrainingInput(f"{http_objects.url}/small/rows.csv", input_mode="FastFile")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert reported(job.logs()) == [{"mounted": False, "link": True, "rows": "1,2\n3,4\n"}]
    why = [line for line in job.logs() if "no lazy mount" in line]
    assert len(why) == 1 and "NBSAGE_FASTFILE_FUSE=0" in why[0] and "fetching" in why[0]


def test_killing_the_supervisor_with_sigkill_leaves_no_mount_behind(tmp_path, session, http_objects):
    fuse_or_skip()
    marker = tmp_path / "started"
    body = f"""
        import os, time
        with open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "big.bin"), "rb") as f:
            f.read(10)
        open({str(marker)!r}, "w").write("yes")
        time.sleep(120)
    """
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, body)), sagemaker_session=session)
    job = est.fit({"train": TrainingInput(f"{http_objects.url}/data/big.bin", input_mode="FastFile")}, wait=False)
    wait_for(marker.exists, TIMEOUT, "the script to read from the mount")
    root = Path(session.store.get_job(job.name)["root"]).resolve()
    assert mounts_under(root), "the channel was not mounted"
    supervisor = session.store.get_job(job.name)["supervisor_pid"]
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(supervisor), 10, "the supervisor to be gone")
    wait_for(lambda: not mounts_under(root), 15, "the mount to go with its supervisor")
    assert not os.path.ismount(root / "input" / "data" / "train")


def test_a_kernel_that_reaches_the_url_mounts_the_channel_in_the_kernel(tmp_path, session, http_objects, big_object):
    fuse_or_skip()
    pytest.importorskip("jupyter_client")
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, SLICE_SCRIPT)), sagemaker_session=session,
                    backend="kernel", kernel="python3")
    job = est.fit({"train": TrainingInput(f"{http_objects.url}/data/big.bin", input_mode="FastFile")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    (report,) = reported(job.logs())
    assert report["mounted"] and report["size"] == BIG
    assert report["middle"] == hashlib.sha256(big_object[40 << 20:(40 << 20) + 4096]).hexdigest()
    assert http_objects.sent < BIG // 4, f"{http_objects.sent} bytes of {BIG} were served"


def test_staging_mounts_a_remote_channel_and_release_unmounts_it(tmp_path, http_objects, big_object):
    fuse_or_skip()
    from nbsage.backends.staging import release_fastfile, stage_channel
    lines: list[str] = []
    dest = tmp_path / "root" / "input" / "data" / "train"
    assert stage_channel(f"{http_objects.url}/data/big.bin", dest, "train", input_mode="FastFile",
                         log=lines.append) == 1
    try:
        assert os.path.ismount(dest) and os.listdir(dest) == ["big.bin"]
        with open(dest / "big.bin", "rb") as f:
            f.seek(BIG - 100)
            assert f.read() == big_object[-100:]
        with pytest.raises(OSError) as write:
            open(dest / "big.bin", "ab")
        assert write.value.errno == errno.EROFS
        assert lines and "mounted read-only" in lines[0]
    finally:
        assert release_fastfile(tmp_path / "root") == 1
    assert not os.path.ismount(dest) and not mounts_under(tmp_path)


# ---- S3 (moto's server) ---------------------------------------------------------------------------------
READ_ALL_SCRIPT = """
    import errno, json, os
    folder = os.environ["SM_CHANNEL_TRAIN"]
    seen = {}
    for base, dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            seen[os.path.relpath(path, folder)] = open(path).read()
    writes = []
    for attempt in (lambda: open(os.path.join(folder, "new.txt"), "w"),
                    lambda: open(os.path.join(folder, sorted(seen)[0]), "a"),
                    lambda: os.remove(os.path.join(folder, sorted(seen)[0]))):
        try:
            attempt()
            writes.append("written")
        except OSError as e:
            writes.append(errno.errorcode[e.errno])
    print("REPORT " + json.dumps({"host": os.environ["SM_CURRENT_HOST"], "seen": seen, "writes": writes,
                                  "mounted": os.path.ismount(folder)}), flush=True)
"""


def test_fastfile_s3_shards_are_mounted_per_host_read_only_and_gone_after_the_job(tmp_path, session, s3_bucket):
    fuse_or_skip()
    name, client = s3_bucket
    keys = ["data/part-0.csv", "data/part-1.csv", "data/part-2.csv", "data/sub/part-3.csv", "data/sub/part-4.csv"]
    for key in keys:
        client.put_object(Bucket=name, Key=key, Body=f"{key}\n".encode())
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, READ_ALL_SCRIPT)), instance_count=2,
                    sagemaker_session=session)
    job = est.fit({"train": TrainingInput(f"s3://{name}/data/", input_mode="FastFile",
                                          distribution="ShardedByS3Key")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    reports = {r["host"]: r for r in reported(job.logs())}
    rel = [k[len("data/"):] for k in keys]  # sorted by key; host i of 2 gets objects i, i+2, ...
    assert reports["algo-1"]["seen"] == {k: f"data/{k}\n" for k in rel[0::2]}
    assert reports["algo-2"]["seen"] == {k: f"data/{k}\n" for k in rel[1::2]}
    for report in reports.values():
        assert report["mounted"] and report["writes"] == ["EROFS", "EROFS", "EROFS"]
    assert not mounts_under(Path(session.jobs_dir).resolve())


def test_dask_workers_mount_each_hosts_channel_and_release_it(tmp_path, session, http_objects, big_object):
    fuse_or_skip()
    distributed = pytest.importorskip("distributed")
    import logging
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:
        est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, SLICE_SCRIPT)), instance_count=2,
                        backend="dask", scheduler=cluster.scheduler_address, sagemaker_session=session)
        job = est.fit({"train": TrainingInput(f"{http_objects.url}/data/big.bin", input_mode="FastFile")},
                      wait=False)
        desc = job.wait_quietly(timeout=TIMEOUT)
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        reports = reported(job.logs())
        assert len(reports) == 2 and all(r["mounted"] and r["size"] == BIG for r in reports)
        assert {r["head"] for r in reports} == {hashlib.sha256(big_object[:4096]).hexdigest()}
        assert not [m for m in mounts_under("/") if job.name in m]
