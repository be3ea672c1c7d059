"""`nbsage transform`, `nbsage jobs --kind transform`, `%sm_transform` / `%%sm_transform` and `%sm_jobs --kind
transform`, as a user types them, running real transform jobs."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest
from IPython.core.error import UsageError

from nbsage import cli
from nbsage.model import Model
from nbsage.notebook.transform_magics import register
from nbsage.transformer import TransformJob

pytestmark = pytest.mark.filterwarnings("ignore:.*UBJSON:UserWarning")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    import xgboost as xgb
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 3))
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 2}, xgb.DMatrix(X, label=X[:, 0]), 3)
    booster.save_model(str(folder / "xgboost-model"))
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        tar.add(folder / "xgboost-model", arcname="xgboost-model")
    return folder / "model.tar.gz"


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython
    start_ipython()
    ip = InteractiveShell.instance()
    register(ip)
    from nbsage.notebook.magics import SageMakerMagics
    ip.register_magics(SageMakerMagics(ip))
    ip.user_ns.pop("_sm_transform_job", None)
    yield ip


def test_the_cli_runs_a_transform_and_lists_it(session, archive, tmp_path, capsys):
    Model(archive, algorithm="xgboost", name="reg", sagemaker_session=session).transformer()  # records "reg"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_text("1,2,3\n4,5,6\n")
    code = cli.main(["transform", "reg", "--data", str(tmp_path / "in"), "--content-type", "text/csv",
                     "--split-type", "Line", "--assemble-with", "Line", "--output-path", str(tmp_path / "out"),
                     "--name", "cli-batch", "--quiet"])
    assert code == 0
    assert "cli-batch: Completed; 2 records, 1/1 objects" in capsys.readouterr().out
    assert len((tmp_path / "out" / "x.csv.out").read_text().split()) == 2
    from nbsage.notebook.display import training_bundle  # the live monitor's view of a transform job
    job = TransformJob("cli-batch", session)
    text = training_bundle(job.watched().describe(), job.logs(), None)["text/plain"]
    assert "Completed" in text and "1/1" in text and "records transformed = 2" in text
    assert cli.main(["jobs", "--kind", "transform"]) == 0
    listing = capsys.readouterr().out
    assert "cli-batch" in listing and "Completed" in listing and "reg" in listing
    assert cli.main(["transform", "reg", "--data", str(tmp_path / "in"), "--content-type", "image/png",
                     "--split-type", "Line", "--quiet"]) == cli.EXIT_FAILED  # the endpoint's 415, with file and line
    assert "ClientError: x.csv lines 1-2: the model answered 415" in capsys.readouterr().err
    assert cli.main(["transform", "reg", "--data", str(tmp_path / "in"), "--split-type", "Lines"]) == cli.EXIT_USAGE
    assert "split_type 'Lines' is not supported; use 'None' or 'Line'" in capsys.readouterr().err


def test_the_cell_magic_takes_settings_as_yaml_and_the_job_list_shows_it(session, archive, tmp_path, shell):
    shell.user_ns["reg_model"] = Model(archive, algorithm="xgboost", name="reg", sagemaker_session=session)
    (tmp_path / "in.csv").write_text("id1,1,2,3\nid2,4,5,6\n")
    shell.user_ns["batch"] = str(tmp_path / "in.csv")
    job = shell.run_cell_magic("sm_transform", f"reg_model --data batch --output-path {tmp_path / 'out'} --quiet",
                               'content_type: text/csv\nsplit_type: Line\nassemble_with: Line\naccept: text/csv\n'
                               'strategy: SingleRecord\ninput_filter: "$[1:]"\njoin_source: Input\n'
                               'output_filter: "$[0,-1]"\n')
    assert isinstance(job, TransformJob) and shell.user_ns["_sm_transform_job"].name == job.name
    rows = [line.split(",") for line in (tmp_path / "out" / "in.csv.out").read_text().splitlines()]
    assert [r[0] for r in rows] == ["id1", "id2"] and all(len(r) == 2 and float(r[1]) == float(r[1]) for r in rows)
    listed = shell.run_line_magic("sm_jobs", "--kind transform")
    assert listed[0][0] == job.name and "no transform jobs" not in repr(listed)
    with pytest.raises(UsageError, match="'split' is not a transform setting; did you mean 'split_type'"):
        shell.run_cell_magic("sm_transform", "reg --data batch", "split: Line\n")
