"""The local place's pre-warmed runtime (nbsage.backends.zygote): a job forked from it is the job a
fresh interpreter would have run — same model and logs, stop and kill end it as before, no variable
of one job reaches the next, the user's script imports its modules fresh — and it is not used when
off, absent or stale.
"""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from nbsage.backends import zygote
from nbsage.estimator import Estimator
from nbsage.store.metadata import pid_alive
from support import wait_for

GRACE = 1
SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": str(GRACE)}  # read by conftest's session fixture
FORKED = "forked from the pre-warmed runtime"
TIMEOUT = 60

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the zygote is Linux only")


def _launch_env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1")  # what SupervisedBackend.start hands on


@pytest.fixture
def warm(session):
    """The zygote for this test's environment, up and listening."""
    path = zygote.socket_for(_launch_env())
    if path is None:
        pytest.skip("no private folder for the zygote's socket here")
    zygote.start(_launch_env())
    wait_for(path.exists, 90, "the zygote to listen")
    return path


def forked(session, job_name: str) -> bool:
    return FORKED in (session.jobs_dir / job_name / "supervisor.log").read_text()


def prepared_runtime(session, job_name: str) -> bool:
    """Whether the job's runtime is the one its supervisor forked ahead of time: its command line was
    written over the zygote's longer one (nbsage.backends.proc_title), so NULs pad it."""
    pid = session.store.get_job(job_name)["runtime_pid"]
    return Path(f"/proc/{pid}/cmdline").read_bytes().endswith(b"\0\0")


def script(tmp_path: Path, body: str) -> Path:
    src = tmp_path / f"src-{time.monotonic_ns()}"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent(body))
    return src


def _model_bytes(job) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(Path(job.model_data.removeprefix("file://")).read_bytes())) as tar:
        return tar.extractfile("xgboost-model").read()


def _logs(session, job) -> list[str]:
    lines = [line for _, _, line in session.store.get_logs(job.name, 0)]
    return [re.sub(r"\d+\.\d+ s\b", "T s", line) for line in lines]  # timings differ, nothing else may


def test_a_forked_job_trains_the_same_model_with_the_same_logs_as_a_fresh_interpreter(
        session, warm, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.random((200, 5))
    y = (X[:, 0] + X[:, 1] > 1).astype(float)
    est = Estimator("xgboost", hyperparameters={"num_round": 3, "objective": "binary:logistic", "max_depth": 3,
                                                 "nthread": 2}, sagemaker_session=session)
    forked_job = est.fit({"train": (X, y), "validation": (X, y)}, logs=False)
    assert forked(session, forked_job.name)
    monkeypatch.setenv(zygote.ENABLED_ENV, "0")
    fresh_job = est.fit({"train": (X, y), "validation": (X, y)}, logs=False)
    assert not forked(session, fresh_job.name)
    for job in (forked_job, fresh_job):
        assert job.describe()["TrainingJobStatus"] == "Completed"
    assert _model_bytes(forked_job) == _model_bytes(fresh_job)
    assert _logs(session, forked_job) == _logs(session, fresh_job)
    finals = [{m["MetricName"]: m["Value"] for m in job.describe()["FinalMetricDataList"]}
              for job in (forked_job, fresh_job)]
    assert finals[0] == finals[1] and "validation:logloss" in finals[0]


HELD = """
    import os, signal, sys, time
    {ignore}
    seen = sorted(m for m in ("xgboost", "pyarrow", "nbsage") if m in sys.modules)
    print("modules before the script's imports:", seen, flush=True)
    print("leak:", os.environ.get("LEAK_CHECK"), flush=True)
    open(os.path.join(os.environ["SM_MODEL_DIR"], "pid"), "w").write(str(os.getpid()))
    r = os.open({fifo!r}, os.O_RDONLY)  # blocks until the test opens it for writing
    os.read(r, 1)
"""


def start_held(tmp_path, session, data, ignore_sigterm=False, **estimator_args):
    fifo = tmp_path / f"fifo-{time.monotonic_ns()}"
    os.mkfifo(fifo)
    src = script(tmp_path, HELD.format(fifo=str(fifo), ignore="signal.signal(signal.SIGTERM, signal.SIG_IGN)"
                                       if ignore_sigterm else ""))
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session,
                    **estimator_args).fit(data, wait=False)
    model_dir = Path(session.store.get_job(job.name)["root"]) / "model"
    wait_for(lambda: (model_dir / "pid").exists() and (model_dir / "pid").read_text(), TIMEOUT, "the script to run")
    return job, int((model_dir / "pid").read_text()), fifo


