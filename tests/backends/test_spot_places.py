"""Managed spot and checkpoints on every place but the single-host local one (tests/backends/test_checkpoints.py).

A spot job writes a checkpoint per step and logs the step it resumed from; its runtime (or the
kernel, or the Dask worker that runs it) is killed mid-run. On each place the job goes Interrupted →
Restarting → Training → Completed, resumes after its last synced checkpoint, and its checkpoints
are at CheckpointConfig.S3Uri afterwards:

- local, instance_count=2: every host restores and mirrors its own checkpoint folder to one URI
  (and with no capacity back before MaxWaitTimeInSeconds the job ends Stopped/MaxWaitTimeExceeded);
- kernel, through a Jupyter Kernel Gateway on loopback, checkpoints in S3 (moto's server): the
  runtime killed in the kernel, and the kernel itself killed (a new kernel takes over);
- dask, a LocalCluster of 2 workers: a host's runtime killed, and a whole worker killed.
"""
from __future__ import annotations

import logging
import os
import signal
import uuid
from pathlib import Path

import pytest

from nbsage.estimator import Estimator
from support import STEPPER, Gateway, aws_environment, wait_for

TIMEOUT = 240  # a job's end, with a restart in it, on a busy machine
HOLD_AT = 4  # the stepper waits before this step until the test has killed it (see release)
# read by conftest's session fixture
SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": "1", "NBSAGE_CHECKPOINT_SYNC_SECONDS": "0.1",
               "NBSAGE_SPOT_RESTART_SECONDS": "0.5"}



def stepper_estimator(tmp_path: Path, session, checkpoint_uri: str, steps: int = 30, spot: bool = True,
                      max_run: int = 120, max_wait: int = 240, **place) -> Estimator:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(STEPPER)
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    return Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session,
                     hyperparameters={"steps": steps, "pause": 0.1, "markers": str(markers),
                                      "hold-at": HOLD_AT, "release": str(tmp_path / "release")},
                     use_spot_instances=spot, max_run=max_run, max_wait=max_wait if spot else None,
                     checkpoint_s3_uri=checkpoint_uri, **place)


def release(tmp_path: Path) -> None:
    """Let every host's stepper go on past HOLD_AT (tests call it once they have killed what they kill)."""
    (tmp_path / "release").touch()


def pids(tmp_path: Path, host: str) -> tuple[int, int]:
    """(script pid, runtime pid) of the host's current attempt."""
    script, runtime = (tmp_path / "markers" / host).read_text().split()
    return int(script), int(runtime)


def synced_step(names: list[str], host: str) -> int:
    steps = [int(n.rsplit("-", 1)[1]) for n in names if n.startswith(f"{host}-step-")]
    return max(steps) if steps else -1


def check_resumed(desc: dict, logs: list[str], hosts: list[str]) -> None:
    """Completed through Interrupted → Restarting, and each host resumed after the checkpoints synced
    before the kill (the tests kill once every host has synced step-3, written after its state)."""
    assert desc["TrainingJobStatus"] == "Completed", (desc.get("FailureReason"), logs[-30:])
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert "Interrupted" in statuses, statuses
    assert statuses[statuses.index("Interrupted"):] == ["Interrupted", "Restarting", "Training", "Uploading",
                                                          "Completed"], statuses
    assert desc["BillableTimeInSeconds"] <= desc["TrainingTimeInSeconds"]
    for host in hosts:
        prefix = f"[{host}] " if len(hosts) > 1 else ""
        resumed = [int(line.split()[-1]) for line in logs if line.startswith(f"{prefix}resumed at step")]
        assert resumed and resumed[0] >= 4, (host, resumed, logs)


# ---- local, instance_count=2 ---------------------------------------------------------------------


