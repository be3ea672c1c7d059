"""Jobs with instance_count > 1 on the local place: one runtime process per host (nbsage.backends.multi_host).

Each host sees the SageMaker multi-instance contract (SM_HOSTS, SM_CURRENT_HOST, its own
resourceconfig.json, its own ShardedByS3Key shard) and torchrun's rank variables; XGBoost trains
one model across the hosts that predicts as well as one host's; torch.distributed joins the hosts
through nbsage.algorithms.distributed; a failing host fails the job and stops the others.
"""
from __future__ import annotations

import json
import re
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from nbsage.backends.multi_host import log_line, rank_environment
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.store.metadata import pid_alive
from support import source, wait_for

TIMEOUT = 240  # a job's end on a busy machine
XGB_HPS = {"num_round": 30, "max_depth": 3, "objective": "binary:logistic", "eval_metric": "auc"}


# ---- shared with tests/backends/test_dask.py (imported there) --------------------------------------


def breast_cancer_parts(folder: Path, parts: int = 4):
    """Breast cancer rows: `parts` CSV files (label first) to train on, and held-out (X, y) to score."""
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(7).permutation(len(y))
    X, y = X[order], y[order]
    train = 420
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(parts):
        rows = slice(i, train, parts)
        np.savetxt(folder / f"part-{i}.csv", np.column_stack([y[:train][rows], X[:train][rows]]),
                   delimiter=",", fmt="%.8g")
    return X[train:], y[train:]


def baseline_auc(tmp_path: Path, folder: Path, test) -> float:
    """AUC of the instance_count=1 model, trained by the same runtime in this process."""
    from nbsage.backends.staging import prepare_root
    from nbsage.runtime.layout import JobRoot
    from nbsage.runtime.train import run
    request = {
        "TrainingJobName": "baseline", "AlgorithmSpecification": {"TrainingImage": "xgboost", "TrainingInputMode": "File"},
        "HyperParameters": {k: str(v) for k, v in XGB_HPS.items()},
        "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": str(folder), "S3DataDistributionType": "FullyReplicated"}}}],
        "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1},
    }
    root = prepare_root(JobRoot(tmp_path / "baseline"), request)
    assert run(str(root.path)) == 0
    return auc_of(root.model_dir / "xgboost-model", test)


def auc_of(model_file: Path, test) -> float:
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score
    booster = xgb.Booster()
    booster.load_model(bytearray(Path(model_file).read_bytes()))
    X, y = test
    return roc_auc_score(y, booster.predict(xgb.DMatrix(X)))


def job_model_auc(tmp_path: Path, model_data: str, test) -> float:
    dest = tmp_path / f"model-{time.monotonic_ns()}"
    with tarfile.open(model_data.removeprefix("file://")) as tar:
        tar.extractall(dest, filter="data")
    return auc_of(dest / "xgboost-model", test)


REPORT_SCRIPT = """
    import json, os
    config = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json")))
    report = {k: os.environ.get(k) for k in ("SM_HOSTS", "SM_CURRENT_HOST", "MASTER_ADDR", "MASTER_PORT",
                                             "RANK", "WORLD_SIZE", "SM_NUM_GPUS")}
    report["files"] = sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"]))
    report["config"] = config
    print("REPORT " + json.dumps(report), flush=True)
"""


def host_reports(logs: list[str]) -> dict[str, dict]:
    """{host: report} from `[algo-i] REPORT {...}` log lines."""
    reports = {}
    for line in logs:
        m = re.match(r"^\[(algo-\d+)\] REPORT (.*)$", line)
        if m:
            reports[m.group(1)] = json.loads(m.group(2))
    return reports


def check_reports(reports: dict[str, dict]) -> None:
    """Each host saw the two-host contract and its own half of the ShardedByS3Key channel."""
    assert sorted(reports) == ["algo-1", "algo-2"]
    for host, r in reports.items():
        assert json.loads(r["SM_HOSTS"]) == ["algo-1", "algo-2"]
        assert r["SM_CURRENT_HOST"] == host
        assert r["config"]["current_host"] == host and r["config"]["hosts"] == ["algo-1", "algo-2"]
        assert r["RANK"] == str(int(host.split("-")[1]) - 1) and r["WORLD_SIZE"] == "2"
        assert len(r["files"]) == 2
        assert r["SM_NUM_GPUS"] == "0"
    assert reports["algo-1"]["MASTER_PORT"] == reports["algo-2"]["MASTER_PORT"]
    assert reports["algo-1"]["MASTER_ADDR"] == reports["algo-2"]["MASTER_ADDR"]
    assert not set(reports["algo-1"]["files"]) & set(reports["algo-2"]["files"])
    assert sorted(reports["algo-1"]["files"] + reports["algo-2"]["files"]) == [f"part-{i}.csv" for i in range(4)]


# ---- the local place -------------------------------------------------------------------------------


def test_rank_environment_names_hosts_and_master_like_torchrun():
    env = rank_environment(["algo-1", "algo-2", "algo-3"], 2, "10.0.0.1", 29500, threads=4)
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2", "algo-3"] and env["SM_CURRENT_HOST"] == "algo-3"
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("2", "3", "0")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["OMP_NUM_THREADS"]) == ("10.0.0.1", "29500", "4")


