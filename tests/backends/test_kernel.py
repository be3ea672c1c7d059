"""The kernel place against a real Jupyter Kernel Gateway on loopback, a local kernelspec and a
running kernel's connection file.

The gateway runs in a folder of its own, with its own HOME and none of the notebook's NBSAGE_*
settings; its kernels get only PATH (a gateway passes only KERNEL_* variables). The job root on
the kernel's side is in that folder, so channels reach it through the kernel connection and
model.tar.gz comes back the same way into the notebook's artifact store.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from nbsage.backends.kernel import PLACE_FILE
from nbsage.errors import PlaceError
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.store.metadata import pid_alive
from support import Gateway, wait_for

pytest.importorskip("kernel_gateway")
pytest.importorskip("jupyter_client")

TIMEOUT = 60
GRACE = 1
SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": str(GRACE)}  # read by conftest's session fixture


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "notebook-data"
    folder.mkdir()
    (folder / "train.csv").write_text("1,2\n3,4\n5,6\n")
    return folder


SCRIPT = """
import os, sys, time
channel = os.environ["SM_CHANNEL_TRAIN"]
text = open(os.path.join(channel, "train.csv")).read()
print("channel at", channel, flush=True)
print("pid", os.getpid(), flush=True)
for epoch in range({epochs}):
    print(f"epoch {{epoch}} loss={{1.0 / (epoch + 1):.4f}}", flush=True)
    time.sleep({sleep})
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write("sum=%d" % sum(int(v) for v in text.replace(",", " ").split()))
"""


def script_estimator(tmp_path, session, epochs=2, sleep=0.0, **place) -> Estimator:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(SCRIPT.format(epochs=epochs, sleep=sleep)))
    return Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session,
                     metric_definitions=[{"Name": "train:loss", "Regex": r"loss=([0-9.]+)"}], **place)


def log_value(job, prefix: str) -> str | None:
    return next((line[len(prefix):].strip() for line in job.logs() if line.startswith(prefix)), None)


def model_files(session, uri: str) -> dict:
    assert uri.startswith(str(session.artifacts.root)), uri
    with tarfile.open(uri) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_script_job_through_a_kernel_gateway_streams_logs_and_metrics_and_brings_the_model_back(
        tmp_path, session, data, gateway):
    est = script_estimator(tmp_path, session, epochs=3, sleep=0.7, backend="kernel", gateway=gateway.url,
                           kernel="python3")
    job = est.fit(data, wait=False)
    # logs and metrics reach the store while the job still runs in the kernel
    wait_for(lambda: job.status == "InProgress" and len(job.metrics()) >= 1, what="a metric while running")
    assert job.describe()["SecondaryStatus"] == "Training"
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert [round(m, 4) for m in job.metrics()["value"]] == [1.0, 0.5, 0.3333]
    assert model_files(session, desc["ModelArtifacts"]["S3ModelArtifacts"]) == {"model.txt": b"sum=21"}
    # the data reached the kernel through the connection: its job root is in the gateway's folder
    channel = log_value(job, "channel at")
    assert channel.startswith(str(gateway.folder)) and str(session.home) not in channel
    assert any(f"on the kernel gateway {gateway.url}" in line for line in job.logs())
    # the kernel started for the job is shut down, and its host keeps nothing of the job
    wait_for(lambda: gateway.kernels() == [], 10, "the job's kernel to be shut down")
    assert not Path(channel).exists()


def test_xgboost_job_through_a_kernel_gateway_completes_with_its_model_in_the_local_store(
        tmp_path, session, gateway):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    path = tmp_path / "train.csv"
    np.savetxt(path, np.column_stack([y, X]), delimiter=",", fmt="%.6g")
    est = Estimator("xgboost", {"num_round": 5, "objective": "binary:logistic", "max_depth": 2},
                    sagemaker_session=session, backend="kernel", gateway=gateway.url, kernel="python3")
    job = est.fit({"train": TrainingInput(str(path), content_type="text/csv")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert "xgboost-model" in model_files(session, desc["ModelArtifacts"]["S3ModelArtifacts"])
    assert job.final_metrics()["train:logloss"] < 0.6
    assert any(line.startswith("[4]\ttrain-logloss") for line in job.logs())


def test_stop_interrupts_the_job_in_the_kernel_and_ends_it_stopped(tmp_path, session, data, gateway):
    est = script_estimator(tmp_path, session, epochs=1, sleep=60, backend="kernel", gateway=gateway.url,
                           kernel="python3")
    job = est.fit(data, wait=False)
    pid = int(wait_for(lambda: log_value(job, "pid"), what="the script to start"))
    started = time.monotonic()
    job.stop()
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert time.monotonic() - started < GRACE + 15
    wait_for(lambda: not pid_alive(pid), 10, "the script in the kernel to end")
    assert "ModelArtifacts" not in desc or not desc["ModelArtifacts"]


def test_a_kernel_shut_down_mid_job_fails_the_job_naming_the_kernel(tmp_path, session, data, gateway):
    est = script_estimator(tmp_path, session, epochs=1, sleep=60, backend="kernel", gateway=gateway.url,
                           kernel="python3")
    job = est.fit(data, wait=False)
    pid = int(wait_for(lambda: log_value(job, "pid"), what="the script to start"))
    (kernel,) = gateway.kernels()
    requests.delete(f"{gateway.url}/api/kernels/{kernel['id']}", timeout=10)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed"
    assert kernel["id"] in desc["FailureReason"] and gateway.url in desc["FailureReason"]
    assert "kernel" in desc["FailureReason"]
    wait_for(lambda: not pid_alive(pid), 10, "the script to die with its kernel")


def test_a_kernel_process_killed_mid_job_fails_the_job_naming_the_kernel(tmp_path, session, data, gateway):
    est = script_estimator(tmp_path, session, epochs=1, sleep=60, backend="kernel", gateway=gateway.url,
                           kernel="python3")
    job = est.fit(data, wait=False)
    pid = int(wait_for(lambda: log_value(job, "pid"), what="the script to start"))
    kernel_pid = parent(parent(pid))  # script <- runtime <- kernel
    assert "ipykernel" in Path(f"/proc/{kernel_pid}/cmdline").read_text()
    os.kill(kernel_pid, signal.SIGKILL)  # the gateway restarts it: the job is gone with the old one
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "Jupyter kernel 'python3'" in desc["FailureReason"] and gateway.url in desc["FailureReason"]
    assert "died" in desc["FailureReason"] or "gone" in desc["FailureReason"]
    wait_for(lambda: not pid_alive(pid), 10, "the script to die with its kernel")


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_dead_supervisor_fails_the_job_when_looked_at_and_releases_the_gateway_kernel(
        tmp_path, session, data, gateway):
    est = script_estimator(tmp_path, session, epochs=1, sleep=60, backend="kernel", gateway=gateway.url,
                           kernel="python3")
    job = est.fit(data, wait=False)
    pid = int(wait_for(lambda: log_value(job, "pid"), what="the script to start"))
    supervisor = session.store.get_job(job.name)["supervisor_pid"]
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(supervisor), 10, "the supervisor to be gone")
    desc = job.describe()
    assert desc["TrainingJobStatus"] == "Failed"
    assert "ended unexpectedly" in desc["FailureReason"] and gateway.url in desc["FailureReason"]
    # this job's kernel (other tests' kernels on the module's gateway may still be closing)
    place = json.loads((session.jobs_dir / job.name / PLACE_FILE).read_text())
    wait_for(lambda: place["kernel_id"] not in [k["id"] for k in gateway.kernels()], 30,
             "the orphaned kernel to be shut down")
    wait_for(lambda: not pid_alive(pid), 30, "the script to end with its kernel")


PIPE_SCRIPT = """
import json, os
parent = os.path.dirname(os.environ["SM_CHANNEL_TRAIN"])
epochs = [open(os.path.join(parent, f"train_{epoch}"), "rb").read().decode() for epoch in range(2)]
with open(os.path.join(os.environ["SM_MODEL_DIR"], "epochs.json"), "w") as f:
    json.dump(epochs, f)
