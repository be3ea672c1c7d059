"""Object Detection across two instances on the local place: one SSD trained data parallel, as SageMaker's dist_sync.

The job runs as two runtime processes (algo-1, algo-2) joined by torch.distributed (gloo). What a user
checks: the job completes with both hosts taking part, each training on its half of the images and
detecting on its half of the validation images; the hosts end with the same parameters (they average
gradients every step: two hosts on different images could not agree otherwise); the first host alone
reports metrics and writes the model, and that model deploys and answers boxes.
"""
from __future__ import annotations

import io
import re
import shutil
import tarfile

import fsspec
import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")

from algorithms.test_object_detection import RECORDIO, SIZE, TINY  # noqa: E402
from nbsage.algorithms.object_detection import sample_data as sd  # noqa: E402
from nbsage.algorithms.object_detection.detector import Detector  # noqa: E402
from nbsage.algorithms.object_detection.training import parameter_checksum  # noqa: E402
from nbsage.estimator import Estimator  # noqa: E402
from nbsage.formats.image import encode_image  # noqa: E402
from nbsage.inputs import TrainingInput  # noqa: E402
from nbsage.model import Model  # noqa: E402

HPS = {**TINY, "num_training_samples": "8", "epochs": "2", "mini_batch_size": "2"}


def host_lines(logs: list[str], host: str, text: str) -> list[str]:
    return [line for line in logs if line.startswith(f"[{host}] ") and text in line]


def test_two_instances_train_one_ssd_data_parallel_and_its_model_answers_boxes(session, tmp_path):
    data = sd.make_dataset(8, SIZE, 2, seed=7)
    channels = {}
    for name, dataset in (("train", data), ("validation", sd.make_dataset(4, SIZE, 2, seed=8))):
        sd.write_recordio(dataset, tmp_path / "lst", name)
        (tmp_path / name).mkdir()
        shutil.copy(tmp_path / "lst" / f"{name}.rec", tmp_path / name)
        channels[name] = TrainingInput(str(tmp_path / name), content_type=RECORDIO)

    job = Estimator("object-detection", HPS, instance_count=2, sagemaker_session=session).fit(channels, wait=False)
    desc = job.wait_quietly(timeout=240)
    logs = job.logs()
    assert desc["TrainingJobStatus"] == "Completed", (desc.get("FailureReason"), "\n".join(logs[-30:]))
    assert desc["ResourceConfig"]["InstanceCount"] == 2

    checksums = {}
    for rank, host in enumerate(("algo-1", "algo-2")):
        assert host_lines(logs, host, f"Distributed training on 2 hosts (rank {rank}): 4 of 8 images on this host")
        assert host_lines(logs, host, "Validation: 2 of 4 images scored on this host after each epoch")
        assert len(host_lines(logs, host, "train cross_entropy <loss>=")) == 2  # both epochs, on every host
        [line] = host_lines(logs, host, "Network parameters after training: checksum")
        checksums[host] = re.search(r"checksum (\w+) on host", line).group(1)
    assert checksums["algo-1"] == checksums["algo-2"]
    assert host_lines(logs, "algo-1", "All 2 hosts hold the same network parameters")
    assert host_lines(logs, "algo-2", "The first host saves the model")
    assert not host_lines(logs, "algo-2", "Saved the model") and not host_lines(logs, "algo-2", "validation mAP")
    assert len(host_lines(logs, "algo-1", "validation mAP <score>=")) == 2  # over both hosts' detections
    # the job's metrics are the master's, once per epoch (not once per host)
    for metric in ("train:cross_entropy", "validation:mAP"):
        assert [m["step"] for m in session.store.get_metrics(job.name) if m["name"] == metric] == [0, 1]
    [saved] = host_lines(logs, "algo-1", "Saved the model")  # the best epoch's parameters: maybe not the last's
    saved_checksum = re.search(r"parameters checksum (\w+)", saved).group(1)

    artifact = desc["ModelArtifacts"]["S3ModelArtifacts"]
    with fsspec.open(artifact, "rb") as f, tarfile.open(fileobj=io.BytesIO(f.read())) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    assert parameter_checksum(Detector.load(tmp_path / "model").network) == saved_checksum

    predictor = Model(artifact, algorithm="object-detection", sagemaker_session=session).deploy(
        endpoint_name="od-two-hosts")
    answer = predictor.predict(encode_image(data[0][0], "JPEG"),
                               initial_args={"ContentType": "image/jpeg", "Accept": "application/json"})
    rows = answer["prediction"]
    assert rows and all(len(r) == 6 and 0 <= r[2] <= r[4] <= 1 and 0 <= r[3] <= r[5] <= 1 for r in rows)
    predictor.delete_endpoint()


def test_a_host_that_sharded_by_s3_key_left_without_a_file_is_told_why(tmp_path):
    from nbsage.algorithms import distributed
    from nbsage.algorithms.object_detection.training import _check_shard
    from nbsage.errors import DataError
    from nbsage.runtime.environment import TrainingEnvironment
    from nbsage.runtime.job_config import write_job_configs
    from nbsage.runtime.layout import JobRoot
    request = {"TrainingJobName": "od", "AlgorithmSpecification": {"TrainingImage": "object-detection"},
               "HyperParameters": HPS, "ResourceConfig": {"InstanceType": "local", "InstanceCount": 2},
               "InputDataConfig": [{"ChannelName": "train", "ContentType": RECORDIO, "DataSource": {
                   "S3DataSource": {"S3DataDistributionType": "ShardedByS3Key"}}}]}
    root = write_job_configs(JobRoot(tmp_path), request, host_index=1)  # algo-2: the one file went to algo-1
    root.channel_dir("train").mkdir(parents=True, exist_ok=True)
    env = TrainingEnvironment(root)
    with pytest.raises(DataError, match=r"host algo-2 has no training images: ShardedByS3Key hands out whole files, "
                                        r"and the train channel has fewer files than the job's 2 hosts"):
        _check_shard(env, distributed.cluster(env))
