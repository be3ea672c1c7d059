"""The dask place against a real LocalCluster (2 worker processes, 1 thread each).

A job started with scheduler= the cluster's address runs one host per worker: XGBoost trained on
2 workers predicts as well as on 1, each host sees the multi-instance contract and its own
ShardedByS3Key shard, a killed worker fails the job with that reason, a stop stops every host.
Without a scheduler a job starts (and closes) a LocalCluster of its own. A GPU instance type is
refused at once when no worker has a GPU; the GPU path itself runs where workers have one.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from nbsage.errors import PlaceError, ValidationError
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.runtime.environment import count_gpus
from nbsage.store.metadata import pid_alive

pytest.importorskip("distributed")

# the data, baseline and report helpers are the local multi-host tests' (one definition of each)
_spec = importlib.util.spec_from_file_location("_multi_host_cases", Path(__file__).with_name("test_multi_host.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

TIMEOUT = cases.TIMEOUT
GPU = count_gpus() > 0


def dask_estimator(session, cluster, *args, **kwargs) -> Estimator:
    return Estimator(*args, backend="dask", scheduler=cluster.scheduler_address, sagemaker_session=session, **kwargs)


def test_xgboost_on_two_dask_workers_predicts_as_well_as_on_one(tmp_path, session, cluster):
    folder = tmp_path / "train"
    test = cases.breast_cancer_parts(folder)
    est = dask_estimator(session, cluster, "xgboost", cases.XGB_HPS, instance_count=2)
    job = est.fit({"train": TrainingInput(str(folder), content_type="text/csv", distribution="ShardedByS3Key")},
                  wait=False)
    one = cases.baseline_auc(tmp_path, folder, test)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    two = cases.job_model_auc(tmp_path, desc["ModelArtifacts"]["S3ModelArtifacts"], test)
    assert abs(two - one) <= 0.02, (one, two)
    aucs = [m for m in session.store.get_metrics(job.name) if m["name"] == "train:auc"]
    assert len(aucs) == cases.XGB_HPS["num_round"]
    assert session.store.get_job(job.name)["backend"] == "dask"


def test_each_dask_host_sees_its_host_name_and_its_own_shard(tmp_path, session, cluster):
    folder = tmp_path / "train"
    cases.breast_cancer_parts(folder)
    est = dask_estimator(session, cluster, entry_point="train.py",
                         source_dir=str(cases.source(tmp_path, cases.REPORT_SCRIPT)), instance_count=2)
    job = est.fit({"train": TrainingInput(str(folder), distribution="ShardedByS3Key")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    cases.check_reports(cases.host_reports(job.logs()))


def test_a_killed_worker_fails_the_job_with_the_reason(tmp_path, session, cluster):
    folder = tmp_path / "train"
    cases.breast_cancer_parts(folder, parts=2)
    markers = tmp_path / "pids"
    markers.mkdir()
    body = f"""
        import os, time, psutil
        worker = psutil.Process().parent().parent()  # script <- runtime <- Dask worker
        open(os.path.join({str(markers)!r}, os.environ["SM_CURRENT_HOST"]), "w").write(f"{{os.getpid()}} {{worker.pid}}")
        time.sleep(120)
    """
    est = dask_estimator(session, cluster, entry_point="train.py", source_dir=str(cases.source(tmp_path, body)),
                         instance_count=2)
    job = est.fit({"train": str(folder)}, wait=False)
    # the files are written, not replaced: wait until both hold their pids
    cases.wait_for(lambda: [len(p.read_text().split()) for p in markers.iterdir()] == [2, 2],
                   what="both hosts to start")
    pids = {p.name: [int(x) for x in p.read_text().split()] for p in markers.iterdir()}
    os.kill(pids["algo-2"][1], 9)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "algo-2" in desc["FailureReason"] and "left the cluster" in desc["FailureReason"]
    cases.wait_for(lambda: not any(pid_alive(p[0]) for p in pids.values()), 20, "both hosts' scripts to end")
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarts the worker for the next tests


def test_stop_ends_every_dask_host_and_the_job_stopped(tmp_path, session, cluster):
    folder = tmp_path / "train"
    cases.breast_cancer_parts(folder, parts=2)
    markers = tmp_path / "pids"
    markers.mkdir()
    body = f"""
        import os, time
        open(os.path.join({str(markers)!r}, os.environ["SM_CURRENT_HOST"]), "w").write(str(os.getpid()))
        time.sleep(120)
    """
    est = dask_estimator(session, cluster, entry_point="train.py", source_dir=str(cases.source(tmp_path, body)),
                         instance_count=2)
    job = est.fit({"train": str(folder)}, wait=False)
    cases.wait_for(lambda: [p.read_text().strip().isdigit() for p in markers.iterdir()] == [True, True],
                   what="both hosts to start")
    pids = [int(p.read_text()) for p in markers.iterdir()]
    job.stop()
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Stopped"
    cases.wait_for(lambda: not any(pid_alive(p) for p in pids), 20, "every host's script to end")


def test_more_instances_than_workers_fails_after_waiting(tmp_path, session, cluster, monkeypatch):
    monkeypatch.setenv("NBSAGE_DASK_WORKER_WAIT_SECONDS", "0.5")
    folder = tmp_path / "train"
    cases.breast_cancer_parts(folder, parts=2)
    est = dask_estimator(session, cluster, entry_point="train.py",
                         source_dir=str(cases.source(tmp_path, cases.REPORT_SCRIPT)), instance_count=3)
    desc = est.fit({"train": str(folder)}, wait=False).wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "has 2 worker(s)" in desc["FailureReason"] and "3 instances" in desc["FailureReason"]


def test_without_a_scheduler_a_job_starts_its_own_local_cluster(tmp_path, session):
    folder = tmp_path / "train"
    cases.breast_cancer_parts(folder, parts=2)
    body = "import os; print('running on', os.environ['SM_CURRENT_HOST'], flush=True)\n"
    est = Estimator(entry_point="train.py", source_dir=str(cases.source(tmp_path, body)), backend="dask",
                    sagemaker_session=session)
    job = est.fit({"train": str(folder)}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert "running on algo-1" in job.logs()  # one host: lines stored as the local place stores them
    assert any(line.startswith("Dask place: algo-1 on worker") and "LocalCluster" in line for line in job.logs())


def test_an_unknown_dask_option_is_refused_with_a_suggestion(tmp_path, session):
    folder = tmp_path / "train"
    cases.breast_cancer_parts(folder, parts=1)
    with pytest.raises(ValidationError, match="did you mean 'scheduler'"):
        Estimator("xgboost", cases.XGB_HPS, backend="dask", schedular="tcp://x:1", sagemaker_session=session).fit(
            {"train": str(folder)}, wait=False)


@pytest.mark.skipif(GPU, reason="this machine has a GPU")
def test_a_gpu_instance_type_is_refused_at_once_when_no_worker_has_a_gpu(tmp_path, session, cluster):
    est = dask_estimator(session, cluster, "xgboost", cases.XGB_HPS, instance_type="ml.g5.xlarge")
    with pytest.raises(PlaceError, match="none of the 2 workers"):
        est.fit({"train": str(tmp_path)}, wait=False)
    assert session.store.list_jobs() == []  # refused before anything was recorded


@pytest.mark.skipif(not GPU, reason="needs an NVIDIA GPU")
def test_a_gpu_job_trains_xgboost_on_cuda_and_reports_the_gpus(tmp_path, session, cluster):
    folder = tmp_path / "train"
    test = cases.breast_cancer_parts(folder)
    est = dask_estimator(session, cluster, "xgboost", cases.XGB_HPS, instance_type="ml.g5.xlarge")
    desc = est.fit({"train": TrainingInput(str(folder), content_type="text/csv")}, wait=False).wait_quietly(
        timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert cases.job_model_auc(tmp_path, desc["ModelArtifacts"]["S3ModelArtifacts"], test) > 0.95
    est = dask_estimator(session, cluster, entry_point="train.py",
                         source_dir=str(cases.source(tmp_path, cases.REPORT_SCRIPT)), instance_type="ml.g5.xlarge")
    job = est.fit({"train": str(folder)}, wait=False)
    assert job.wait_quietly(timeout=TIMEOUT)["TrainingJobStatus"] == "Completed"
    reports = [line for line in job.logs() if line.startswith("REPORT ")]
    assert int(__import__("json").loads(reports[0][7:])["SM_NUM_GPUS"]) >= 1
