"""Processing jobs with real processes: scripts written for SageMaker that hard-code
/opt/ml/processing/... run unchanged, each job in its own view of /opt/ml; the config files are
written as specified; outputs land in the artifact store (Continuous ones while the job runs);
stop, MaxRuntimeInSeconds, failures and a job killed mid-run end the job as SageMaker would."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import nbsage
from nbsage.errors import JobFailed, ValidationError
from nbsage.processing import ProcessingInput, ProcessingJob, ProcessingOutput, Processor, ScriptProcessor
from nbsage.runtime.processing import prepare
from nbsage.session import Session
from support import wait_for

TIMEOUT = 30
HOST_HAS_OPT_ML = os.path.exists("/opt/ml")


def write_script(tmp_path: Path, body: str, name: str = "process.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    (folder / "part").mkdir(parents=True)
    (folder / "a.csv").write_text("1,2\n3,4\n")
    (folder / "part" / "b.csv").write_text("5,6\n")
    return folder


# A SageMaker processing script: every path is hard-coded under /opt/ml.
PREPROCESS = """
    import json, os, sys
    rows = open("/opt/ml/processing/input/data/a.csv").read().split()
    rows += open("/opt/ml/processing/input/data/part/b.csv").read().split()
    rows += open("/opt/ml/processing/input/single/labels.txt").read().split()
    os.makedirs("/opt/ml/processing/output/train", exist_ok=True)
    with open("/opt/ml/processing/output/train/train.csv", "w") as f:
        f.write("\\n".join(rows) + "\\n")
    os.makedirs("/opt/ml/processing/output/config/nested", exist_ok=True)
    for name in ("processingjobconfig.json", "resourceconfig.json"):
        with open("/opt/ml/config/" + name) as src, open("/opt/ml/processing/output/config/nested/" + name, "w") as dst:
            dst.write(src.read())
    with open("/opt/ml/output/message", "w") as f:
        f.write("wrote %d rows" % len(rows))
    print("argv", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("STAGE"))
"""


def test_a_script_hard_coding_opt_ml_reads_its_inputs_and_its_outputs_land_in_the_artifact_store(tmp_path, data):
    labels = tmp_path / "labels.txt"
    labels.write_text("7,8\n")
    script = write_script(tmp_path, PREPROCESS, "preprocess.py")
    processor = ScriptProcessor(command=["python3"], env={"STAGE": "dev"}, max_runtime_in_seconds=120,
                                base_job_name="prep")
    job = processor.run(code=str(script),
                        inputs=[ProcessingInput(str(data), "/opt/ml/processing/input/data", input_name="data"),
                                ProcessingInput(f"file://{labels}", "/opt/ml/processing/input/single/")],
                        outputs=[ProcessingOutput("/opt/ml/processing/output/train", output_name="train"),
                                 ProcessingOutput("/opt/ml/processing/output/config", str(tmp_path / "out-config"))],
                        arguments=["--split", "0.2"], logs=False)
    assert processor.latest_job is job and isinstance(job, nbsage.ProcessingJob)
    desc = job.describe()
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["ExitMessage"] == "wrote 4 rows"
    assert desc["AppSpecification"]["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/preprocess.py"]
    assert desc["AppSpecification"]["ContainerArguments"] == ["--split", "0.2"]
    assert [i["InputName"] for i in desc["ProcessingInputs"]] == ["data", "input-2", "code"]
    assert desc["ProcessingInputs"][1]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/single"

    # the default destination is in the artifact store, under processing/<job>/output/<name>
    session = Session.default()
    train_uri = job.output("train")
    assert train_uri == session.artifacts.url("processing", job.name, "output", "train")
    assert Path(train_uri, "train.csv").read_text().split() == ["1,2", "3,4", "5,6", "7,8"]
    outputs = desc["ProcessingOutputConfig"]["Outputs"]
    assert outputs[0]["S3Output"] == {"S3Uri": train_uri, "LocalPath": "/opt/ml/processing/output/train",
                                      "S3UploadMode": "EndOfJob"}

    # what the script saw at /opt/ml/config: processingjobconfig.json echoes the request, resourceconfig the hosts
    config_dir = tmp_path / "out-config" / "nested"
    config = json.loads((config_dir / "processingjobconfig.json").read_text())
    assert config["ProcessingJobName"] == job.name
    assert config["ProcessingJobArn"].endswith(f"processing-job/{job.name}")
    assert config["AppSpecification"]["ContainerEntrypoint"] == desc["AppSpecification"]["ContainerEntrypoint"]
    assert config["Environment"] == {"STAGE": "dev"}
    assert config["StoppingCondition"] == {"MaxRuntimeInSeconds": 120}
    assert config["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    s3_input = config["ProcessingInputs"][0]["S3Input"]
    assert s3_input["LocalPath"] == "/opt/ml/processing/input/data"
    assert {"S3Uri", "S3DataType", "S3InputMode", "S3DataDistributionType", "S3CompressionType",
            "S3DownloadMode"} <= set(s3_input)
    assert config["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3UploadMode"] == "EndOfJob"
    resources = json.loads((config_dir / "resourceconfig.json").read_text())
    assert resources == {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0",
                         "current_instance_type": "local"}
    logs = "\n".join(job.logs())
    assert "argv ['--split', '0.2'] cwd /opt/ml env dev" in logs
    assert "/opt/ml is this job's own root" in logs
    assert os.path.exists("/opt/ml") == HOST_HAS_OPT_ML  # the host's /opt is untouched


LISTING = """
    import os, sys, time
    name, barrier = sys.argv[1], sys.argv[2]
    open(os.path.join(barrier, name), "w").close()
    deadline = time.time() + 300
    while len(os.listdir(barrier)) < 2:  # both jobs run at the same time
        if time.time() > deadline:
            sys.exit("the other job did not start within 300 s")
        time.sleep(0.05)
    seen = []
    for folder, _, files in os.walk("/opt/ml/processing"):
        seen += [os.path.join(folder, f) for f in files]
    os.makedirs("/opt/ml/processing/output/seen", exist_ok=True)
    with open("/opt/ml/processing/output/seen/files.txt", "w") as f:
        f.write("\\n".join(sorted(seen)))
    with open("/opt/ml/output/message", "w") as f:
        f.write(name)