def test_only_the_first_hosts_metric_lines_stay_metric_lines():
    assert log_line("algo-1", "#metric train:auc=0.9 step=1\n", master=True) == "#metric train:auc=0.9 step=1"
    assert log_line("algo-2", "#metric train:auc=0.9 step=1", master=False) == "[algo-2] #metric train:auc=0.9 step=1"
    assert log_line("algo-1", "[3]\ttrain-auc:0.9", master=True) == "[algo-1] [3]\ttrain-auc:0.9"


def test_xgboost_on_two_local_hosts_predicts_as_well_as_on_one(tmp_path, session):
    folder = tmp_path / "train"
    test = breast_cancer_parts(folder)
    est = Estimator("xgboost", XGB_HPS, instance_count=2, sagemaker_session=session)
    job = est.fit({"train": TrainingInput(str(folder), content_type="text/csv", distribution="ShardedByS3Key")},
                  wait=False)
    one = baseline_auc(tmp_path, folder, test)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    two = job_model_auc(tmp_path, desc["ModelArtifacts"]["S3ModelArtifacts"], test)
    assert abs(two - one) <= 0.02, (one, two)
    logs = job.logs()
    assert any(line.startswith("[algo-2] ") for line in logs)
    # the job's metrics are the master's, one value per round
    aucs = [m for m in session.store.get_metrics(job.name) if m["name"] == "train:auc"]
    assert len(aucs) == XGB_HPS["num_round"]


def test_each_local_host_sees_its_host_name_and_its_own_shard(tmp_path, session):
    folder = tmp_path / "train"
    breast_cancer_parts(folder)
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, REPORT_SCRIPT)), instance_count=2,
                    sagemaker_session=session)
    job = est.fit({"train": TrainingInput(str(folder), distribution="ShardedByS3Key")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    reports = host_reports(job.logs())
    check_reports(reports)
    assert reports["algo-1"]["MASTER_ADDR"] == "127.0.0.1"


def test_a_failing_host_fails_the_job_naming_it_and_stops_the_others(tmp_path, session):
    folder = tmp_path / "train"
    breast_cancer_parts(folder, parts=2)
    marker = tmp_path / "algo-1.pid"
    body = f"""
        import os, sys, time
        marker = {str(marker)!r}
        if os.environ["SM_CURRENT_HOST"] == "algo-2":
            held_until = time.time() + 300  # fail once algo-1 runs, so that there is a host to stop
            while not (os.path.exists(marker) and open(marker).read().strip().isdigit()):
                if time.time() > held_until:
                    sys.exit("algo-1 did not start within 300 s")
                time.sleep(0.05)
            sys.exit("algo-2 cannot go on")
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        time.sleep(120)
    """
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, body)), instance_count=2,
                    sagemaker_session=session)
    job = est.fit({"train": str(folder)}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ExecuteUserScriptError: algo-2:")
    assert "algo-2 cannot go on" in desc["FailureReason"]
    wait_for(lambda: marker.exists() and not pid_alive(int(marker.read_text())), 15, "algo-1's script to be stopped")


def test_stop_ends_every_host_and_the_job_stopped(tmp_path, session):
    folder = tmp_path / "train"
    breast_cancer_parts(folder, parts=2)
    markers = tmp_path / "pids"
    markers.mkdir()
    body = f"""
        import os, time
        open(os.path.join({str(markers)!r}, os.environ["SM_CURRENT_HOST"]), "w").write(str(os.getpid()))
        time.sleep(120)
    """
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, body)), instance_count=2,
                    sagemaker_session=session)
    job = est.fit({"train": str(folder)}, wait=False)
    # the files are written, not replaced: wait until both hold their pids
    wait_for(lambda: [p.read_text().strip().isdigit() for p in markers.iterdir()] == [True, True],
             what="both hosts to start")
    pids = [int(p.read_text()) for p in markers.iterdir()]
    job.stop()
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Stopped"
    wait_for(lambda: not any(pid_alive(p) for p in pids), 15, "every host's script to end")


def test_torch_distributed_joins_the_hosts_and_averages_gradients(tmp_path, session):
    pytest.importorskip("torch")
    folder = tmp_path / "train"
    breast_cancer_parts(folder, parts=2)
    body = """
        import json, torch
        from nbsage.algorithms import distributed
        with distributed.torch_process_group() as cluster:
            torch.manual_seed(0)
            model = distributed.wrap(torch.nn.Linear(2, 1))
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            # each rank its own batch: after one step DDP leaves identical weights on both
            model(torch.full((4, 2), float(cluster.rank + 1))).sum().backward()
            opt.step()
            weights = distributed.unwrap(model).weight.detach().tolist()
            print("REPORT " + json.dumps({"rank": cluster.rank, "weights": weights,
                                          "steps": distributed.agree(10 + cluster.rank, "min"),
                                          "share": distributed.shard(list(range(5)), cluster)}), flush=True)
    """
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, body)), instance_count=2,
                    sagemaker_session=session)
    job = est.fit({"train": str(folder)}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    reports = host_reports(job.logs())
    assert reports["algo-1"]["weights"] == reports["algo-2"]["weights"]
    assert reports["algo-1"]["rank"] == 0 and reports["algo-2"]["rank"] == 1
    assert reports["algo-1"]["steps"] == reports["algo-2"]["steps"] == 10
    assert reports["algo-1"]["share"] == [0, 2, 4] and reports["algo-2"]["share"] == [1, 3]
