"""S3 against a real S3-compatible server on loopback (moto's standalone server, as s3fs's own tests
use), configured the ordinary way: AWS_* credentials and AWS_ENDPOINT_URL in the environment, which
boto3, s3fs and the job's processes all read. Nothing in nbsage is patched."""
from __future__ import annotations

import gzip
import json
import tarfile
import textwrap

import pandas as pd
import pytest

import nbsage
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput
from nbsage.session import Session

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


SCRIPT = textwrap.dedent("""
    import json, os
    data = os.environ["SM_INPUT_DIR"] + "/data"
    seen = {}
    for channel in json.loads(os.environ["SM_CHANNELS"]):
        folder = os.path.join(data, channel)
        if os.path.isdir(folder):
            seen[channel] = {n: open(os.path.join(folder, n)).read() for n in sorted(os.listdir(folder))}
        else:  # Pipe mode: one FIFO per epoch
            seen[channel] = [open(os.path.join(data, f"{channel}_{e}")).read() for e in range(2)]
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
        json.dump(seen, f)
""")


@pytest.fixture
def script(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    return src


def test_upload_data_then_train_from_and_to_the_bucket(s3_bucket, script):
    name, client = s3_bucket
    frame = pd.DataFrame({"label": [1, 0], "x": [2.5, 3.5]})
    url = nbsage.upload_data(frame, "train", bucket=name)
    assert url == f"s3://{name}/train/data.csv"
    est = Estimator(entry_point="train.py", source_dir=str(script), output_path=f"s3://{name}/output")
    job = est.fit({"train": f"s3://{name}/train"}, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    assert job.model_data == f"s3://{name}/output/{job.name}/output/model.tar.gz"
    assert f"output/{job.name}/output/model.tar.gz" in keys(client, name, "output/")
    import fsspec
    with fsspec.open(job.model_data, "rb") as f, tarfile.open(fileobj=f) as tar:
        seen = json.loads(tar.extractfile("seen.json").read())
    assert seen == {"train": {"data.csv": "1,2.5\n0,3.5\n"}}


def test_pipe_and_fastfile_channels_stream_from_the_bucket(s3_bucket, script):
    name, client = s3_bucket
    client.put_object(Bucket=name, Key="pipe/a.csv.gz", Body=gzip.compress(b"1,2\n"))
    client.put_object(Bucket=name, Key="pipe/b.csv.gz", Body=gzip.compress(b"3,4\n"))
    client.put_object(Bucket=name, Key="fast/one.csv", Body=b"5,6\n")
    est = Estimator(entry_point="train.py", source_dir=str(script), output_path=f"s3://{name}/output")
    job = est.fit({"streamed": TrainingInput(f"s3://{name}/pipe/", input_mode="Pipe", compression="Gzip"),
                   "fast": TrainingInput(f"s3://{name}/fast", input_mode="FastFile")}, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    import fsspec
    with fsspec.open(job.model_data, "rb") as f, tarfile.open(fileobj=f) as tar:
        seen = json.loads(tar.extractfile("seen.json").read())
    assert seen == {"fast": {"one.csv": "5,6\n"}, "streamed": ["1,2\n3,4\n", "1,2\n3,4\n"]}


def test_session_with_an_s3_artifact_root_keeps_uploads_and_models_in_the_bucket(s3_bucket, script):
    name, client = s3_bucket
    session = Session(artifact_root=f"s3://{name}/artifacts")
    url = nbsage.upload_data(pd.DataFrame({"label": [1], "x": [2]}), "inputs", session=session)
    assert url == f"s3://{name}/artifacts/inputs/data.csv"
    est = Estimator(entry_point="train.py", source_dir=str(script), sagemaker_session=session)
    job = est.fit(url, logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    assert job.model_data.startswith(f"s3://{name}/artifacts/training/{job.name}/")
    assert f"artifacts/training/{job.name}/output/model.tar.gz" in keys(client, name, "artifacts/training/")


def test_load_and_sm_load_read_a_bucket_prefix(s3_bucket):
    name, client = s3_bucket
    client.put_object(Bucket=name, Key="tables/part-0.csv", Body=b"label,x\n1,2\n")
    client.put_object(Bucket=name, Key="tables/part-1.csv", Body=b"label,x\n0,3\n")
    frame = nbsage.load(f"s3://{name}/tables/")
    assert frame.to_dict("list") == {"label": [1, 0], "x": [2, 3]}
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    from nbsage.notebook.data_magics import register
    start_ipython()
    shell = InteractiveShell.instance()
    register(shell)
    shell.run_line_magic("sm_load", f"tables s3://{name}/tables")
    assert shell.user_ns.pop("tables").shape == (2, 2)


def test_s3_uri_is_a_key_prefix_and_sharding_splits_its_objects(s3_bucket, tmp_path):
    name, client = s3_bucket
    for key in ("data/train-0.csv", "data/train-1.csv", "data/train-2.csv", "data/other.csv"):
        client.put_object(Bucket=name, Key=key, Body=key.encode())
    from nbsage.backends.staging import stage_channel
    assert stage_channel(f"s3://{name}/data/train", tmp_path / "all", "train") == 3
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["train-0.csv", "train-1.csv", "train-2.csv"]
    shards = []
    for host in (0, 1):
        stage_channel(f"s3://{name}/data/train", tmp_path / f"h{host}", "train", distribution="ShardedByS3Key",
                      host_index=host, host_count=2)
        shards.append(sorted(p.name for p in (tmp_path / f"h{host}").iterdir()))
    assert shards == [["train-0.csv", "train-2.csv"], ["train-1.csv"]]