"""


def test_two_jobs_running_at_the_same_time_each_see_only_their_own_files(tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = write_script(tmp_path, LISTING, "listing.py")
    jobs = []
    for name in ("first", "second"):
        source = tmp_path / name
        source.mkdir()
        (source / f"{name}.csv").write_text(name)
        jobs.append(ScriptProcessor().run(
            code=str(script), inputs=[ProcessingInput(str(source), "/opt/ml/processing/input/data")],
            outputs=[ProcessingOutput("/opt/ml/processing/output/seen", output_name="seen")],
            arguments=[name, str(barrier)], wait=False, job_name=f"listing-{name}"))
    for job, name in zip(jobs, ("first", "second")):
        desc = job.wait_quietly(timeout=TIMEOUT)
        assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
        assert desc["ExitMessage"] == name
        seen = Path(job.output("seen"), "files.txt").read_text().split()
        assert seen == ["/opt/ml/processing/input/code/listing.py", f"/opt/ml/processing/input/data/{name}.csv"]


def test_destinations_outside_opt_ml_processing_are_refused_with_the_path_named(tmp_path, data):
    script = write_script(tmp_path, "print('hi')\n")
    bad = [
        dict(inputs=[ProcessingInput(str(data), "/opt/ml/input/data")]),
        dict(inputs=[ProcessingInput(str(data), "/opt/ml/processing/../model")]),
        dict(inputs=[ProcessingInput(str(data), "data")]),
        dict(outputs=[ProcessingOutput("/tmp/out")]),
        dict(outputs=[ProcessingOutput("/opt/ml/processing/")]),
    ]
    for kwargs in bad:
        with pytest.raises(ValidationError, match="is not under /opt/ml/processing/"):
            ScriptProcessor().run(code=str(script), wait=False, **kwargs)
    with pytest.raises(ValidationError, match="does not exist"):
        ScriptProcessor().run(code=str(script), inputs=[ProcessingInput(str(tmp_path / "nope"), "/opt/ml/processing/x")])
    with pytest.raises(ValidationError, match="s3_upload_mode 'Sometimes' is not supported"):
        ScriptProcessor().run(code=str(script), outputs=[ProcessingOutput("/opt/ml/processing/o", s3_upload_mode="Sometimes")])
    with pytest.raises(ValidationError, match="Pipe mode"):
        ScriptProcessor().run(code=str(script), inputs=[ProcessingInput(str(data), "/opt/ml/processing/i", s3_input_mode="Pipe")])
    with pytest.raises(ValidationError, match="same path"):
        ScriptProcessor().run(code=str(script), inputs=[ProcessingInput(str(data), "/opt/ml/processing/i"),
                                                        ProcessingInput(str(data), "/opt/ml/processing/i/")])
    with pytest.raises(ValidationError, match="entrypoint"):
        Processor(image_uri="my-image").run()
    assert Session.default().store.list_jobs(kind="processing") == []  # nothing was recorded


def test_processor_runs_its_entrypoint_with_the_arguments_and_no_train_argument(tmp_path):
    code = "import sys; open('/opt/ml/processing/output/out/argv.txt', 'w').write(repr(sys.argv[1:]))"
    processor = Processor(image_uri="my-image:latest", entrypoint=["python3", "-c", code])
    job = processor.run(outputs=[ProcessingOutput("/opt/ml/processing/output/out", str(tmp_path / "out"))],
                        arguments=["--n", 3], logs=False)
    assert job.status == "Completed"
    assert (tmp_path / "out" / "argv.txt").read_text() == "['--n', '3']"
    assert job.describe()["AppSpecification"]["ImageUri"] == "my-image:latest"


CONTINUOUS = """
    import os, sys, time
    go = sys.argv[1]
    for d in ("/opt/ml/processing/output/logs", "/opt/ml/processing/output/result"):
        os.makedirs(d, exist_ok=True)
    with open("/opt/ml/processing/output/logs/part-0.txt", "w") as f:
        f.write("early")
    with open("/opt/ml/processing/output/result/result.txt", "w") as f:
        f.write("final")
    deadline = time.time() + 600
    while not os.path.exists(go):  # the test has seen the Continuous upload
        if time.time() > deadline:
            sys.exit(f"{go} did not appear within 600 s")
        time.sleep(0.05)
    with open("/opt/ml/processing/output/logs/part-1.txt", "w") as f:
        f.write("late")
