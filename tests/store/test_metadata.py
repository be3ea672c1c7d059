"""The SQLite metadata store (and the artifact store beside it): records, status rules, and safety
when several threads and processes write to one NBSAGE_HOME at once."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nbsage.errors import EndpointError, JobError
from nbsage.session import Session, check_name, unique_name
from nbsage.store.artifacts import ArtifactStore
from nbsage.store.metadata import MetadataStore, pid_alive

REQUEST = {"TrainingJobName": "j", "HyperParameters": {"a": "1"}}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSAGE_HOME", str(tmp_path))
    return Session(home=tmp_path).store


def test_a_job_is_recorded_in_progress_and_starting(store):
    store.create_job("job-1", REQUEST, "local", "/root")
    job = store.get_job("job-1")
    assert (job["status"], job["secondary_status"], job["backend"], job["root"]) == ("InProgress", "Starting", "local", "/root")
    assert [t["status"] for t in store.transitions("job-1")] == ["Starting"]


def test_a_duplicate_job_name_is_a_clear_error(store):
    store.create_job("job-1", REQUEST, "local", None)
    with pytest.raises(JobError, match="a job named 'job-1' already exists"):
        store.create_job("job-1", REQUEST, "local", None)


def test_an_unknown_job_name_suggests_a_close_one(store):
    store.create_job("churn-model-1", REQUEST, "local", None)
    with pytest.raises(JobError, match="no job named 'churn-modle-1'; did you mean 'churn-model-1'"):
        store.get_job("churn-modle-1")


def test_transitions_are_closed_in_order_and_a_terminal_status_never_moves(store):
    store.create_job("job-1", REQUEST, "local", None)
    for secondary in ("Downloading", "Training", "Uploading"):
        assert store.set_status("job-1", "InProgress", secondary, secondary.lower())
    assert store.set_status("job-1", "Completed", "Completed", "done", model_artifacts="/m.tar.gz")
    assert not store.set_status("job-1", "Failed", "Failed", "late", failure_reason="too late")
    job = store.get_job("job-1")
    assert job["status"] == "Completed" and job["failure_reason"] is None and job["end_time"]
    transitions = store.transitions("job-1")
    assert [t["status"] for t in transitions] == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all(t["end_time"] is not None for t in transitions)
    for before, after in zip(transitions, transitions[1:]):
        assert before["end_time"] == after["start_time"]


def test_logs_come_back_in_order_after_a_sequence_number(store):
    store.create_job("job-1", REQUEST, "local", None)
    store.add_logs("job-1", [(1.0, "a"), (2.0, "b")])
    store.add_logs("job-1", [(3.0, "c")])
    rows = store.get_logs("job-1")
    assert [line for _, _, line in rows] == ["a", "b", "c"]
    assert [line for _, _, line in store.get_logs("job-1", after_seq=rows[1][0])] == ["c"]


def test_final_metrics_are_the_last_value_of_each_metric(store):
    store.create_job("job-1", REQUEST, "local", None)
    store.add_metrics("job-1", [("validation:auc", 0.7, 0, 1.0), ("train:loss", 0.9, 0, 1.0),
                                ("validation:auc", 0.8, 1, 2.0), ("train:loss", 0.95, 1, 2.0)])
    final = store.final_metrics("job-1")
    assert [(m["MetricName"], m["Value"]) for m in final] == [("train:loss", 0.95), ("validation:auc", 0.8)]
    assert all(m["Timestamp"].startswith("1970-01-01T00:00:02") for m in final)


def test_jobs_are_listed_newest_first(store):
    for name in ("first", "second", "third"):
        store.create_job(name, REQUEST, "local", None)
    assert [j["name"] for j in store.list_jobs()] == ["third", "second", "first"]
    assert [j["name"] for j in store.list_jobs(limit=1)] == ["third"]


def test_endpoint_records(store):
    store.create_endpoint("ep-1", {"ProductionVariants": []})
    with pytest.raises(EndpointError, match="already exists"):
        store.create_endpoint("ep-1", {})
    store.update_endpoint("ep-1", status="InService", port=8080, config={"ProductionVariants": [{"VariantName": "a"}]})
    ep = store.get_endpoint("ep-1")
    assert ep["status"] == "InService" and ep["port"] == 8080 and ep["config"]["ProductionVariants"][0]["VariantName"] == "a"
    assert [e["name"] for e in store.list_endpoints()] == ["ep-1"]
    store.delete_endpoint("ep-1")
    with pytest.raises(EndpointError, match="no endpoint named 'ep-1'"):
        store.get_endpoint("ep-1")


WRITER = """
import sys
from nbsage.store.metadata import MetadataStore
store = MetadataStore(sys.argv[1])
job = sys.argv[2]
store.create_job(job, {}, "local", None)
for i in range(100):
    store.add_logs(job, [(float(i), f"{job} {i}")])
    store.add_metrics(job, [("m", float(i), i, float(i))])
    if i % 10 == 0:
        store.update_job(job, progress_step=i, progress_total=100)