def test_local_two_hosts_spot_job_killed_mid_run_resumes_every_host_from_the_uri(tmp_path, session, data):
    remote = tmp_path / "ckpt"
    est = stepper_estimator(tmp_path, session, f"file://{remote}", instance_count=2)
    job = est.fit({"train": str(data)}, wait=False)
    hosts = ["algo-1", "algo-2"]

    def names() -> list[str]:
        return sorted(p.name for p in remote.iterdir()) if remote.exists() else []

    wait_for(lambda: all(synced_step(names(), h) >= 3 for h in hosts), what="both hosts' synced checkpoints")
    os.killpg(session.store.get_job(job.name)["runtime_pid"], signal.SIGKILL)  # algo-1's runtime
    release(tmp_path)
    desc = job.wait_quietly(timeout=TIMEOUT)
    check_resumed(desc, job.logs(), hosts)
    interrupted = next(t for t in desc["SecondaryStatusTransitions"] if t["Status"] == "Interrupted")
    assert "algo-1" in interrupted["StatusMessage"] and "SIGKILL" in interrupted["StatusMessage"]
    assert names() == ["algo-1-state.json", "algo-1-step-29", "algo-2-state.json", "algo-2-step-29"]


def test_local_two_hosts_killed_without_spot_fails_naming_the_host(tmp_path, session, data):
    remote = tmp_path / "ckpt"
    est = stepper_estimator(tmp_path, session, str(remote), spot=False, instance_count=2)
    job = est.fit({"train": str(data)}, wait=False)
    wait_for(lambda: (tmp_path / "markers" / "algo-2").exists() and synced_step(
        [p.name for p in remote.iterdir()] if remote.exists() else [], "algo-2") >= 1, what="algo-2's checkpoints")
    os.killpg(pids(tmp_path, "algo-2")[1], signal.SIGKILL)
    release(tmp_path)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed", desc
    assert desc["FailureReason"].startswith("AlgorithmError: algo-2:") and "SIGKILL" in desc["FailureReason"]
    assert "Interrupted" not in [t["Status"] for t in desc["SecondaryStatusTransitions"]]