"""


def test_a_continuous_output_is_uploaded_while_the_job_runs_and_an_end_of_job_output_at_the_end(tmp_path):
    go = tmp_path / "go"
    script = write_script(tmp_path, CONTINUOUS)
    job = ScriptProcessor().run(
        code=str(script), arguments=[str(go)], wait=False,
        outputs=[ProcessingOutput("/opt/ml/processing/output/logs", str(tmp_path / "logs"), "logs",
                                  s3_upload_mode="Continuous"),
                 ProcessingOutput("/opt/ml/processing/output/result", str(tmp_path / "result"), "result")])
    wait_for(lambda: (tmp_path / "logs" / "part-0.txt").exists(), what="the Continuous upload")
    assert job.status == "InProgress"
    assert (tmp_path / "logs" / "part-0.txt").read_text() == "early"
    assert not (tmp_path / "result").exists()  # EndOfJob: nothing before the end
    go.touch()
    desc = job.wait(logs=False)
    assert desc["ProcessingJobStatus"] == "Completed"
    assert (tmp_path / "logs" / "part-1.txt").read_text() == "late"
    assert (tmp_path / "result" / "result.txt").read_text() == "final"


def test_a_non_zero_exit_fails_the_job_with_the_stderr_tail_and_keeps_the_exit_message(tmp_path):
    script = write_script(tmp_path, """
        import sys
        open("/opt/ml/output/message", "w").write("validation found 3 bad rows")
        print("checking rows", flush=True)
        print("ValueError: row 17 has 3 columns, expected 4", file=sys.stderr)
        sys.exit(2)
    """)
    out = tmp_path / "never"
    processor = ScriptProcessor()
    with pytest.raises(JobFailed, match="processing job .* ended Failed: AlgorithmError: the processing script "
                                        "exited with code 2"):
        processor.run(code=str(script), logs=False, outputs=[ProcessingOutput("/opt/ml/processing/output/o", str(out))])
    desc = ProcessingJob.from_processing_name(None, processor.latest_job.name).describe()
    assert desc["ProcessingJobStatus"] == "Failed"
    assert "row 17 has 3 columns, expected 4" in desc["FailureReason"]
    assert len(desc["FailureReason"]) <= 1024
    assert desc["ExitMessage"] == "validation found 3 bad rows"
    assert not out.exists()  # EndOfJob outputs of a failed job are not uploaded


SLEEPER = """
    import os, sys, time
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    print("sleeping", flush=True)
    time.sleep(60)