store.set_status(job, "Completed", "Completed", "done")
"""


def test_threads_and_processes_write_to_one_store_at_once_without_losing_anything(tmp_path, store):
    db = tmp_path / "nbsage.db"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"proc-{i}"], stderr=subprocess.PIPE)
             for i in range(2)]
    errors = []

    def write(job):
        try:
            s = MetadataStore(db)  # one store object shared by threads is fine too; this is the harder case
            s.create_job(job, {}, "local", None)
            for i in range(100):
                s.add_logs(job, [(float(i), f"{job} {i}")])
                s.add_metrics(job, [("m", float(i), i, float(i))])
            s.set_status(job, "Completed", "Completed", "done")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(f"thread-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    assert not errors, errors
    names = [f"thread-{i}" for i in range(4)] + ["proc-0", "proc-1"]
    for job in names:
        assert [line for _, _, line in store.get_logs(job)] == [f"{job} {i}" for i in range(100)]
        assert [m["value"] for m in store.get_metrics(job)] == [float(i) for i in range(100)]
        assert store.get_job(job)["status"] == "Completed"


def test_a_store_object_is_usable_from_several_threads(store):
    store.create_job("job-1", REQUEST, "local", None)

    def write(k):
        for i in range(50):
            store.add_logs("job-1", [(0.0, f"{k}-{i}")])

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get_logs("job-1")) == 200


def test_pid_alive_tells_live_from_dead_and_zombie_processes():
    assert pid_alive(os.getpid())
    assert not pid_alive(None)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    import time
    deadline = time.monotonic() + 10
    while pid_alive(proc.pid) and time.monotonic() < deadline:  # a zombie until reaped: counts as dead
        time.sleep(0.01)
    assert not pid_alive(proc.pid)
    proc.wait()
    assert not pid_alive(proc.pid)


# ---- names ------------------------------------------------------------------------------------------
def test_generated_job_names_are_valid_and_unique_even_within_one_millisecond():
    names = {unique_name("my_script.v2") for _ in range(1000)}
    assert len(names) == 1000
    assert all(check_name(n) for n in names)
    assert check_name(unique_name("x" * 100))  # a long base still gives a valid name


@pytest.mark.parametrize("bad", ["-starts-with-hyphen", "has_underscore", "x" * 64, ""])
def test_invalid_job_names_are_rejected_with_the_rule(bad):
    from nbsage.errors import ValidationError
    with pytest.raises(ValidationError, match="1-63 letters, digits and hyphens"):
        check_name(bad)


# ---- the artifact store -------------------------------------------------------------------------------
def test_local_artifact_writes_are_atomic_and_leave_no_temporary_file(tmp_path):
    src = tmp_path / "model.tar.gz"
    src.write_bytes(b"x" * 1000)
    artifacts = ArtifactStore(str(tmp_path / "root"))
    url = artifacts.put_file(src, artifacts.url("training", "job", "output", "model.tar.gz"))
    assert Path(url).read_bytes() == b"x" * 1000
    assert os.listdir(Path(url).parent) == ["model.tar.gz"]
    assert artifacts.exists(url)


def test_a_file_url_root_is_a_local_folder(tmp_path):
    artifacts = ArtifactStore(f"file://{tmp_path}/root")
    assert artifacts.root == str((tmp_path / "root").resolve())
    assert artifacts.url("a", "b") == f"{(tmp_path / 'root').resolve()}/a/b"


def test_an_fsspec_memory_root_round_trips_artifacts(tmp_path):
    src = tmp_path / "model.tar.gz"
    src.write_bytes(b"payload")
    artifacts = ArtifactStore("memory://nbsage-store-test")
    url = artifacts.put_file(src, artifacts.url("training", "job", "output", "model.tar.gz"))
    assert url == "memory://nbsage-store-test/training/job/output/model.tar.gz"
    assert artifacts.exists(url)
    back = artifacts.get_file(url, tmp_path / "back" / "model.tar.gz")
    assert back.read_bytes() == b"payload"


def test_a_session_names_its_store_and_artifact_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSAGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NBSAGE_ARTIFACT_ROOT", raising=False)
    session = Session.default()
    assert session.home == (tmp_path / "home").resolve()
    assert (session.home / "nbsage.db").exists()
    assert session.default_output_path() == str(session.home / "artifacts" / "training")
    assert Session(artifact_root="memory://x").artifact_root == "memory://x"
    monkeypatch.setenv("NBSAGE_HOME", str(tmp_path / "other"))
    assert Session.default().home == (tmp_path / "other").resolve()  # rebuilt when NBSAGE_HOME changes
