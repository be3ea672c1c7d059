"""The local place with real processes: a detached supervisor per job, the runtime as its child.

A job never stays InProgress once its processes are gone (kill -9 of the runtime or of the
supervisor), stop and MaxRuntimeInSeconds end it Stopped (SIGKILL after the grace period for a
script that ignores SIGTERM), several jobs and processes share one NBSAGE_HOME safely, and
artifacts appear atomically wherever the artifact root is.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path


from nbsage.estimator import Estimator
from nbsage.session import Session
from nbsage.store.metadata import pid_alive
from nbsage.training_job import TrainingJob
from support import wait_for

GRACE = 1  # NBSAGE_STOP_GRACE_SECONDS in these tests
TIMEOUT = 30


SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": str(GRACE)}  # read by conftest's session fixture


def script(tmp_path: Path, body: str, name: str = "train.py") -> Path:
    src = tmp_path / f"src-{name.split('.')[0]}"
    src.mkdir(exist_ok=True)
    (src / name).write_text(textwrap.dedent(body))
    return src


def sleeper(tmp_path: Path, marker: Path, ignore_sigterm: bool = False) -> Path:
    """A script that records its pid in `marker` and then sleeps."""
    return script(tmp_path, f"""
        import os, signal, time
        {"signal.signal(signal.SIGTERM, signal.SIG_IGN)" if ignore_sigterm else ""}
        with open({str(marker)!r} + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace({str(marker)!r} + ".tmp", {str(marker)!r})
        print("sleeping", flush=True)
        time.sleep(60)
    """)


def start_sleeper(tmp_path, session, data, ignore_sigterm=False, **estimator_args) -> tuple[TrainingJob, int]:
    """Start a sleeping script job; return it once the script runs, with the script's pid."""
    marker = tmp_path / f"pid-{time.monotonic_ns()}"
    src = sleeper(tmp_path, marker, ignore_sigterm)
    est = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session, **estimator_args)
    job = est.fit(data, wait=False)
    wait_for(marker.exists, what="the script to start")
    return job, int(marker.read_text())


def record(session, job) -> dict:
    return session.store.get_job(job.name)


def test_killing_the_runtime_process_fails_the_job_naming_the_signal(tmp_path, session, data):
    job, script_pid = start_sleeper(tmp_path, session, data)
    runtime_pid = wait_for(lambda: record(session, job)["runtime_pid"], what="runtime_pid")
    os.kill(runtime_pid, signal.SIGKILL)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "SIGKILL" in desc["FailureReason"]
    wait_for(lambda: not pid_alive(script_pid), 10, "the script to die with its runtime")


def test_killing_the_supervisor_marks_the_job_failed_when_it_is_looked_at(tmp_path, session, data):
    job, script_pid = start_sleeper(tmp_path, session, data)
    rec = record(session, job)
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(rec["supervisor_pid"]), 10, "the supervisor to be gone")
    desc = job.describe()
    assert desc["TrainingJobStatus"] == "Failed"
    assert "ended unexpectedly" in desc["FailureReason"]
    # nothing of the job keeps running unwatched
    wait_for(lambda: not pid_alive(rec["runtime_pid"]) and not pid_alive(script_pid), 10,
             "the runtime and the script to end")


def test_stop_ends_a_running_job_stopped_within_the_grace_period(tmp_path, session, data):
    job, script_pid = start_sleeper(tmp_path, session, data)
    started = time.monotonic()
    job.stop()
    assert job.status in ("Stopping", "Stopped")
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Stopped" and desc["SecondaryStatus"] == "Stopped"
    assert time.monotonic() - started < GRACE + 5
    assert not pid_alive(script_pid)
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses[-2:] == ["Stopping", "Stopped"]


def test_a_script_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, session, data):
    job, script_pid = start_sleeper(tmp_path, session, data, ignore_sigterm=True)
    started = time.monotonic()
    job.stop()
    time.sleep(GRACE / 2)
    assert pid_alive(script_pid), "SIGKILL came before the grace period ended"
    desc = job.wait_quietly(timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert desc["TrainingJobStatus"] == "Stopped"
    assert GRACE * 0.9 <= elapsed < GRACE + 5
    wait_for(lambda: not pid_alive(script_pid), 5, "the script to be killed")


def test_max_run_stops_the_job_with_max_runtime_exceeded(tmp_path, session, data):
    # not waiting for the script to start: on a loaded machine the 1 s limit may end the job before it does
    src = sleeper(tmp_path, tmp_path / "pid-max-run")
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session, max_run=1).fit(data, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert desc["StoppingCondition"]["MaxRuntimeInSeconds"] == 1
    assert any("MaxRuntimeInSeconds" in line for line in job.logs())


def test_stopping_a_finished_job_changes_nothing(tmp_path, session, data):
    src = script(tmp_path, "print('done')\n")
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session).fit(data, logs=False)
    job.stop()
    assert job.status == "Completed"


# ---- many jobs, many processes, one store -----------------------------------------------------------
COUNTING_SCRIPT = """
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--tag", type=int)
a, _ = p.parse_known_args()
for i in range(20):
    print(f"job {a.tag} line {i}", flush=True)
    print(f"score={a.tag * 10 + i};", flush=True)
open(os.path.join(os.environ["SM_MODEL_DIR"], "tag.txt"), "w").write(str(a.tag))
"""
SCORE = [{"Name": "score", "Regex": r"score=([0-9.]+);"}]