"""


def start_sleeper(tmp_path: Path, **processor_args) -> tuple[ProcessingJob, int]:
    marker = tmp_path / f"pid-{time.monotonic_ns()}"
    script = write_script(tmp_path, SLEEPER, "sleeper.py")
    job = ScriptProcessor(**processor_args).run(code=str(script), arguments=[str(marker)], wait=False)
    pid = int(wait_for(lambda: marker.exists() and marker.read_text(), what="the script to start"))
    return job, pid


def test_max_runtime_in_seconds_stops_the_job(tmp_path):
    script = write_script(tmp_path, "import time\nprint('working', flush=True)\ntime.sleep(60)\n")
    job = ScriptProcessor(max_runtime_in_seconds=1).run(code=str(script), wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["ProcessingJobStatus"] == "Stopped"
    assert desc["FailureReason"].startswith("MaxRuntimeExceeded")
    assert desc["nbsage:SecondaryStatus"] == "MaxRuntimeExceeded"


def test_stop_ends_a_running_job_stopped(tmp_path):
    job, pid = start_sleeper(tmp_path)
    job.stop()
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["ProcessingJobStatus"] == "Stopped"
    wait_for(lambda: not _alive(pid), what="the script to end")


@pytest.mark.parametrize("victim", ["script", "runtime"])
def test_a_job_killed_mid_run_ends_failed(tmp_path, victim):
    job, pid = start_sleeper(tmp_path)
    if victim == "runtime":
        pid = Session.default().store.get_job(job.name)["runtime_pid"]
    os.kill(pid, signal.SIGKILL)
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["ProcessingJobStatus"] == "Failed"
    assert "killed by SIGKILL" in desc["FailureReason"]


def test_without_a_namespace_a_hard_coded_path_fails_with_a_message_naming_it(tmp_path, data, monkeypatch):
    monkeypatch.setenv("NBSAGE_PROCESSING_ISOLATION", "none")
    hard_coded = write_script(tmp_path, "print(open('/opt/ml/processing/input/data/a.csv').read())\n", "hard.py")
    job = ScriptProcessor().run(code=str(hard_coded), wait=False,
                                inputs=[ProcessingInput(str(data), "/opt/ml/processing/input/data")])
    desc = job.wait_quietly(timeout=TIMEOUT)
    assert desc["ProcessingJobStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("ClientError: the script uses the hard-coded path /opt/ml/processing/input/data/a.csv")
    assert "could not give the job its own /opt/ml" in reason and desc["nbsage:JobRoot"] in reason
    # paths given as arguments (and the script's own path) point at the job root instead
    by_argument = write_script(tmp_path, """
        import os, sys
        print(sorted(os.listdir(sys.argv[1])), os.environ["NBSAGE_OPT_ML"] == os.getcwd())
    """, "arg.py")
    job = ScriptProcessor().run(code=str(by_argument), arguments=["/opt/ml/processing/input/data"], logs=False,
                                inputs=[ProcessingInput(str(data), "/opt/ml/processing/input/data")])
    assert job.status == "Completed"
    assert "['a.csv', 'part'] True" in job.logs()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# ---- the container side alone (no store, no supervisor) -----------------------------------------
def _root_with(tmp_path: Path, script: str, **request) -> Path:
    root = tmp_path / "opt_ml"
    req = {"ProcessingJobName": "direct",
           "AppSpecification": {"ImageUri": "x", "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/s.py"]},
           "ProcessingInputs": [{"InputName": "code", "S3Input": {"S3Uri": "unused", "LocalPath": "/opt/ml/processing/input/code"}}],
           **request}
    prepare(root, req)
    (root / "processing" / "input" / "code" / "s.py").write_text(textwrap.dedent(script))
    return root


def _run_runtime(root: Path, python: str = sys.executable, user: list[str] | None = None, **env):
    repo = str(Path(nbsage.__file__).resolve().parent.parent)
    environ = dict(os.environ, PYTHONPATH=repo, **env)
    return subprocess.run([*(user or []), python, "-m", "nbsage.runtime", "process", "--root", str(root)],
                          capture_output=True, text=True, env=environ, timeout=TIMEOUT)


def test_an_exit_message_that_is_not_utf8_fails_the_job(tmp_path):
    root = _root_with(tmp_path, "open('/opt/ml/output/message', 'wb').write(b'\\xff\\xfe bad')\n")
    result = _run_runtime(root)
    assert result.returncode == 1
    assert (root / "output" / "failure").read_text() == "ClientError: /opt/ml/output/message is not UTF-8 text"


def test_isolation_namespace_mode_is_strict_and_unknown_modes_are_refused(tmp_path):
    root = _root_with(tmp_path, "print('ok')\n")
    result = _run_runtime(root, NBSAGE_PROCESSING_ISOLATION="sometimes")
    assert result.returncode == 1
    assert "'sometimes' is not one of auto, namespace, none" in (root / "output" / "failure").read_text()
    (root / "output" / "failure").unlink()
    result = _run_runtime(root, NBSAGE_PROCESSING_ISOLATION="namespace")
    assert result.returncode == 0, result.stderr  # this machine can make one (the tests rely on it)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs root (to become an unprivileged user), setpriv and /usr/bin/python3")
def test_an_unprivileged_user_gets_a_private_opt_ml_too(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="nbsage-unpriv-", dir="/tmp"))
    try:
        base.chmod(0o777)
        root = _root_with(base, """
            import os
            os.makedirs("/opt/ml/processing/output/o", exist_ok=True)
            open("/opt/ml/processing/output/o/who.txt", "w").write(str(os.getuid()))
        """)
        for path in [base, *base.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "/usr/bin/python3", "-c", "import sys"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("cannot run /usr/bin/python3 as the nobody user here")
        result = _run_runtime(root, "/usr/bin/python3",
                              user=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        if "no private /opt/ml" in result.stdout:
            pytest.skip(f"unprivileged user namespaces are not available here: {result.stdout.strip()}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "private user and mount namespace" in result.stdout
        written = root / "processing" / "output" / "o" / "who.txt"
        assert written.read_text() == "0"  # root inside the namespace ...
        assert written.stat().st_uid == 65534  # ... and the invoking user outside
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_namespace_that_cannot_be_finished_is_probed_in_a_child_and_leaves_the_runtime_as_it_was(tmp_path, monkeypatch):
    from nbsage.runtime import private_view as runtime  # where the namespace code lives

    def refuse(*args, **kwargs):
        raise runtime.IsolationUnavailable("mount /opt failed: simulated (as AppArmor's userns restriction does)")

    monkeypatch.setattr(runtime, "_mount", refuse)
    monkeypatch.setattr(runtime.threading, "active_count", lambda: 1)
    before = os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/user")
    assert runtime.probe_private_opt_ml(tmp_path) == "mount /opt failed: simulated (as AppArmor's userns restriction does)"
    assert (os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/user")) == before


def test_wait_follows_the_job_with_the_notebook_live_monitor(tmp_path, monkeypatch):
    from nbsage import watch
    from nbsage.notebook.display import LiveMonitor

    bundles: list[dict] = []
    monkeypatch.setattr(watch, "_factories", [lambda job, logs=True: LiveMonitor(job, logs=logs, publish=bundles.append)])
    script = write_script(tmp_path, "import sys\nprint('half way', flush=True)\nsys.exit(4)\n")
    with pytest.raises(JobFailed):
        ScriptProcessor().run(code=str(script), job_name="followed")
    final = bundles[-1]["text/plain"]
    assert "followed: Failed" in final and "exited with code 4" in final
    assert any("half way" in b["text/plain"] for b in bundles)


def test_memory_urls_are_refused_before_anything_is_recorded(tmp_path):
    from nbsage.errors import PlaceError
    script = write_script(tmp_path, "print(1)\n")
    with pytest.raises(PlaceError, match="memory://"):
        ScriptProcessor().run(code=str(script), outputs=[ProcessingOutput("/opt/ml/processing/o", "memory://out")])
    assert Session.default().store.list_jobs(kind="processing") == []
