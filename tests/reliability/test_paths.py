"""Nothing escapes its folder: remote keys that climb out with `..` fail the job, naming the key.

Each case is a real job on the local place reading a real S3 server on loopback (moto), whose keys
are kept verbatim as S3 keeps them. The hostile key points at a file outside the job root (the
"victim"); the job must fail with the key in its FailureReason, the victim must be untouched, the
channel folder must hold nothing (keys are checked before anything is written), and the job's
record must stay readable.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbsage.backends.checkpoints import CheckpointSync
from nbsage.backends.staging import stage_channel
from nbsage.errors import ChannelError, JobFailed, ValidationError
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.paths import landing_path
from nbsage.processing import ProcessingInput, ProcessingJob, ScriptProcessor
from nbsage.session import Session

PRECIOUS = "precious, not to be overwritten\n"
CLIMB = "../" * 40  # more than any job root is deep: normalised, it reaches "/"

SCRIPT = """
import os
for dirpath, _, files in os.walk("/opt/ml/input/data"):
    print("saw", dirpath, files)
"""


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text(PRECIOUS)
    return path


@pytest.fixture
def script(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    return src


def hostile(prefix: str, victim: Path) -> str:
    """A key under `prefix` that, joined to a local folder and normalised, is the victim."""
    return f"{prefix}{CLIMB}{str(victim).lstrip('/')}"


def assert_untouched(victim: Path) -> None:
    assert not victim.is_symlink(), "the victim was replaced by a symbolic link"
    assert victim.read_text() == PRECIOUS, "the victim was overwritten"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.txt"]


def fit_failing(est: Estimator, inputs=None):
    """Run the job to its end; it must fail (JobFailed), and its record is returned to look at."""
    with pytest.raises(JobFailed):
        est.fit(inputs, logs=False)
    return est.latest_training_job


def assert_failed_naming(job, key: str) -> dict:
    desc = job.describe()  # the record is still there and readable
    assert desc["TrainingJobStatus"] == "Failed", desc
    reason = desc["FailureReason"]
    assert reason.startswith("ClientError:"), reason
    assert repr(key) in reason or key in reason, reason
    assert "outside" in reason, reason
    return desc


def channel_files(job, channel: str = "train") -> list[Path]:
    folder = Session.default().jobs_dir / job.name / "opt_ml" / "input" / "data" / channel
    return [p for p in folder.rglob("*")] if folder.exists() else []


# ---- the rule itself --------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "..", ".", "a/..", "", "a\x00b"])
def test_landing_path_refuses_keys_that_do_not_name_a_file_below_the_folder(tmp_path, key):
    with pytest.raises(ChannelError, match="key"):
        landing_path(tmp_path, key, what="channel 'train'", error=ChannelError)


@pytest.mark.parametrize("key, lands", [("a.csv", "a.csv"), ("sub/a.csv", "sub/a.csv"), ("a//b", "a/b"),
                                        ("a/./b", "a/b"), ("a/../b", "b"), ("..a", "..a")])
def test_landing_path_normalises_keys_that_stay_below_the_folder(tmp_path, key, lands):
    assert landing_path(tmp_path, key) == tmp_path / lands


def test_landing_path_refuses_a_folder_that_leads_out_through_a_symbolic_link(tmp_path, victim):
    (tmp_path / "channel").mkdir()
    (tmp_path / "channel" / "link").symlink_to(victim.parent)
    with pytest.raises(ValidationError, match="symbolic link"):
        landing_path(tmp_path / "channel", "link/victim.txt")


# ---- (a) ManifestFile keys, File and FastFile -------------------------------------------------------
@pytest.mark.parametrize("input_mode", ["File", "FastFile"])
def test_manifest_key_climbing_out_fails_the_job_and_writes_nothing_outside(s3_bucket, script, victim, tmp_path,
                                                                            input_mode):
    name, client = s3_bucket
    bad = hostile("", victim)
    client.put_object(Bucket=name, Key="data/good.csv", Body=b"1,2\n")
    client.put_object(Bucket=name, Key=f"data/{bad}", Body=b"attacker's bytes\n")
    manifest = [{"prefix": f"s3://{name}/data/"}, "good.csv", bad]
    client.put_object(Bucket=name, Key="train.manifest", Body=json.dumps(manifest).encode())
    est = Estimator(entry_point="train.py", source_dir=str(script))
    job = fit_failing(est, {"train": TrainingInput(f"s3://{name}/train.manifest", s3_data_type="ManifestFile",
                                                   input_mode=input_mode)})
    assert_untouched(victim)
    assert_failed_naming(job, bad)
    assert channel_files(job) == []


# ---- (b) checkpoint objects ---------------------------------------------------------------------------
def test_checkpoint_object_climbing_out_fails_the_job_at_start_and_writes_nothing_outside(s3_bucket, script,
                                                                                          victim):
    name, client = s3_bucket
    client.put_object(Bucket=name, Key="ckpt/step-1.bin", Body=b"ok")
    bad = hostile("", victim)
    client.put_object(Bucket=name, Key=f"ckpt/{bad}", Body=b"attacker's bytes\n")
    est = Estimator(entry_point="train.py", source_dir=str(script), checkpoint_s3_uri=f"s3://{name}/ckpt")
    job = fit_failing(est)
    assert_untouched(victim)
    assert_failed_naming(job, bad)
    checkpoints = Session.default().jobs_dir / job.name / "opt_ml" / "checkpoints"
    assert not checkpoints.exists() or list(checkpoints.rglob("*")) == []
    # the hostile object is refused, not deleted: the checkpoint prefix keeps every object
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="ckpt/")["Contents"]}
    assert keys == {"ckpt/step-1.bin", f"ckpt/{bad}"}


def test_checkpoint_restore_checks_every_key_before_copying_any(s3_bucket, victim, tmp_path):
    name, client = s3_bucket
    client.put_object(Bucket=name, Key="ckpt/a-step.bin", Body=b"ok")
    bad = hostile("", victim)
    client.put_object(Bucket=name, Key=f"ckpt/{bad}", Body=b"attacker's bytes\n")
    local = tmp_path / "job" / "checkpoints"
    with pytest.raises(ValidationError) as raised:
        CheckpointSync(f"s3://{name}/ckpt", local).restore()
    assert bad in str(raised.value) and str(local) in str(raised.value)
    assert list(local.rglob("*")) == []
    assert_untouched(victim)


# ---- (c) S3Prefix keys ----------------------------------------------------------------------------------
def test_s3_prefix_key_climbing_out_fails_the_job_instead_of_being_skipped(s3_bucket, script, victim):
    name, client = s3_bucket
    client.put_object(Bucket=name, Key="train/good.csv", Body=b"1,2\n")
    bad = hostile("", victim)
    client.put_object(Bucket=name, Key=f"train/{bad}", Body=b"attacker's bytes\n")
    job = fit_failing(Estimator(entry_point="train.py", source_dir=str(script)), {"train": f"s3://{name}/train"})
    assert_untouched(victim)
    assert_failed_naming(job, bad)
    assert channel_files(job) == []


@pytest.mark.parametrize("input_mode", ["File", "FastFile", "Pipe"])
def test_stage_channel_checks_every_key_before_writing_any(s3_bucket, victim, tmp_path, input_mode):
    name, client = s3_bucket
    client.put_object(Bucket=name, Key="train/a-good.csv", Body=b"1,2\n")
    bad = hostile("", victim)
    client.put_object(Bucket=name, Key=f"train/{bad}", Body=b"attacker's bytes\n")
    dest = tmp_path / "dest"
    with pytest.raises(ChannelError) as raised:
        stage_channel(f"s3://{name}/train", dest, "train", input_mode=input_mode, fastfile_mount=False,
                      cache_dir=tmp_path / "cache")
    assert bad in str(raised.value) and str(dest) in str(raised.value)
    assert not dest.exists() or list(dest.rglob("*")) == []
    assert_untouched(victim)


# ---- processing inputs -------------------------------------------------------------------------------------
def test_processing_input_key_climbing_out_fails_the_job_naming_the_key(s3_bucket, victim, tmp_path):
    """(ProcessingInput refuses ManifestFile sources: an S3Prefix is how a processing key arrives.)"""
    name, client = s3_bucket
    client.put_object(Bucket=name, Key="pin/good.csv", Body=b"1,2\n")
    bad = hostile("", victim)
    client.put_object(Bucket=name, Key=f"pin/{bad}", Body=b"attacker's bytes\n")
    source = f"s3://{name}/pin"
    code = tmp_path / "process.py"
    code.write_text("print('processing')\n")
    processor = ScriptProcessor()
    with pytest.raises(JobFailed):
        processor.run(code=str(code), logs=False,
                      inputs=[ProcessingInput(source, "/opt/ml/processing/input/data", input_name="data")])
    desc = ProcessingJob.from_processing_name(None, processor.latest_job.name).describe()
    assert desc["ProcessingJobStatus"] == "Failed", desc
    assert desc["FailureReason"].startswith("ClientError:") and bad in desc["FailureReason"], desc["FailureReason"]
    assert_untouched(victim)
    staged = Session.default().jobs_dir / processor.latest_job.name
    assert not any(p.is_file() for p in staged.rglob("processing/input/data/**/*"))



# ---- upload_data copies a prefix's objects through a local folder ------------------------------------------
def test_upload_data_of_a_prefix_with_a_climbing_key_is_refused_naming_the_key(s3_bucket, victim):
    import nbsage
    name, client = s3_bucket
    client.put_object(Bucket=name, Key="train/good.csv", Body=b"1,2\n")
    bad = hostile("", victim)
    client.put_object(Bucket=name, Key=f"train/{bad}", Body=b"attacker's bytes\n")
    with pytest.raises(ChannelError) as raised:
        nbsage.upload_data(f"s3://{name}/train", "copied")
    assert bad in str(raised.value)
    assert_untouched(victim)
