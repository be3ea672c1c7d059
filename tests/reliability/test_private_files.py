"""Private by default: NBSAGE_HOME, the store and job roots belong to the user alone.

A job root holds the request (a secret passed with `environment=` included) and copies of the
training data; the store's database and its WAL hold the same request. Folders are 0700 and files
0600 whatever the umask of the process that started the job, and a home left 0755 by an older nbsage
is tightened when it is opened.
"""
from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

from nbsage.estimator import Estimator
from nbsage.session import Session

SECRET = "s3cr3t-token-for-the-private-test"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _shared(tree: Path) -> list[str]:
    """Paths under `tree` (itself included) that grant anything to group or others."""
    found = [] if _mode(tree) & 0o077 == 0 else [f"{tree} {_mode(tree):o}"]
    for folder, dirs, files in os.walk(tree):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink() and _mode(path) & 0o077:
                found.append(f"{path} {_mode(path):o}")
    return found


def test_a_job_with_a_secret_leaves_nothing_readable_by_others(tmp_path, nbsage_home):
    old = os.umask(0o022)  # the usual umask of the user's notebook or shell
    try:
        src = tmp_path / "src"
        src.mkdir()
        (src / "train.py").write_text(textwrap.dedent("""
            import os
            open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write(os.environ["API_TOKEN"][:2])
            open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "out.txt"), "w").write("x")
        """))
        data = tmp_path / "data"
        data.mkdir()
        (data / "train.csv").write_text("1,0.5\n0,0.25\n")
        session = Session.default()
        job = Estimator(entry_point="train.py", source_dir=str(src), sagemaker_session=session,
                        environment={"API_TOKEN": SECRET}).fit(str(data), logs=False)
        assert job.status == "Completed", job.describe().get("FailureReason")
    finally:
        os.umask(old)
    home = Path(nbsage_home)
    assert _mode(home) == 0o700
    store = [p for p in home.iterdir() if p.name.startswith("nbsage.db")]
    assert home / "nbsage.db" in store
    assert {p.name: _mode(p) for p in store} == {p.name: 0o600 for p in store}
    config = next((home / "jobs").rglob("trainingjobconfig.json"))
    assert SECRET in config.read_text() and _mode(config) == 0o600
    assert not list((home / "jobs").rglob("train.csv"))  # the staged copy of the data went with the job
    assert _shared(home / "jobs") == []


def test_an_endpoint_folder_and_its_log_are_private(tmp_path, nbsage_home):
    from nbsage.serving import endpoints
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "code" / "inference.py").write_text("def model_fn(d):\n    return lambda x: x\n")
    session = Session.default()
    old = os.umask(0o022)
    try:
        endpoints.deploy(session, "private-endpoint", str(model), entry_point="inference.py")
        body, _, _ = session.invoke_endpoint("private-endpoint", b"[1, 2]", "application/json")
        assert body == b"[1, 2]"
        folder = endpoints.endpoint_dir(session, "private-endpoint")
        assert (folder / endpoints.LOG_NAME).exists()
        assert _shared(folder) == []
    finally:
        os.umask(old)
        session.delete_endpoint("private-endpoint")


def test_a_home_made_by_an_older_version_is_tightened_when_opened(nbsage_home):
    home = Path(nbsage_home)
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    db = home / "nbsage.db"
    db.write_bytes(b"")
    os.chmod(db, 0o644)
    session = Session.default()
    session.store.list_jobs()
    assert _mode(home) == 0o700
    assert _mode(db) == 0o600
