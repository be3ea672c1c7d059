"""Model servers forked from a transform job's supervisor (nbsage.transform.servers) are the servers a
fresh interpreter would have been: the same command line and batch environment in /proc, the job's
Environment in effect, their own log files, and StopTransformJob ends them."""
from __future__ import annotations

import json
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nbsage.backends import zygote
from nbsage.model import Model
from support import wait_for

pytestmark = [pytest.mark.filterwarnings("ignore:.*UBJSON:UserWarning"),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forking servers is Linux only")]


@pytest.fixture
def warm(session, archive):
    """The pre-warmed runtime for this test's environment, up and listening (the supervisor forks from it);
    after the model is made, since importing xgboost sets import-time variables (KMP_*) here."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # what the local place hands on
    path = zygote.socket_for(env)
    if path is None:
        pytest.skip("no private folder for the zygote's socket here")
    zygote.start(env)
    wait_for(path.exists, 90, "the zygote to listen")


@pytest.fixture
def archive(tmp_path):
    import xgboost as xgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=X[:, 0] > 0), 2)
    booster.save_model(str(tmp_path / "xgboost-model"))
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "xgboost-model", arcname="xgboost-model")
    return tmp_path / "model.tar.gz"


def _servers(session, job_name: str) -> list[int]:
    pid = session.store.get_job(job_name)["supervisor_pid"]
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _environ(pid: int) -> dict:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in entries if b"=" in e)


def test_forked_servers_have_the_command_line_environment_and_logs_of_fresh_ones(session, warm, archive, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a-small.csv").write_text("0.5,1,2\n-1,0,0\n")
    (tmp_path / "in" / "b-big.csv").write_text("0.1,0.2,0.3\n" * 20000)  # one record a request: still running
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        instance_count=2, strategy="SingleRecord", assemble_with="Line", output_path=str(tmp_path / "out"),
        max_concurrent_transforms=1, env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/jsonlines",
                                          "MY_SETTING": "on"})
    job = transformer.transform(str(tmp_path / "in"), content_type="text/csv", split_type="Line", wait=False)
    wait_for(lambda: job.describe()["nbsage:RecordsTransformed"] > 2, what="the big object under way")
    servers = _servers(session, job.name)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0") for pid in servers]
    environs = [_environ(pid) for pid in servers]
    transformer.stop_transform_job()

    assert job.describe()["TransformJobStatus"] == "Stopped"
    assert len(servers) == 2 and not any(Path(f"/proc/{pid}").exists() for pid in servers)
    for command, environ in zip(commands, environs):
        assert [c.decode() for c in command[:4]] == [sys.executable, "-m", "nbsage.runtime", "serve"]
        assert environ["SAGEMAKER_BATCH"] == "true" and environ["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "6"
        assert environ["SAGEMAKER_BATCH_STRATEGY"] == "SINGLE_RECORD" and environ["MY_SETTING"] == "on"
    # the job's Environment is the server's own: its default Accept shapes the answers
    answers = (tmp_path / "out" / "a-small.csv.out").read_text().splitlines()
    assert [set(json.loads(line)) for line in answers] == [{"score"}, {"score"}]
    folder = session.jobs_dir / job.name
    supervisor_log = (folder / "supervisor.log").read_text()
    assert "forked from the pre-warmed runtime" in supervisor_log, supervisor_log
    assert "listening on" not in supervisor_log
    for i in (1, 2):
        server_log = next(folder.rglob(f"server-{i}.log")).read_text()
        assert "forked from the transform job's supervisor" in server_log and "listening on" in server_log
        assert "shutting down" in server_log