def test_jobs_started_from_threads_and_another_process_all_complete_with_their_own_logs_and_metrics(
        tmp_path, session, data):
    src = script(tmp_path, COUNTING_SCRIPT)
    jobs: dict[int, TrainingJob] = {}
    errors = []

    def start(tag):
        try:
            est = Estimator(entry_point="train.py", source_dir=str(src), hyperparameters={"tag": tag},
                            metric_definitions=SCORE, sagemaker_session=session)
            jobs[tag] = est.fit(data, wait=False, job_name=f"thread-job-{tag}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    other = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from nbsage.estimator import Estimator
        for tag in (10, 11):
            est = Estimator(entry_point="train.py", source_dir={str(src)!r}, hyperparameters={{"tag": tag}},
                            metric_definitions={SCORE!r})
            est.fit({str(data)!r}, wait=False, job_name=f"process-job-{{tag}}")
        """)], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    threads = [threading.Thread(target=start, args=(tag,)) for tag in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    out, _ = other.communicate(timeout=TIMEOUT)
    assert other.returncode == 0, out.decode()
    for tag in (10, 11):
        jobs[tag] = TrainingJob(f"process-job-{tag}", session)

    for tag, job in jobs.items():
        desc = job.wait_quietly(timeout=TIMEOUT)
        assert desc["TrainingJobStatus"] == "Completed", (job.name, desc.get("FailureReason"))
        mine = [line for line in job.logs() if line.startswith("job ")]
        assert mine == [f"job {tag} line {i}" for i in range(20)]
        metrics = job.metrics()
        assert list(metrics["value"]) == [tag * 10 + i for i in range(20)]
        assert job.final_metrics() == {"score": tag * 10 + 19}
        with tarfile.open(job.model_data) as tar:
            assert tar.extractfile("tag.txt").read() == str(tag).encode()
    assert {j.name for j in session.list_training_jobs()} == {j.name for j in jobs.values()}


def test_model_tar_gz_is_never_visible_half_written(tmp_path, session, data):
    size = 6 * 2**20
    src = script(tmp_path, f"""
        import os
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "weights.bin"), "wb") as f:
            f.write(os.urandom({size}))
    """)
    output_path = tmp_path / "bucket"
    est = Estimator(entry_point="train.py", source_dir=str(src), output_path=str(output_path), sagemaker_session=session)
    job = est.fit(data, wait=False)
    published = output_path / job.name / "output" / "model.tar.gz"
    staged = Path(record(session, job)["root"]) / "output" / "model.tar.gz"
    checked = 0
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done = job.status != "InProgress"
        for archive in (staged, published):
            if archive.exists():
                with tarfile.open(archive) as tar:  # a partial file fails here
                    member = tar.getmember("weights.bin")
                    assert member.size == size
                    assert len(tar.extractfile(member).read()) == size
                checked += 1
        if done:
            break
    assert job.status == "Completed"
    assert checked >= 1
    assert sorted(p.name for p in published.parent.iterdir()) == ["model.tar.gz"]  # no temporary file left


def test_a_file_url_artifact_root_receives_the_artifacts(tmp_path, monkeypatch, data):
    monkeypatch.setenv("NBSAGE_STOP_GRACE_SECONDS", str(GRACE))
    elsewhere = tmp_path / "artifact-root"
    session = Session(home=tmp_path / "home", artifact_root=f"file://{elsewhere}")
    src = script(tmp_path, """
        import os
        open(os.path.join(os.environ["SM_MODEL_DIR"], "m.txt"), "w").write("m")
        open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "o.txt"), "w").write("o")
    """)
    job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session).fit(data, logs=False)
    model = Path(job.model_data)
    assert model == elsewhere / "training" / job.name / "output" / "model.tar.gz"
    assert model.exists() and (model.parent / "output.tar.gz").exists()
    assert not (tmp_path / "home" / "artifacts").exists()


def test_nbsage_artifact_root_names_the_artifact_root_for_the_default_session(tmp_path, monkeypatch, data):
    elsewhere = tmp_path / "from-env"
    monkeypatch.setenv("NBSAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NBSAGE_ARTIFACT_ROOT", f"file://{elsewhere}")
    monkeypatch.setattr(Session, "_default", None)
    session = Session.default()
    src = script(tmp_path, "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w').write('m')\n")
    job = Estimator(entry_point="train.py", source_dir=str(src)).fit(data, logs=False)
    assert Path(job.model_data).is_relative_to(elsewhere) and Path(job.model_data).exists()
    assert session.artifacts.root == str(elsewhere.resolve())


def test_a_channel_url_that_does_not_exist_fails_the_job_naming_the_channel(tmp_path, session):
    src = script(tmp_path, "print('never')\n")
    est = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session)
    job = est.fit({"validation": "memory://nbsage-tests/missing/"}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: channel 'validation'")
    assert "memory://nbsage-tests/missing/" in desc["FailureReason"]


def test_the_place_describes_this_machine(session):
    from nbsage import backends
    place = backends.get("local", session).describe_place()
    assert place["name"] == "local" and place["cpus"] >= 1 and place["gpus"] >= 0
    json.dumps(place)
