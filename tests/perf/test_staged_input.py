"""Staged input: no copy where a link is safe, none left once the job ends, old job folders pruned.

A built-in algorithm's job gets a hard link (or a reflink) of a local channel file; a job that runs
the user's script gets a reflink or a copy, so its writes never reach the user's file. When the job
ends, input/data is empty and the user's files are as they were; `nbsage prune` removes the folders
of ended jobs and keeps their records.
"""
from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nbsage import cli
from nbsage.backends.retention import prune_job_folders
from nbsage.backends.staging import release_input, stage_local_file
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.runtime.layout import JobRoot, private_tree


def user_file(tmp_path: Path, rows: int = 40) -> Path:
    folder = tmp_path / "user-data"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    path = folder / "train.csv"
    path.write_text("".join(f"{i % 2},{rng.random():.4f},{rng.random():.4f}\n" for i in range(rows)))
    path.chmod(0o644)
    return path


def snapshot(path: Path) -> tuple:
    st = path.stat()
    return path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_nlink


def test_a_built_in_job_links_its_input_and_a_script_job_does_not(tmp_path):
    source = user_file(tmp_path)
    before = snapshot(source)
    linked = tmp_path / "root-a" / "train.csv"
    linked.parent.mkdir()
    how = stage_local_file(source, linked, link=True)
    assert how in ("reflink", "hardlink")
    assert linked.read_bytes() == before[0]
    private_tree(linked.parent)  # the job root made private: the user's file keeps its mode
    assert stat.S_IMODE(source.stat().st_mode) == 0o644
    copied = tmp_path / "root-b" / "train.csv"
    copied.parent.mkdir()
    assert stage_local_file(source, copied, link=False) in ("reflink", "copy")
    assert copied.stat().st_ino != source.stat().st_ino
    with open(copied, "a") as f:  # what a script may do to its input
        f.write("9,9,9\n")
    release_input(JobRoot(tmp_path / "root-a").path.parent / "nothing")  # a root with no input: no error
    linked.unlink()
    assert snapshot(source)[:2] == before[:2]


def test_release_input_removes_staged_data_and_keeps_the_rest(tmp_path):
    source = user_file(tmp_path)
    root = JobRoot(tmp_path / "job" / "opt_ml").create()
    (root.config_dir / "hyperparameters.json").write_text("{}")
    (root.model_dir / "model").write_text("m")
    channel = root.channel_dir("train")
    (channel / "sub").mkdir(parents=True)
    stage_local_file(source, channel / "train.csv", link=True)
    (channel / "sub" / "link.csv").symlink_to(source)
    os.mkfifo(root.data_dir / "train_0")
    release_input(root)
    assert list(root.data_dir.iterdir()) == []
    assert (root.config_dir / "hyperparameters.json").exists() and (root.model_dir / "model").exists()
    assert source.exists() and snapshot(source)[:2] == (source.read_bytes(), 0o644)


def test_a_finished_job_leaves_no_copy_of_its_input(tmp_path, session):
    source = user_file(tmp_path)
    before = snapshot(source)
    est = Estimator("xgboost", hyperparameters={"num_round": 1, "max_depth": 2, "objective": "binary:logistic"},
                    sagemaker_session=session)
    est.fit({"train": TrainingInput(str(source.parent), content_type="text/csv")}, logs=False)
    root = JobRoot(est.latest_training_job.describe()["nbsage:JobRoot"])
    assert [p for p in root.data_dir.rglob("*") if not p.is_dir()] == []
    assert (root.config_dir / "inputdataconfig.json").exists() and root.model_archive.exists()
    assert snapshot(source) == before  # same bytes, same mode, no second name left behind


def test_a_script_cannot_change_the_users_input(tmp_path, session):
    source = user_file(tmp_path)
    before = snapshot(source)
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import os
        path = os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")
        with open(path, "a") as f:
            f.write("written by the job\\n")
        os.chmod(path, 0o600)
    """))
    est = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session)
    est.fit({"train": str(source.parent)}, logs=False)
    assert snapshot(source) == before


def test_prune_removes_ended_job_folders_and_keeps_their_records(tmp_path, session, capsys):
    source = user_file(tmp_path)
    est = Estimator("xgboost", hyperparameters={"num_round": 1, "max_depth": 2, "objective": "binary:logistic"},
                    sagemaker_session=session)
    est.fit({"train": TrainingInput(str(source.parent), content_type="text/csv")}, logs=False)
    job = est.latest_training_job
    folder = session.jobs_dir / job.name
    unrecorded = session.jobs_dir / "being-created"
    unrecorded.mkdir()
    assert prune_job_folders(session, 1.0) == []  # it ended a moment ago
    assert cli.main(["--home", str(session.home), "prune", "--dry-run"]) == 0
    assert folder.exists() and "would remove" in capsys.readouterr().out
    assert cli.main(["--home", str(session.home), "prune", "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert not folder.exists() and f"removed {folder}" in out
    assert unrecorded.exists()  # no record and new: it may be a job being created
    assert job.describe()["TrainingJobStatus"] == "Completed"
    assert cli.main(["--home", str(session.home), "prune", "--older-than", "-1"]) != 0


@pytest.mark.parametrize("value", ["abc", "-3", "inf"])
def test_a_bad_retention_setting_is_named(monkeypatch, value):
    from nbsage.backends.retention import retention_days
    from nbsage.errors import ValidationError
    monkeypatch.setenv("NBSAGE_JOB_RETENTION_DAYS", value)
    with pytest.raises(ValidationError, match="NBSAGE_JOB_RETENTION_DAYS.*number of days"):
        retention_days()