def test_local_two_hosts_spot_job_without_capacity_past_max_wait_is_stopped(tmp_path, session, data, monkeypatch):
    monkeypatch.setenv("NBSAGE_SPOT_RESTART_SECONDS", "4")  # "no capacity" for longer than MaxWait allows
    remote = tmp_path / "ckpt"
    est = stepper_estimator(tmp_path, session, str(remote), steps=1000, max_run=3, max_wait=3, instance_count=2)
    job = est.fit({"train": str(data)}, wait=False)
    wait_for(lambda: (tmp_path / "markers" / "algo-2").exists(), what="algo-2 to start")
    os.killpg(pids(tmp_path, "algo-2")[1], signal.SIGKILL)
    release(tmp_path)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "MaxWaitTimeExceeded"), desc
    assert "MaxWaitTimeExceeded" in desc["FailureReason"]
    assert "Interrupted" in [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert desc["BillableTimeInSeconds"] < desc["TrainingTimeInSeconds"]


# ---- kernel, through a kernel gateway, checkpoints in S3 -------------------------------------------


@pytest.fixture(scope="module")
def s3(s3_endpoint, tmp_path_factory):
    """moto's S3 server's client, its credentials and endpoint in the environment (inherited by the
    job's processes and, through KG_ENV_PROCESS_WHITELIST, by the kernels a gateway starts)."""
    aws = aws_environment(s3_endpoint, tmp_path_factory.mktemp("aws"))
    with pytest.MonkeyPatch.context() as mp:
        for k, v in aws.items():
            mp.setenv(k, v)
        mp.setenv("KG_ENV_PROCESS_WHITELIST", ",".join(aws))
        import boto3
        import s3fs
        s3fs.S3FileSystem.clear_instance_cache()
        yield boto3.client("s3")
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def gateway(s3, tmp_path_factory):
    pytest.importorskip("kernel_gateway")
    pytest.importorskip("jupyter_client")
    gw = Gateway(tmp_path_factory.mktemp("gateway"))
    yield gw
    gw.stop()


@pytest.fixture
def bucket(s3) -> str:
    name = f"nbsage-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def s3_names(s3, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"][len(prefix):] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def parent(pid: int) -> int:
    """The parent of a live process (the tests read it while the stepper is held, so it is there)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except FileNotFoundError:
        raise AssertionError(f"process {pid} is gone: it ended before the test could kill what runs it") from None


@pytest.mark.parametrize("what", ["runtime", "kernel"])
def test_kernel_spot_job_killed_mid_run_resumes_from_s3(tmp_path, session, data, gateway, s3, bucket, what):
    """The runtime in the kernel killed: the same kernel trains again. The kernel killed (the gateway
    restarts it, empty): a new kernel gets the job root and the checkpoints from S3 and trains again."""
    uri = f"s3://{bucket}/ckpt/"
    est = stepper_estimator(tmp_path, session, uri, backend="kernel", gateway=gateway.url, kernel="python3")
    job = est.fit({"train": str(data)}, wait=False)
    wait_for(lambda: synced_step(s3_names(s3, bucket, "ckpt/"), "algo-1") >= 3, what="synced checkpoints in S3")
    _, runtime = pids(tmp_path, "algo-1")
    if what == "runtime":
        os.killpg(runtime, signal.SIGKILL)
    else:
        kernel = parent(runtime)
        assert "ipykernel" in Path(f"/proc/{kernel}/cmdline").read_text()
        os.kill(kernel, signal.SIGKILL)
    release(tmp_path)
    desc = job.wait_quietly(timeout=TIMEOUT)
    check_resumed(desc, job.logs(), ["algo-1"])
    interrupted = next(t for t in desc["SecondaryStatusTransitions"] if t["Status"] == "Interrupted")
    assert ("SIGKILL" if what == "runtime" else "kernel") in interrupted["StatusMessage"], interrupted
    assert s3_names(s3, bucket, "ckpt/") == ["algo-1-state.json", "algo-1-step-29"]
    if what == "kernel":
        assert any(line.startswith("Restarting on a new Jupyter kernel") for line in job.logs()), job.logs()
        wait_for(lambda: gateway.kernels() == [], 60, "the job's kernels to be shut down")


# ---- dask, a LocalCluster of 2 workers --------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                           silence_logs=logging.ERROR,
                           env={"NBSAGE_STOP_GRACE_SECONDS": "1", "NBSAGE_CHECKPOINT_SYNC_SECONDS": "0.1"})
    yield cluster
    cluster.close()


@pytest.mark.parametrize("what", ["runtime", "worker"])
def test_dask_spot_job_killed_mid_run_resumes_every_host(tmp_path, session, data, cluster, what):
    """A host's runtime killed, or the Dask worker that runs it: every host is stopped, the job waits
    for two workers again (the nanny restarts a killed one) and every host resumes from the URI."""
    remote = tmp_path / "ckpt"  # a path both workers see (the LocalCluster runs on this machine)
    est = stepper_estimator(tmp_path, session, str(remote), backend="dask", scheduler=cluster.scheduler_address,
                            instance_count=2)
    job = est.fit({"train": str(data)}, wait=False)
    hosts = ["algo-1", "algo-2"]

    def names() -> list[str]:
        return sorted(p.name for p in remote.iterdir()) if remote.exists() else []

    wait_for(lambda: all(synced_step(names(), h) >= 3 for h in hosts), what="both hosts' synced checkpoints")
    _, runtime = pids(tmp_path, "algo-2")
    if what == "runtime":
        os.killpg(runtime, signal.SIGKILL)
    else:
        os.kill(parent(runtime), signal.SIGKILL)  # the Dask worker that runs algo-2
    release(tmp_path)
    desc = job.wait_quietly(timeout=TIMEOUT)
    check_resumed(desc, job.logs(), hosts)
    interrupted = next(t for t in desc["SecondaryStatusTransitions"] if t["Status"] == "Interrupted")
    assert "algo-2" in interrupted["StatusMessage"], interrupted
    assert ("SIGKILL" if what == "runtime" else "left the cluster") in interrupted["StatusMessage"], interrupted
    assert names() == ["algo-1-state.json", "algo-1-step-29", "algo-2-state.json", "algo-2-step-29"]
    cluster.wait_for_workers(2, timeout=60)
