"""CheckpointConfig and managed spot on the local place.

CheckpointSync mirrors a checkpoint folder to a URL (restore at the start, uploads of new and
changed files, deletions propagated, objects added later not copied in); a spot job whose worker
is SIGKILLed goes Interrupted → Restarting → Training and resumes from its checkpoint;
MaxWaitTimeInSeconds ends it Stopped/MaxWaitTimeExceeded; a killed non-spot job is Failed and a
new job with the same checkpoint URI resumes (script mode and XGBoost).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from nbsage.backends.checkpoints import CheckpointSync
from nbsage.errors import ValidationError
from nbsage.estimator import Estimator
from nbsage.runtime.environment import resolve_checkpoint_dir
from nbsage.training_job import TrainingJob
from support import STEPPER, wait_for

TIMEOUT = 40


# read by conftest's session fixture
SESSION_ENV = {"NBSAGE_STOP_GRACE_SECONDS": "1", "NBSAGE_CHECKPOINT_SYNC_SECONDS": "0.1",
               "NBSAGE_SPOT_RESTART_SECONDS": "1"}


# ---- CheckpointSync -------------------------------------------------------------------------------
def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["folder", "file-url", "memory"])
def test_sync_restores_uploads_and_mirrors_deletions(tmp_path, kind):
    remote = tmp_path / "remote"
    url = {"folder": str(remote), "file-url": f"file://{remote}", "memory": f"memory://ckpt-{os.getpid()}/x"}[kind]
    store = CheckpointSync(url, tmp_path / "unused")._store
    seed = tmp_path / "seed"
    (seed / "sub").mkdir(parents=True)
    (seed / "a.txt").write_text("a0")
    (seed / "sub" / "b.txt").write_text("b0")
    for p in seed.rglob("*"):
        if p.is_file():
            store.put_file(p, store.url(p.relative_to(seed).as_posix()))

    def remote_tree() -> dict[str, str]:
        out = {}
        for key in CheckpointSync(url, tmp_path)._remote_keys():
            dest = tmp_path / "peek" / key
            try:
                store.get_file(store.url(key), dest)
            except FileNotFoundError:  # deleted by the sync thread between listing and reading
                continue
            out[key] = dest.read_text()
        return out

    local = tmp_path / "local"
    sync = CheckpointSync(url, local, interval=0.05)
    assert sync.restore() == 2
    assert _tree(local) == {"a.txt": "a0", "sub/b.txt": "b0"}
    assert sync.sync() == (0, 0)  # restored files are not uploaded again

    sync.start()
    (local / "c.txt").write_text("c0")
    (local / "half.sagemaker-ignore").write_text("partial")  # never uploaded
    (local / "a.txt").write_text("a1-longer")
    (local / "sub" / "b.txt").unlink()
    deadline = time.monotonic() + 10
    while remote_tree() != {"a.txt": "a1-longer", "c.txt": "c0"} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert remote_tree() == {"a.txt": "a1-longer", "c.txt": "c0"}
    # objects added under the URI after the start are not copied in, nor deleted
    (seed / "late.txt").write_text("late")
    store.put_file(seed / "late.txt", store.url("late.txt"))
    (local / "d.txt").write_text("d0")
    sync.stop()  # the final sync
    assert "d.txt" in remote_tree() and "late.txt" in remote_tree()
    assert not (local / "late.txt").exists()

    # a new job's restore gets the mirror
    again = tmp_path / "again"
    CheckpointSync(url, again).restore()
    assert _tree(again) == {"a.txt": "a1-longer", "c.txt": "c0", "d.txt": "d0", "late.txt": "late"}


# the file each algorithm's checkpointer writes, one of each naming scheme (all go through write_checkpoint)
ALGORITHM_CHECKPOINTS = {
    "xgboost": "xgboost-checkpoint.7",
    "deepar": "deepar-checkpoint-epoch00003.pt",
    "blazingtext": "blazingtext-checkpoint.bin",
    "linear-learner arrays": "linear-learner-checkpoint.npz",
    "linear-learner state": "linear-learner-checkpoint.json",
}


@pytest.mark.parametrize("name", list(ALGORITHM_CHECKPOINTS.values()), ids=list(ALGORITHM_CHECKPOINTS))
def test_a_checkpoint_being_written_is_never_uploaded(tmp_path, name):
    """write_checkpoint is stopped halfway through a real file; the sync uploads nothing until it is whole."""
    import threading
    from nbsage.checkpoint_files import temporary_path, write_checkpoint
    local, remote = tmp_path / "local", tmp_path / "remote"
    whole = os.urandom(1 << 16)
    halfway, go = threading.Event(), threading.Event()

    def write(f):
        f.write(whole[: len(whole) // 2])
        f.flush()
        halfway.set()
        assert go.wait(60), "the test never let the write finish"
        f.write(whole[len(whole) // 2:])

    writer = threading.Thread(target=write_checkpoint, args=(local / name, write))
    writer.start()
    try:
        assert halfway.wait(60), "the writer never got halfway"
        half_written = temporary_path(local / name)
        assert half_written.stat().st_size == len(whole) // 2 and not (local / name).exists()
        sync = CheckpointSync(str(remote), local)
        assert sync.sync() == (0, 0), f"{half_written.name} must not be uploaded"
        assert not remote.exists() or not any(remote.rglob("*"))
    finally:
        go.set()
        writer.join()
    assert sync.sync() == (1, 0)
    assert _bytes(remote) == {name: whole}
    # a kill mid-write leaves the temporary file behind: it stays local and is not restored either
    half_written.write_bytes(whole[:100])
    assert sync.sync() == (0, 0) and _bytes(remote) == {name: whole}
    (remote / half_written.name).write_bytes(whole[:100])
    assert CheckpointSync(str(remote), tmp_path / "again").restore() == 1
    assert _bytes(tmp_path / "again") == {name: whole}


def test_blazingtext_checkpoint_uploads_whole_and_nothing_else(tmp_path):
    """BlazingText once wrote `.tmp-blazingtext-checkpoint.bin`, which the sync uploaded half-written."""
    import numpy as np
    from nbsage.algorithms.blazingtext import checkpoints
    local, remote = tmp_path / "local", tmp_path / "remote"
    sync = CheckpointSync(str(remote), local)
    checkpoints.save(local, "key", {"epochs_done": 1}, {"w": np.arange(12, dtype=np.float32).reshape(3, 4)})
    assert [p.name for p in local.iterdir()] == [checkpoints.CHECKPOINT_FILE]
    assert sync.sync() == (1, 0) and list(_bytes(remote)) == [checkpoints.CHECKPOINT_FILE]
    state, arrays = checkpoints.load(remote, "key", log=print)
    assert state == {"epochs_done": 1} and arrays["w"].shape == (3, 4)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_restore_from_missing_uri_is_empty(tmp_path):
    assert CheckpointSync(str(tmp_path / "nothing"), tmp_path / "local").restore() == 0
    assert (tmp_path / "local").is_dir()


def test_local_path_maps_onto_the_job_root(tmp_path):
    root = tmp_path / "opt_ml"
    assert resolve_checkpoint_dir(str(root), "/opt/ml/checkpoints/") == root / "checkpoints"
    assert resolve_checkpoint_dir(str(root), None) == root / "checkpoints"
    assert resolve_checkpoint_dir(str(root), "/opt/ml/ckpt") == root / "ckpt"
    assert resolve_checkpoint_dir(str(root), str(tmp_path / "mine")) == tmp_path / "mine"


# ---- validation -----------------------------------------------------------------------------------
def test_max_wait_validation(tmp_path, session):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("pass\n")
    kw = dict(entry_point="train.py", source_dir=str(src), sagemaker_session=session)
    with pytest.raises(ValidationError, match="use_spot_instances"):
        Estimator(max_wait=3600, max_run=60, **kw)
    with pytest.raises(ValidationError, match="max_wait.*max_run"):
        Estimator(use_spot_instances=True, max_wait=30, max_run=60, **kw)
    with pytest.raises(ValidationError, match="max_wait must be a positive"):
        Estimator(use_spot_instances=True, max_wait=0, max_run=60, **kw)
    Estimator(use_spot_instances=True, max_wait=60, max_run=60, **kw)
    Estimator(use_spot_instances=True, max_run=60, **kw)  # max_wait is optional


# ---- jobs -----------------------------------------------------------------------------------------
def _stepper(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(STEPPER)
    return src


def _synced_step(remote: Path) -> int:
    steps = [int(p.name.rsplit("-", 1)[1]) for p in remote.glob("algo-1-step-*")]
    return max(steps) if steps else -1


def _kill_worker(session, name: str) -> None:
    pid = session.store.get_job(name)["runtime_pid"]
    os.killpg(pid, signal.SIGKILL)


def _wait_done(job: TrainingJob, timeout: float = TIMEOUT) -> dict:
    wait_for(lambda: job.describe()["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"), timeout, "the job's end")
    return job.describe()


def test_spot_job_interrupted_restarts_and_resumes(tmp_path, session, data):
    remote = tmp_path / "ckpt"
    est = Estimator(entry_point="train.py", source_dir=str(_stepper(tmp_path)), sagemaker_session=session,
                    hyperparameters={"steps": 30, "pause": 0.1}, use_spot_instances=True, max_run=60,
                    max_wait=120, checkpoint_s3_uri=f"file://{remote}")
    job = est.fit({"train": str(data)}, wait=False)
    wait_for(lambda: _synced_step(remote) >= 3, what="a few synced checkpoints")
    _kill_worker(session, job.name)
    desc = _wait_done(job)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses[statuses.index("Interrupted"):] == ["Interrupted", "Restarting", "Training", "Uploading",
                                                          "Completed"], statuses
    interrupted = next(t for t in desc["SecondaryStatusTransitions"] if t["Status"] == "Interrupted")
    assert "the worker was killed" in interrupted["StatusMessage"]
    resumed = [line for line in job.logs() if line.startswith("resumed at step")]
    assert resumed and int(resumed[0].split()[-1]) > 0, job.logs()
    assert desc["BillableTimeInSeconds"] <= desc["TrainingTimeInSeconds"]
    assert desc["BillableTimeInSeconds"] < desc["TrainingTimeInSeconds"] or desc["TrainingTimeInSeconds"] <= 1
    # the checkpoint URI holds the last state, step files mirrored (deletions included)
    assert sorted(p.name for p in remote.iterdir()) == ["algo-1-state.json", "algo-1-step-29"]


def test_spot_job_past_max_wait_is_stopped(tmp_path, session, data, monkeypatch):
    monkeypatch.setenv("NBSAGE_SPOT_RESTART_SECONDS", "4")  # "no capacity" for longer than MaxWait allows
    remote = tmp_path / "ckpt"
    est = Estimator(entry_point="train.py", source_dir=str(_stepper(tmp_path)), sagemaker_session=session,
                    hyperparameters={"steps": 1000, "pause": 0.1}, use_spot_instances=True, max_run=3,
                    max_wait=3, checkpoint_s3_uri=str(remote))
    job = est.fit({"train": str(data)}, wait=False)
    wait_for(lambda: _synced_step(remote) >= 1, what="a synced checkpoint")
    _kill_worker(session, job.name)
    desc = _wait_done(job)
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopped", "MaxWaitTimeExceeded")
    assert "MaxWaitTimeExceeded" in desc["FailureReason"]
    assert desc["BillableTimeInSeconds"] < desc["TrainingTimeInSeconds"]


def test_killed_job_fails_and_a_new_job_resumes(tmp_path, session, data):
    """Without spot a killed worker fails the job; a new job with the same checkpoint URI resumes."""
    remote = tmp_path / "ckpt"
    kw = dict(entry_point="train.py", source_dir=str(_stepper(tmp_path)), sagemaker_session=session,
              hyperparameters={"steps": 20, "pause": 0.1}, checkpoint_s3_uri=str(remote))
    first = Estimator(**kw).fit({"train": str(data)}, wait=False)
    wait_for(lambda: _synced_step(remote) >= 3, what="a few synced checkpoints")
    _kill_worker(session, first.name)
    desc = _wait_done(first)
    assert desc["TrainingJobStatus"] == "Failed" and "SIGKILL" in desc["FailureReason"]
    assert "Interrupted" not in [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert desc["BillableTimeInSeconds"] == desc["TrainingTimeInSeconds"]
    second = Estimator(**kw).fit({"train": str(data)}, wait=False)
    assert _wait_done(second)["TrainingJobStatus"] == "Completed"
    resumed = [line for line in second.logs() if line.startswith("resumed at step")]
    assert resumed and int(resumed[0].split()[-1]) >= 3, second.logs()


@pytest.mark.timeout(1500)  # two jobs of 200 heavy rounds, on a busy machine
def test_xgboost_killed_then_a_new_job_resumes_from_the_checkpoint(tmp_path, session):
    """XGBoost (num_round 200) killed after a few rounds' checkpoints are synced; the next job with
    the same checkpoint URI logs that it resumed at a round > 0 and finishes the 200 rounds."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("xgboost")
    from nbsage.inputs import TrainingInput
    rng = np.random.default_rng(0)
    n, f = 30000, 20
    x = rng.normal(size=(n, f))
    y = x @ rng.normal(size=f) + np.sin(3 * x[:, 0]) + rng.normal(size=n) * 0.1
    folder = tmp_path / "xgb-data"
    folder.mkdir()
    np.savetxt(folder / "train.csv", np.column_stack([y, x]), delimiter=",", fmt="%.5f")
    remote = tmp_path / "xgb-ckpt"
    kw = dict(hyperparameters={"num_round": 200, "max_depth": 8, "eta": 0.05, "objective": "reg:squarederror"},
              sagemaker_session=session, checkpoint_s3_uri=f"file://{remote}")
    inputs = {"train": TrainingInput(str(folder), content_type="text/csv")}

    def synced_round() -> int:
        rounds = [int(p.name.rsplit(".", 1)[1]) for p in remote.glob("xgboost-checkpoint.*")
                  if p.name.rsplit(".", 1)[1].isdigit()]
        return max(rounds) if rounds else -1

    # 200 rounds of depth-8 trees on 30,000 rows take minutes on a busy machine: generous deadlines
    busy_machine_timeout = 600
    first = Estimator("xgboost", **kw).fit(inputs, wait=False)
    wait_for(lambda: synced_round() >= 5, what="a few rounds' synced checkpoints", timeout=busy_machine_timeout)
    _kill_worker(session, first.name)
    desc = _wait_done(first, timeout=busy_machine_timeout)
    assert desc["TrainingJobStatus"] == "Failed", desc
    killed_at = synced_round()
    assert 5 <= killed_at < 199

    second = Estimator("xgboost", **kw).fit(inputs, wait=False)
    desc = _wait_done(second, timeout=busy_machine_timeout)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    resumed = [line for line in second.logs() if "Resuming from checkpoint" in line]
    assert resumed, second.logs()[:20]
    done = int(resumed[0].split(": ")[-1].split(" of ")[0])
    assert done == killed_at + 1 > 0, resumed[0]  # from the newest checkpoint synced before the kill
    assert synced_round() == 199


def test_kernel_place_restores_and_mirrors_checkpoints(tmp_path, session, data):
    """On the kernel place (a kernel on this machine) the kernel restores and mirrors the checkpoints."""
    pytest.importorskip("ipykernel")
    remote = tmp_path / "ckpt"
    remote.mkdir()
    (remote / "algo-1-state.json").write_text('{"step": 10}')
    (remote / "algo-1-step-10").write_text("10")
    est = Estimator(entry_point="train.py", source_dir=str(_stepper(tmp_path)), sagemaker_session=session,
                    hyperparameters={"steps": 15, "pause": 0.05}, checkpoint_s3_uri=str(remote),
                    backend="kernel", kernel="python3")
    job = est.fit({"train": str(data)}, wait=False)
    desc = _wait_done(job, timeout=90)
    assert desc["TrainingJobStatus"] == "Completed", (desc.get("FailureReason"), job.logs())
    assert "resumed at step 11" in job.logs(), job.logs()
    assert sorted(p.name for p in remote.iterdir()) == ["algo-1-state.json", "algo-1-step-14"]