def test_stop_of_a_forked_job_ends_it_stopped_and_kill_of_its_runtime_ends_it_failed(
        tmp_path, session, data, warm):
    job, script_pid, _ = start_held(tmp_path, session, data, ignore_sigterm=True)
    assert forked(session, job.name)
    job.stop()
    desc = job.wait_quietly(timeout=TIMEOUT)  # SIGTERM ignored: SIGKILL of the group after the grace period
    assert desc["TrainingJobStatus"] == "Stopped" and desc["SecondaryStatus"] == "Stopped"
    wait_for(lambda: not pid_alive(script_pid), 10, "the script to be killed")

    job, script_pid, _ = start_held(tmp_path, session, data)
    assert forked(session, job.name) and prepared_runtime(session, job.name)
    runtime_pid = session.store.get_job(job.name)["runtime_pid"]
    cmdline = Path(f"/proc/{runtime_pid}/cmdline").read_bytes().split(b"\0")
    assert b"nbsage.runtime" in cmdline and b"--root" in cmdline  # what kill_runtime_group checks
    for pid in (runtime_pid, session.store.get_job(job.name)["supervisor_pid"]):  # what a clean-up reads
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"NBSAGE_HOME={session.stores.home}".encode() in environ
    assert os.getpgid(runtime_pid) == runtime_pid  # its own process group
    os.kill(runtime_pid, signal.SIGKILL)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed" and "SIGKILL" in desc["FailureReason"]
    wait_for(lambda: not pid_alive(script_pid), 10, "the script to go with its runtime")


def test_a_variable_of_one_forked_job_is_not_seen_by_the_next_and_the_script_imports_fresh(
        tmp_path, session, data, warm):
    logs = []
    for environment in ({"LEAK_CHECK": "first"}, {}):
        job, _, fifo = start_held(tmp_path, session, data, environment=environment)
        assert forked(session, job.name) and prepared_runtime(session, job.name)
        with open(fifo, "wb") as f:
            f.write(b"x")
        assert job.wait_quietly(timeout=TIMEOUT)["TrainingJobStatus"] == "Completed"
        logs.append("\n".join(line for _, _, line in session.store.get_logs(job.name, 0)))
    assert "leak: first" in logs[0] and "leak: None" in logs[1]
    # the runtime had xgboost and pyarrow imported; the script, a fresh interpreter, has none of them
    assert "modules before the script's imports: []" in logs[0]


def test_no_zygote_is_used_when_turned_off_absent_failed_or_started_for_other_code(tmp_path, session, data):
    env = _launch_env()
    log = os.open(os.devnull, os.O_WRONLY)
    try:
        args = ["job", "local_supervisor"]
        assert zygote.launch("nbsage.backends.local_supervisor", args, dict(env, NBSAGE_ZYGOTE="0"), log, 0o077) is None
        assert zygote.launch("nbsage.backends.kernel_supervisor", args, env, log, 0o077) is None  # not a local job
        # another import-time setting is another zygote: none runs for it yet, the fresh interpreter is used
        other = dict(env, OMP_NUM_THREADS="1", NBSAGE_ZYGOTE_TEST=str(time.monotonic_ns()))
        path = zygote.socket_for(other)
        assert path != zygote.socket_for(env)
        path.with_suffix(".failed").write_text("test: marked failed\n")  # a failed start is not retried
        try:
            assert zygote.launch("nbsage.backends.local_supervisor", args, other, log, 0o077) is None
            assert not path.with_suffix(".log").exists()
        finally:
            path.with_suffix(".failed").unlink()
    finally:
        os.close(log)
    # a zygote whose code is not what it was started for (a changed file) refuses to serve
    folder = zygote.socket_folder()
    stale = folder / f"stale-{time.monotonic_ns()}.sock"
    from nbsage.backends.proc_title import padding
    done = subprocess.run([sys.executable, "-m", zygote.MODULE, str(stale), "0" * 24, str(zygote._nbsage_dir()),
                           padding()], env=dict(env, **zygote.import_environment(env)), capture_output=True,
                          text=True, timeout=120, cwd=str(zygote._nbsage_dir().parent))
    try:
        assert done.returncode == 1 and not stale.exists()
        assert "fingerprint differs" in stale.with_suffix(".failed").read_text()
    finally:
        for suffix in (".failed", ".lock"):
            stale.with_suffix(suffix).unlink(missing_ok=True)


def test_the_fingerprint_changes_with_nbsage_code_and_import_time_variables(tmp_path):
    copy = tmp_path / "nbsage"
    copy.mkdir()
    (copy / "__init__.py").write_text("")
    (copy / "module.py").write_text("x = 1\n")
    env = {"PATH": "/usr/bin", "NBSAGE_HOME": "/a"}
    first = zygote.fingerprint(env, copy)
    assert zygote.fingerprint(dict(env, NBSAGE_HOME="/b"), copy) == first  # read per job, not at import
    assert zygote.fingerprint(dict(env, OMP_NUM_THREADS="1"), copy) != first
    assert zygote.fingerprint(dict(env, NBSAGE_STOP_GRACE_SECONDS="3"), copy) != first  # a module constant
    (copy / "module.py").write_text("x = 22\n")
    assert zygote.fingerprint(env, copy) != first


def test_an_idle_zygote_exits_and_takes_its_socket_with_it(session):
    env = dict(_launch_env(), NBSAGE_ZYGOTE_TEST=str(time.monotonic_ns()), NBSAGE_ZYGOTE_IDLE_SECONDS="1")
    path = zygote.socket_for(env)
    zygote.start(env)
    wait_for(path.exists, 90, "the zygote to listen")
    wait_for(lambda: not path.exists() and not path.with_suffix(".lock").exists(), 60, "the idle zygote to exit")
