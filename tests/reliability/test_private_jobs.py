"""The job's own code cannot reach the store or another job, and may run as an unprivileged user.

Processing and script-mode code runs in a mount namespace in which NBSAGE_HOME is an empty tmpfs
with only this job's root bound back: a script that tries to write the store (nbsage.db) and
another job's root fails to, and both are unchanged afterwards. With NBSAGE_JOB_USER (when nbsage
runs as root) the script runs as that user and the job still completes with its outputs uploaded.
"""
from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from nbsage.estimator import Estimator
from nbsage.processing import ProcessingOutput, ScriptProcessor
from nbsage.session import Session

# tries every way in and records what happened; never fails itself, so the job's outcome is not the test
INTRUDER = """
    import json, os, sqlite3, sys

    def attempt(what, action):
        try:
            action()
            return "done"
        except Exception as e:
            return f"{type(e).__name__}: {e}"

    def append(path, text):
        with open(path, "a") as f:
            f.write(text)

    def create(path, text):
        with open(path, "w") as f:
            f.write(text)

    def table(db):
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE pwned (x)")
        conn.commit()

    home, other, out = sys.argv[1], sys.argv[2], sys.argv[3]
    db = os.path.join(home, "nbsage.db")
    results = {
        "store_append": attempt("store", lambda: append(db, "garbage")),
        "store_table": attempt("store", lambda: table(db)),
        "other_change": attempt("other", lambda: append(os.path.join(other, "secret.txt"), "changed")),
        "other_create": attempt("other", lambda: create(os.path.join(other, "pwned.txt"), "x")),
        "home_sees": sorted(os.listdir(home)) if os.path.isdir(home) else None,
        "uid": os.getuid(),
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f)
"""


@pytest.fixture
def other_job(nbsage_home) -> Path:
    """The store exists and holds a job; another job's root holds a file."""
    Session.default().store.list_jobs()
    other = Path(nbsage_home) / "jobs" / "other-job" / "opt_ml"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("keep")
    return other


def assert_untouched(home: Path, other: Path, results: dict) -> None:
    assert results["store_append"] != "done" and results["store_table"] != "done", results
    assert results["other_change"] != "done" and results["other_create"] != "done", results
    assert (other / "secret.txt").read_text() == "keep"
    assert not (other / "pwned.txt").exists()
    conn = sqlite3.connect(home / "nbsage.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "pwned" not in tables
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert not (home / "nbsage.db").read_bytes().endswith(b"garbage")
    assert "nbsage.db" not in (results["home_sees"] or [])


def run_processing(tmp_path: Path, home: Path, other: Path, python: str = "python3") -> tuple[dict, dict]:
    script = tmp_path / "intrude.py"
    script.write_text(textwrap.dedent(INTRUDER))
    out = "/opt/ml/processing/output/out"
    job = ScriptProcessor(command=[python]).run(
        code=str(script), outputs=[ProcessingOutput(out, str(tmp_path / "out"), output_name="out")],
        arguments=[str(home), str(other), out], logs=False)
    desc = job.describe()
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    return json.loads((tmp_path / "out" / "results.json").read_text()), desc


def run_script_mode(tmp_path: Path, home: Path, other: Path, python: str | None = None) -> tuple[dict, dict]:
    """`python`: run the script with that interpreter from a shell entry point (train.sh) instead of
    nbsage's own, which the job user may not be able to reach."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent(INTRUDER) + textwrap.dedent("""
        with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "uid.txt"), "w") as f:
            f.write(str(os.getuid()))
    """))
    if python:
        (src / "train.sh").write_text(f'exec {python} train.py "$@"\n')
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.csv").write_text("1,2\n")
    est = Estimator(entry_point="train.sh" if python else "train.py", source_dir=str(src), sagemaker_session=Session.default(),
                    hyperparameters={"home": str(home), "other": str(other)}, output_path=str(tmp_path / "bucket"))
    # the script reads its paths as positional arguments: sys.argv is --home H --other O --out-dir D
    (src / "train.py").write_text((src / "train.py").read_text().replace(
        "home, other, out = sys.argv[1], sys.argv[2], sys.argv[3]",
        "home, other, out = sys.argv[2], sys.argv[4], os.environ['SM_MODEL_DIR']"))
    job = est.fit(str(data), logs=False)
    desc = job.describe()
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    with tarfile.open(desc["ModelArtifacts"]["S3ModelArtifacts"]) as tar:
        results = json.load(tar.extractfile("results.json"))
    output = Path(str(tmp_path / "bucket"), job.name, "output", "output.tar.gz")
    with tarfile.open(output) as tar:
        results["uploaded_uid"] = int(tar.extractfile("uid.txt").read())
    return results, desc


def test_a_processing_job_cannot_write_the_store_or_another_jobs_root(tmp_path, nbsage_home, other_job):
    results, _ = run_processing(tmp_path, Path(nbsage_home), other_job)
    assert_untouched(Path(nbsage_home), other_job, results)


def test_a_script_mode_job_cannot_write_the_store_or_another_jobs_root(tmp_path, nbsage_home, other_job):
    results, _ = run_script_mode(tmp_path, Path(nbsage_home), other_job)
    assert_untouched(Path(nbsage_home), other_job, results)
    assert results["home_sees"] == ["jobs"]  # the job's own root only, through an otherwise empty home


SYSTEM_PYTHON = "/usr/bin/python3"


def _nobody(monkeypatch) -> int:
    """nobody's uid, with NBSAGE_JOB_USER=nobody; skips where that cannot be tested."""
    if os.geteuid() != 0:
        pytest.skip("NBSAGE_JOB_USER applies where nbsage runs as root; these tests run as another user")
    uid = pwd.getpwnam("nobody").pw_uid
    # nbsage's interpreter may sit where nobody cannot reach it (here: under /root); the job's code
    # runs with the system's python3, as a container's script runs with the image's interpreter
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import sqlite3"], capture_output=True,
                           user=uid, group=pwd.getpwnam("nobody").pw_gid, extra_groups=[], cwd="/")
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run {SYSTEM_PYTHON} with sqlite3 here")
    monkeypatch.setenv("NBSAGE_JOB_USER", "nobody")
    return uid


