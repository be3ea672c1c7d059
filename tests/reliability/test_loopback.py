"""Loopback by default: every port nbsage opens on its own listens on 127.0.0.1 (or ::1).

While a 2-host job on the local place, a 2-host job on a Dask LocalCluster and an endpoint run,
the listening TCP sockets of /proc/net/tcp and /proc/net/tcp6 are matched (by inode) with the
file descriptors of the job's or endpoint's process tree; any that listens on another address
fails the test. Sockets of other processes (other tests, the system) do not count.

The jobs run a script that enters xgboost's collective, then torch.distributed (the two ways
hosts talk to each other), and in each says so with a marker file and waits for the test to
release it: the sockets are listed while every host is inside, not by luck of timing.
"""
from __future__ import annotations

import ipaddress
import os
import textwrap
from pathlib import Path

import pytest

from nbsage.estimator import Estimator
from nbsage.session import Session
from support import wait_for

TIMEOUT = 240

SCRIPT = textwrap.dedent("""
    import argparse, os, time
    from nbsage.algorithms import distributed

    parser = argparse.ArgumentParser()
    parser.add_argument("--markers")
    markers = parser.parse_args().markers
    host = os.environ["SM_CURRENT_HOST"]

    def inside(stage):
        open(os.path.join(markers, f"{stage}-{host}"), "w").close()
        release = os.path.join(markers, f"release-{stage}")
        deadline = time.monotonic() + 200
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.05)

    with distributed.xgboost_collective(distributed.cluster()):
        inside("xgboost")
    with distributed.torch_process_group(device="cpu"):
        inside("torch")
""")


# ---- what listens, and whose it is ------------------------------------------------------------------------
def _address(hex_address: str) -> ipaddress._BaseAddress:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # /proc/net/tcp6 writes the address as four 32-bit words, each in host (little-endian) order
    return ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def listening_sockets() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every listening TCP socket of the machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            found[int(fields[9])] = (str(_address(hex_address)), int(hex_port, 16))
    return found


def process_tree(root: int) -> set[int]:
    """root and every process below it (by parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo += children.get(pid, [])
    return tree


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


def listening_of(root: int) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening socket held by root's process tree."""
    sockets = listening_sockets()
    return sorted({(pid, *sockets[inode]) for pid in process_tree(root) for inode in socket_inodes(pid)
                   if inode in sockets})


def assert_loopback_only(root: int, what: str, at_least: int = 1) -> list[tuple[int, str, int]]:
    held = listening_of(root)
    exposed = [s for s in held if not ipaddress.ip_address(s[1]).is_loopback]
    assert not exposed, f"{what}: listening beyond loopback (pid, address, port): {exposed}; all: {held}"
    assert len(held) >= at_least, f"{what}: expected at least {at_least} listening sockets, saw {held}"
    return held


# ---- the jobs ------------------------------------------------------------------------------------------------
def run_two_hosts_and_check(tmp_path: Path, stages_listening: dict[str, int], **estimator_args) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    markers = tmp_path / "markers"
    markers.mkdir()
    est = Estimator(entry_point="train.py", source_dir=str(src), instance_count=2,
                    hyperparameters={"markers": str(markers)}, **estimator_args)
    job = est.fit(wait=False)
    store = Session.default().store
    supervisor = wait_for(lambda: store.get_job(job.name)["supervisor_pid"], what="the job's supervisor")
    try:
        for stage, at_least in stages_listening.items():
            wait_for(lambda: all((markers / f"{stage}-algo-{i}").exists() for i in (1, 2))
                     or store.get_job(job.name)["status"] not in ("InProgress", "Stopping"),
                     timeout=TIMEOUT, what=f"both hosts inside {stage}")
            assert store.get_job(job.name)["status"] == "InProgress", job.describe().get("FailureReason")
            assert_loopback_only(supervisor, f"{stage} stage of {job.name}", at_least)
            (markers / f"release-{stage}").touch()
    finally:
        for stage in stages_listening:
            (markers / f"release-{stage}").touch()
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")


def test_a_two_host_local_job_listens_on_loopback_only(tmp_path):
    pytest.importorskip("xgboost")
    pytest.importorskip("torch")
    # xgboost: the tracker, the rendezvous on MASTER_PORT and each host's peer port;
    # torch: the store on MASTER_PORT and gloo's pairs
    run_two_hosts_and_check(tmp_path, {"xgboost": 3, "torch": 2})


def test_a_two_host_dask_job_listens_on_loopback_only(tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("xgboost")
    pytest.importorskip("torch")
    # and the LocalCluster: scheduler, its dashboard, nannies and workers
    run_two_hosts_and_check(tmp_path, {"xgboost": 6, "torch": 5}, backend="dask")


def test_an_endpoint_listens_on_loopback_only(tmp_path):
    import tarfile
    import numpy as np
    from nbsage.serving import endpoints
    src = tmp_path / "model"
    (src / "code").mkdir(parents=True)
    (src / "code" / "inference.py").write_text(
        "import os\nimport numpy as np\n"
        "def model_fn(model_dir):\n    return np.load(os.path.join(model_dir, 'weights.npy'))\n"
        "def predict_fn(data, model):\n    return np.atleast_2d(np.asarray(data, dtype=float)) @ model\n")
    np.save(src / "weights.npy", np.asarray([1.0, 2.0]))
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(src.iterdir()):
            tar.add(entry, arcname=entry.name)
    session = Session.default()
    endpoints.deploy(session, "loopback", str(archive))
    try:
        record = session.store.get_endpoint("loopback")
        assert_loopback_only(record["pid"], "endpoint 'loopback'")
    finally:
        endpoints.delete_endpoint(session, "loopback")


# ---- the redirection itself ------------------------------------------------------------------------------------
@pytest.mark.parametrize("host, local", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                         ("10.1.2.3", False), ("no-such-host.invalid", False)])
def test_is_loopback(host, local):
    from nbsage.algorithms.loopback import is_loopback
    assert is_loopback(host) is local


def test_a_library_that_never_binds_is_left_as_it_is_with_the_reason():
    import ctypes
    import ctypes.util
    from nbsage.algorithms.loopback import bind_to_loopback
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    assert "no relocation for bind" in bind_to_loopback(libm)
    assert "not found" in bind_to_loopback(None)
