"""The store under faults: nothing stays stuck, nothing comes out raw.

A full NBSAGE_HOME while a channel is staged fails the job with a reason naming NBSAGE_HOME as soon
as the store accepts writes again (the supervisor waits for it instead of dying), and reading jobs
works meanwhile; a read-only NBSAGE_HOME still answers `nbsage jobs`, `describe` and `logs` and
refuses a new job with a StoreError naming it; a job whose supervisor is SIGKILLed is marked
Failed by the background reconciler without anyone reading it.

The full and read-only homes are real file systems: a small tmpfs and a read-only bind mount (the
tests run as root, which ignores file modes). Where mounting is not permitted they are skipped.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nbsage.errors import StoreError
from nbsage.estimator import Estimator
from nbsage.session import Session
from nbsage.store.metadata import pid_alive
from support import wait_for

TIMEOUT = 120


def _mount(*args: str) -> str | None:
    """Run mount; None when it worked, else why not (for the skip)."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited with {done.returncode}")


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@pytest.fixture
def mounted(request):
    """Folders mounted by the test, unmounted afterwards (lazily: a process may still hold a file)."""
    folders: list[Path] = []
    yield folders
    for folder in reversed(folders):
        _umount(folder)


def script(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(body))
    return src


def cli(home: Path, *words: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NBSAGE_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "nbsage.cli", *words], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT)


def assert_not_raw(result: subprocess.CompletedProcess) -> None:
    text = result.stdout + result.stderr
    assert "Traceback" not in text and "sqlite3." not in text, text


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


# ---- (a) a full NBSAGE_HOME ---------------------------------------------------------------------------
def test_a_full_home_while_a_channel_is_staged_fails_the_job_once_space_returns(tmp_path, monkeypatch, mounted):
    home = tmp_path / "small-home"
    home.mkdir()
    why = _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(home))
    if why:
        pytest.skip(f"a small tmpfs cannot be mounted here: {why}")
    mounted.append(home)
    monkeypatch.setenv("NBSAGE_HOME", str(home))
    session = Session()
    filler = home / "filler"  # the space the test gives back once the home is full
    filler.write_bytes(b"\0" * (1024 * 1024))
    data = tmp_path / "big"
    data.mkdir()
    with open(data / "train.csv", "w") as f:  # 8 MB: more than the home has
        row = "1," * 63 + "1\n"
        f.write(row * (8 * 1024 * 1024 // len(row)))
    src = script(tmp_path, "print('never reached', flush=True)\n")
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session).fit(
        str(data), wait=False)

    def full_or_ended() -> bool:
        return free_bytes(home) < 64 * 1024 or session.store.get_job(job.name)["status"] != "InProgress"

    wait_for(full_or_ended, TIMEOUT, "the home to fill up while the channel is staged")
    # while it is full, reading the job and listing jobs work, from this process and the CLI
    assert job.describe()["TrainingJobStatus"] in ("InProgress", "Failed")
    listed = cli(home, "jobs")
    assert_not_raw(listed)
    assert listed.returncode == 0 and job.name in listed.stdout
    described = cli(home, "describe", job.name)
    assert_not_raw(described)
    assert described.returncode == 0

    filler.unlink()  # space returns: the supervisor records the failure it kept pending
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed", desc
    reason = desc["FailureReason"]
    assert "NBSAGE_HOME" in reason and str(home) in reason and "full" in reason, reason
    assert "ended unexpectedly" not in reason


# ---- (b) a read-only NBSAGE_HOME ----------------------------------------------------------------------
def test_a_read_only_home_answers_jobs_describe_and_logs_and_refuses_new_jobs_by_name(tmp_path, monkeypatch,
                                                                                        mounted, data):
    home = tmp_path / "ro-home"
    monkeypatch.setenv("NBSAGE_HOME", str(home))
    src = script(tmp_path, "print('hello from the job', flush=True)\n")
    session = Session()
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session).fit(
        str(data), wait=False)
    assert job.wait_quietly(timeout=TIMEOUT)["TrainingJobStatus"] == "Completed"
    del session, job
    empty = tmp_path / "ro-empty-home"  # a read-only home that holds no store yet
    empty.mkdir()
    name = Session(home).store.list_jobs()[0]["name"]
    for folder in (home, empty):
        folder.chmod(0o555)
        why = _mount("--bind", str(folder), str(folder))
        if why:
            pytest.skip(f"a read-only bind mount cannot be made here: {why}")
        mounted.append(folder)
        why = _mount("-o", "remount,bind,ro", str(folder))
        if why:
            pytest.skip(f"a bind mount cannot be remounted read-only here: {why}")

    listed = cli(home, "jobs")
    assert_not_raw(listed)
    assert listed.returncode == 0 and name in listed.stdout and "Completed" in listed.stdout
    described = cli(home, "describe", name)
    assert_not_raw(described)
    assert described.returncode == 0 and "Completed" in described.stdout
    logs = cli(home, "logs", name)
    assert_not_raw(logs)
    assert logs.returncode == 0 and "hello from the job" in logs.stdout
    for nothing in (cli(empty, "jobs"), cli(empty / "not-made-yet", "jobs")):
        assert_not_raw(nothing)
        assert nothing.returncode == 0

    # an Estimator can be made; a new job is refused with one error naming the home and the cause
    session = Session(home)
    assert session.store.read_only
    est = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session)
    with pytest.raises(StoreError) as refused:
        est.fit(str(data), wait=False)
    assert refused.value.cause == "read-only"
    assert str(home) in str(refused.value) and "read-only" in str(refused.value)
    made = subprocess.run([sys.executable, "-c", "from nbsage import Estimator; Estimator('xgboost'); print('made')"],
                          capture_output=True, text=True, env=dict(os.environ, NBSAGE_HOME=str(home)), timeout=TIMEOUT)
    assert made.returncode == 0 and "made" in made.stdout, made.stderr


# ---- (c) the background reconciler --------------------------------------------------------------------
def test_a_job_whose_supervisor_is_killed_is_marked_failed_without_being_read(tmp_path, session, data):
    marker = tmp_path / "started"
    src = script(tmp_path, f"""
        import pathlib, signal
        pathlib.Path({str(marker)!r}).write_text("x")
        signal.alarm(600)  # a backstop should the test stop without ending it
        signal.pause()  # until the job is ended
    """)
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session).fit(
        str(data), wait=False)
    name = job.name
    del job
    wait_for(marker.exists, TIMEOUT, "the script to start")
    db = session.home / "nbsage.db"

    def row() -> dict:  # the store's row, read past nbsage (a read through nbsage would reconcile it)
        conn = sqlite3.connect(db, timeout=30)
        try:
            status, reason, supervisor = conn.execute(
                "SELECT status, failure_reason, supervisor_pid FROM jobs WHERE name = ?", (name,)).fetchone()
        finally:
            conn.close()
        return {"status": status, "reason": reason, "supervisor": supervisor}

    supervisor = row()["supervisor"]
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(supervisor), 30, "the supervisor to be gone")
    killed_at = time.monotonic()
    ended = wait_for(lambda: (r := row())["status"] != "InProgress" and r, TIMEOUT,
                     "the reconciler to mark the job Failed")
    assert ended["status"] == "Failed"
    assert "ended unexpectedly" in ended["reason"]
    print(f"reconciled {time.monotonic() - killed_at:.1f} s after the supervisor died")