def test_a_script_mode_job_runs_as_the_job_user_and_its_outputs_are_uploaded(tmp_path, nbsage_home, other_job,
                                                                              monkeypatch):
    uid = _nobody(monkeypatch)
    results, _ = run_script_mode(tmp_path, Path(nbsage_home), other_job, python=SYSTEM_PYTHON)
    assert results["uid"] == uid and results["uploaded_uid"] == uid
    assert_untouched(Path(nbsage_home), other_job, results)


def test_a_processing_job_runs_as_the_job_user_and_its_outputs_are_uploaded(tmp_path, nbsage_home, other_job,
                                                                             monkeypatch):
    uid = _nobody(monkeypatch)
    results, _ = run_processing(tmp_path, Path(nbsage_home), other_job, python=SYSTEM_PYTHON)
    assert results["uid"] == uid
    assert_untouched(Path(nbsage_home), other_job, results)


def test_an_unknown_job_user_fails_the_job_naming_the_setting(tmp_path, nbsage_home, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("NBSAGE_JOB_USER applies where nbsage runs as root; these tests run as another user")
    monkeypatch.setenv("NBSAGE_JOB_USER", "nbsage-no-such-user")
    script = tmp_path / "p.py"
    script.write_text("print('ran')\n")
    job = ScriptProcessor(command=["python3"]).run(code=str(script), logs=False, wait=False)
    desc = job.wait_quietly(timeout=60)
    assert desc["ProcessingJobStatus"] == "Failed"
    assert "NBSAGE_JOB_USER='nbsage-no-such-user'" in desc["FailureReason"]


def test_a_fastfile_channel_linked_into_the_home_stays_readable_and_read_only(tmp_path, nbsage_home):
    """FastFile channels of local sources are symlinks; data uploaded to the default artifact root
    lies in NBSAGE_HOME, which the job does not see: the linked folders are bound back, read-only."""
    from nbsage.data import upload_data
    from nbsage.inputs import TrainingInput
    session = Session.default()
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.csv").write_text("1,2\n")
    uri = upload_data(str(data), session=session)
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import os
        channel = os.environ["SM_CHANNEL_TRAIN"]
        name = sorted(os.listdir(channel))[0]
        text = open(os.path.join(channel, name)).read()
        try:
            open(os.path.join(channel, name), "a").write("changed")
            wrote = "done"
        except OSError as e:
            wrote = type(e).__name__
        open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.txt"), "w").write(text + "|" + wrote)
    """))
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session,
                    output_path=str(tmp_path / "bucket")).fit(
        {"train": TrainingInput(uri, input_mode="FastFile")}, logs=False)
    desc = job.describe()
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    with tarfile.open(desc["ModelArtifacts"]["S3ModelArtifacts"]) as tar:
        seen = tar.extractfile("seen.txt").read().decode()
    assert seen == "1,2\n|OSError"
    assert next(p for p in Path(nbsage_home).rglob("d.csv") if "jobs" not in p.parts).read_text() == "1,2\n"


def test_a_job_user_without_a_view_of_its_own_fails_the_job_saying_why(tmp_path, nbsage_home, monkeypatch):
    _nobody(monkeypatch)
    monkeypatch.setenv("NBSAGE_PROCESSING_ISOLATION", "none")
    script = tmp_path / "p.py"
    script.write_text("print('ran')\n")
    job = ScriptProcessor(command=[SYSTEM_PYTHON]).run(code=str(script), logs=False, wait=False)
    desc = job.wait_quietly(timeout=60)
    assert desc["ProcessingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: NBSAGE_JOB_USER=nobody needs a private /opt/ml")
    assert "NBSAGE_PROCESSING_ISOLATION=none" in desc["FailureReason"]