"""


def test_pipe_mode_channels_are_fed_into_fifos_on_the_kernels_side(tmp_path, session, gateway):
    import gzip
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(PIPE_SCRIPT)
    data = tmp_path / "pipe-data"
    data.mkdir()
    for name, text in (("a.csv.gz", "1,2\n"), ("b.csv.gz", "3,4\n")):
        with gzip.open(data / name, "wt") as f:
            f.write(text)
    jobs_there = gateway.folder / "pipe-jobs"
    est = Estimator(entry_point="train.py", source_dir=str(src), input_mode="Pipe", sagemaker_session=session,
                    backend="kernel", gateway=gateway.url, kernel="python3",
                    env={"KERNEL_NBSAGE_JOBS_DIR": str(jobs_there)})  # a gateway passes KERNEL_* on
    job = est.fit({"train": TrainingInput(str(data), compression="Gzip", content_type="text/csv")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert log_value(job, "Job root on the kernel's side:").startswith(str(jobs_there))
    epochs = json.loads(model_files(session, desc["ModelArtifacts"]["S3ModelArtifacts"])["epochs.json"])
    assert epochs == ["1,2\n3,4\n", "1,2\n3,4\n"]


def test_a_gateway_that_does_not_answer_is_a_clear_error_at_fit_naming_the_url(tmp_path, session, data):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    est = script_estimator(tmp_path, session, backend="kernel", gateway=url, kernel="python3")
    with pytest.raises(PlaceError, match=f"kernel gateway at {url} does not answer"):
        est.fit(data, wait=False)
    assert session.store.list_jobs() == []  # refused before anything was recorded


def test_nbsage_train_takes_the_kernel_place_options(tmp_path, session, data, capsys):
    from nbsage.cli import main
    script_estimator(tmp_path, session)  # writes the script
    rc = main(["train", "--entry-point", "train.py", "--source-dir", str(tmp_path / "src"), "--train", str(data),
               "--backend", "kernel", "--gateway", "http://127.0.0.1:9", "--kernel", "python3"])
    assert rc != 0
    assert "kernel gateway at http://127.0.0.1:9 does not answer" in capsys.readouterr().err


def test_an_unknown_kernel_name_is_refused_with_the_names_there_are(tmp_path, session, data, gateway):
    est = script_estimator(tmp_path, session, backend="kernel", gateway=gateway.url, kernel="pyhton3")
    with pytest.raises(PlaceError, match="has no kernel 'pyhton3'; did you mean 'python3'"):
        est.fit(data, wait=False)
    est = script_estimator(tmp_path, session, backend="kernel", kernel="no-such-kernel")
    with pytest.raises(PlaceError, match="no Jupyter kernelspec named 'no-such-kernel'"):
        est.fit(data, wait=False)


def test_a_local_kernelspec_runs_the_job_in_a_kernel_of_its_own(tmp_path, session, data):
    est = script_estimator(tmp_path, session, backend="kernel", kernel="python3")
    job = est.fit(data, wait=True, logs=False)
    desc = job.describe()
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["nbsage:Backend"] == "kernel"
    assert model_files(session, desc["ModelArtifacts"]["S3ModelArtifacts"]) == {"model.txt": b"sum=21"}
    assert any("local kernelspec" in line for line in job.logs())


def test_max_run_is_enforced_in_the_kernel_and_ends_the_job_stopped(tmp_path, session, data):
    est = script_estimator(tmp_path, session, epochs=1, sleep=60, backend="kernel", kernel="python3", max_run=2)
    desc = est.fit(data, wait=False).wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert "MaxRuntimeExceeded" in desc["FailureReason"]


def test_a_running_kernel_reached_by_its_connection_file_runs_the_job_and_keeps_running(tmp_path, session, data):
    from jupyter_client import KernelManager
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    try:
        est = script_estimator(tmp_path, session, backend="kernel", connection_file=km.connection_file)
        desc = est.fit(data, wait=False).wait_quietly(timeout=TIMEOUT)
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        assert km.is_alive()  # a kernel nbsage did not start is not shut down
    finally:
        km.shutdown_kernel(now=True)


def test_artifacts_go_through_the_store_when_it_is_a_url_the_kernel_reaches(tmp_path, session, data, gateway):
    # local:// is an fsspec URL that is not a notebook path: the kernel writes the artifacts itself
    output = f"local://{tmp_path / 'shared-store'}"
    est = script_estimator(tmp_path, session, backend="kernel", gateway=gateway.url, kernel="python3",
                           output_path=output)
    # a folder-backed fsspec filesystem, unlike an object store, needs the folder to exist
    (tmp_path / "shared-store" / "kernel-store-job" / "output").mkdir(parents=True)
    job = est.fit(data, wait=False, job_name="kernel-store-job")
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    uri = desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert uri.startswith(output)
    with tarfile.open(uri[len("local://"):]) as tar:
        assert tar.extractfile("model.txt").read() == b"sum=21"
    assert any(line.startswith("The kernel wrote the artifacts") for line in job.logs())


def test_sm_train_and_sm_places_reach_the_gateway(tmp_path, session, data, gateway, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython
    start_ipython()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbsage")
    ip.run_line_magic("config", "SageMakerMagics.wait = True")
    est = script_estimator(tmp_path, session)  # writes the script
    job = ip.run_line_magic("sm_train", f"--train {data} --entry-point train.py --source-dir {tmp_path / 'src'} "
                                        f"--backend kernel --gateway {gateway.url} --kernel python3")
    assert job.status == "Completed"
    assert job.describe()["nbsage:Backend"] == "kernel"
    places = ip.run_line_magic("sm_places", f"--backend kernel --gateway {gateway.url} --kernel python3")
    (place,) = places
    assert place["name"] == "kernel" and place["cpus"] == os.cpu_count() and place["gpus"] == 0
    assert place["memory_gib"] > 0 and gateway.url in place["where"]
    listed = ip.run_line_magic("sm_places", "")
    assert {"local", "kernel"} <= {p["name"] for p in listed}
    assert "local" in repr(listed) and "CPUs" in repr(listed)
    del est


def test_a_connection_that_drops_mid_job_fails_the_job_naming_the_gateway(tmp_path_factory, tmp_path, session, data):
    gw = Gateway(tmp_path_factory.mktemp("dropped-gateway"))
    try:
        est = script_estimator(tmp_path, session, epochs=1, sleep=60, backend="kernel", gateway=gw.url,
                               kernel="python3")
        job = est.fit(data, wait=False)
        pid = int(wait_for(lambda: log_value(job, "pid"), what="the script to start"))
        os.kill(gw.proc.pid, signal.SIGKILL)  # the gateway goes away without a word
        desc = job.wait_quietly(timeout=TIMEOUT)
        assert desc["TrainingJobStatus"] == "Failed"
        assert f"kernel gateway {gw.url}" in desc["FailureReason"]
        assert "cannot be reached" in desc["FailureReason"]
        wait_for(lambda: not pid_alive(pid), 15, "the script to end with its orphaned kernel")
    finally:
        gw.stop()
