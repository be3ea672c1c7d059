"""%%sm_process as a user types it, in a real IPython shell, running real processing jobs."""
from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.error import UsageError

from nbsage.notebook.processing_magics import register
from nbsage.processing import ProcessingJob
from nbsage.session import Session

SCRIPT = """
import os, sys
rows = open("/opt/ml/processing/input/raw/data.csv").read().split()
with open("/opt/ml/processing/output/train/train.csv", "w") as f:
    f.write("\\n".join(r for r in rows if "?" not in r))
with open("/opt/ml/processing/output/report/report.txt", "w") as f:
    f.write(" ".join(sys.argv[1:]) + " " + os.environ.get("MODE", ""))
print("kept", sum("?" not in r for r in rows), "rows")
"""


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython
    start_ipython()  # the test shell, created once per process
    ip = InteractiveShell.instance()
    register(ip)
    ip.user_ns.pop("_sm_processing_job", None)
    yield ip


@pytest.fixture
def raw(tmp_path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "data.csv").write_text("1,2\n3,?\n5,6\n")
    return folder


def test_the_cell_runs_as_a_processing_script_with_inputs_outputs_and_arguments(shell, raw, tmp_path):
    shell.user_ns["raw_dir"] = str(raw)
    line = (f"--input raw_dir:/opt/ml/processing/input/raw --output /opt/ml/processing/output/train "
            f"--output /opt/ml/processing/output/report:{tmp_path / 'report'}:Continuous "
            f"--env MODE=strict --name clean-rows --arguments --drop '?' --keep 'a b'")
    job = shell.run_cell_magic("sm_process", line, SCRIPT)
    assert isinstance(job, ProcessingJob) and shell.user_ns["_sm_processing_job"] is job
    desc = job.describe()
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["ProcessingJobName"] == "clean-rows"
    assert desc["ProcessingInputs"][0]["S3Input"]["S3Uri"] == str(raw)
    assert Path(job.output("train"), "train.csv").read_text().split() == ["1,2", "5,6"]
    assert job.output("train") == Session.default().artifacts.url("processing", "clean-rows", "output", "train")
    assert (tmp_path / "report" / "report.txt").read_text() == "--drop ? --keep a b strict"
    modes = {o["OutputName"]: o["S3Output"]["S3UploadMode"] for o in desc["ProcessingOutputConfig"]["Outputs"]}
    assert modes == {"train": "EndOfJob", "report": "Continuous"}
    assert "kept 2 rows" in job.logs()


def test_no_wait_returns_the_running_job(shell, raw, tmp_path):
    go = tmp_path / "go"  # the job runs until the test has seen it running
    job = shell.run_cell_magic("sm_process", f"--input {raw}:/opt/ml/processing/input/raw --no-wait",
                               f"import os, sys, time\nheld_until = time.time() + 600\n"
                               f"while not os.path.exists({str(go)!r}):\n"
                               f"    if time.time() > held_until: sys.exit('not released within 600 s')\n"
                               f"    time.sleep(0.05)\n"
                               f"print(open('/opt/ml/processing/input/raw/data.csv').read())")
    assert job.status == "InProgress"
    go.touch()
    assert job.wait_quietly(timeout=120)["ProcessingJobStatus"] == "Completed"


@pytest.mark.parametrize("line, cell, message", [
    ("--input {raw}:/tmp/raw", "print(1)", "'/tmp/raw' is not under /opt/ml/processing/"),
    ("--output /opt/ml/model", "print(1)", "'/opt/ml/model' is not under /opt/ml/processing/"),
    ("--output /opt/ml/processing/output/x:Sometimes", "print(1)", "'Sometimes' is neither an upload mode"),
    ("--input {raw}/missing.csv:/opt/ml/processing/input/m", "print(1)", "does not exist"),
    ("--env MODE", "print(1)", "--env 'MODE': write KEY=VALUE"),
    ("", "   \n", "the cell is empty"),
    ("--name bad_name!", "print(1)", "job name 'bad_name!' is not valid"),
])
def test_usage_mistakes_are_one_line_errors(shell, raw, line, cell, message):
    with pytest.raises(UsageError, match=message) as info:
        shell.run_cell_magic("sm_process", line.format(raw=raw), cell)
    assert "\n" not in str(info.value)
    assert "_sm_processing_job" not in shell.user_ns


def test_a_failing_script_is_a_one_line_error_with_its_reason(shell):
    with pytest.raises(UsageError, match="ended Failed: AlgorithmError: the processing script exited with code 1 "
                                         ".*KeyError: 'missing'") as info:
        shell.run_cell_magic("sm_process", "--name fails", "import os\nos.environ['missing']\n")
    assert "\n" not in str(info.value)
    assert shell.user_ns["_sm_processing_job"].status == "Failed"
