"""The contract every place keeps: the same one-round job runs to Completed, with SageMaker's
secondary statuses and its model.tar.gz in the notebook's artifact store, wherever it runs.

Places are read from the registry (`nbsage.backends.names()`); each needs only the options that say
where it is, from a real thing started for the module: local (nothing), dask (a LocalCluster),
kernel (a Jupyter Kernel Gateway on loopback).
"""
from __future__ import annotations

import tarfile

import fsspec
import pytest

from nbsage import backends
from nbsage.estimator import Estimator
from nbsage.inputs import TrainingInput

TIMEOUT = 300  # a one-round job, generous for a busy machine


def local_options(request) -> dict:
    return {}


def dask_options(request) -> dict:
    return {"scheduler": request.getfixturevalue("cluster").scheduler_address}


def kernel_options(request) -> dict:
    return {"gateway": request.getfixturevalue("gateway").url, "kernel": "python3"}


# place -> the options that say where it is (its fixture starts only when its case runs)
WHERE = {"local": local_options, "dask": dask_options, "kernel": kernel_options}


@pytest.mark.parametrize("place", backends.names())
def test_every_place_runs_the_same_one_round_job_to_completed(request, tmp_path, session, place):
    assert place in WHERE, f"the place {place!r} has no options here: add how to reach it to WHERE in {__file__}"
    options = WHERE[place](request)
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "train.csv").write_text("".join(f"{i % 2},{i},{(i * 7) % 5}\n" for i in range(20)))
    estimator = Estimator("xgboost", {"num_round": 1, "max_depth": 2, "objective": "binary:logistic"},
                          sagemaker_session=session, backend=place, **options)
    job = estimator.fit({"train": TrainingInput(str(folder), content_type="text/csv")}, wait=False)
    desc = job.wait_quietly(timeout=TIMEOUT)

    assert desc["TrainingJobStatus"] == "Completed", (desc.get("FailureReason"), job.logs()[-20:])
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses[0] == "Starting" and statuses[-2:] == ["Uploading", "Completed"], statuses
    assert session.store.get_job(job.name)["backend"] == place
    with fsspec.open(desc["ModelArtifacts"]["S3ModelArtifacts"], "rb") as f, tarfile.open(fileobj=f) as tar:
        assert "xgboost-model" in tar.getnames()
