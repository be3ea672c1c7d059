"""Bad input fails with the file, the record or line, and the reason — in a real training job's
FailureReason — and nothing already in the store is lost: a job that completed earlier in the same
NBSAGE_HOME keeps its record and its model artifact byte for byte."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbsage import Estimator, Session, TrainingInput
from nbsage.errors import DataError, JobFailed
from nbsage.formats import read_table, write

LINEAR = ("linear-learner", {"predictor_type": "binary_classifier", "epochs": 2})
CSV, RECORDIO, PARQUET = "text/csv", "application/x-recordio-protobuf", "application/x-parquet"


def separable(n: int = 120, d: int = 4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.float32)


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A store in which a Linear Learner job completed before any bad input was tried."""
    home = tmp_path_factory.mktemp("store")
    saved = os.environ.get("NBSAGE_HOME")
    os.environ["NBSAGE_HOME"] = str(home / "nbsage-home")
    try:
        x, y = separable()
        write(x, home / "good.csv", CSV, labels=y)
        est = Estimator(*LINEAR)
        job = est.fit({"train": TrainingInput(str(home / "good.csv"), content_type=CSV)}, logs=False)
        assert job.status == "Completed", job.describe().get("FailureReason")
        yield SimpleNamespace(home=home / "nbsage-home", data=home, job=job.name, model_data=est.model_data,
                              digest=digest(est.model_data), describe=job.describe())
    finally:
        if saved is None:
            os.environ.pop("NBSAGE_HOME", None)
        else:
            os.environ["NBSAGE_HOME"] = saved


def fail_reason(algorithm, hyperparameters, path: Path, content_type: str) -> str:
    est = Estimator(algorithm, hyperparameters)
    with pytest.raises(JobFailed):
        est.fit({"train": TrainingInput(str(path), content_type=content_type)}, logs=False)
    desc = est.latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Failed"
    return desc["FailureReason"]


def assert_store_intact(earlier, failed: int):
    session = Session.default()
    assert session.home == earlier.home
    jobs = {j.name: j for j in session.list_training_jobs(limit=500)}
    assert earlier.job in jobs and len(jobs) >= 1 + failed
    desc = jobs[earlier.job].describe()
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["ModelArtifacts"] == earlier.describe["ModelArtifacts"]
    assert desc["FinalMetricDataList"] == earlier.describe["FinalMetricDataList"]
    assert digest(earlier.model_data) == earlier.digest


def bad_csv_rows(folder: Path, change) -> Path:
    x, y = separable()
    write(x, folder / "rows.csv", CSV, labels=y)
    lines = (folder / "rows.csv").read_text().splitlines()
    change(lines)
    path = folder / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _extra_column(lines):
    lines[6] += ",1.5"


def _text_cell(lines):
    cells = lines[2].split(",")
    cells[2] = "abc"
    lines[2] = ",".join(cells)


def _not_gzip(folder: Path) -> Path:
    x, y = separable()
    write(x, folder / "plain.csv", CSV, labels=y)
    (folder / "plain.csv").rename(folder / "train.csv.gz")
    return folder / "train.csv.gz"


def _truncated_recordio(folder: Path) -> Path:
    x, y = separable()
    write(x, folder / "train.pbr", RECORDIO, labels=y)
    data = (folder / "train.pbr").read_bytes()
    (folder / "train.pbr").write_bytes(data[:-7])
    return folder / "train.pbr"


def _wrong_magic(folder: Path) -> Path:
    x, y = separable()
    write(x, folder / "train.pbr", RECORDIO, labels=y)
    data = bytearray((folder / "train.pbr").read_bytes())
    size = len(data) // len(x)
    data[size * 5:size * 5 + 4] = b"RIFF"
    (folder / "train.pbr").write_bytes(bytes(data))
    return folder / "train.pbr"


def _string_column(folder: Path) -> Path:
    pq.write_table(pa.table({"label": [1.0, 0.0], "f0": [0.5, 1.5], "city": ["Oslo", "Lima"]}),
                   folder / "train.parquet")
    return folder / "train.parquet"


CASES = {
    "csv row with another column count": (LINEAR, CSV, lambda f: bad_csv_rows(f, _extra_column),
                                          r"bad\.csv line 7: expected 5 columns \(label \+ 4 features\), found 6"),
    "csv non-numeric cell": (LINEAR, CSV, lambda f: bad_csv_rows(f, _text_cell),
                             r"bad\.csv line 3, column 3: 'abc' is not a number"),
    "gzip file that is not gzip": (LINEAR, CSV, _not_gzip, r"train\.csv\.gz: named \.gz but is not a gzip file"),
    "truncated recordio": (LINEAR, RECORDIO, _truncated_recordio,
                           r"train\.pbr: truncated RecordIO file: record 119 at byte \d+ declares"),
    "recordio wrong magic": (LINEAR, RECORDIO, _wrong_magic,
                             r"train\.pbr: record 5 at byte \d+: wrong magic number 0x46464952"),
    "parquet unsupported column type": (("xgboost", {"num_round": 2, "objective": "binary:logistic"}), PARQUET,
                                        _string_column, r"train\.parquet: column 'city' has type string, which is "
                                                        r"not supported"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_job_on_bad_input_fails_naming_the_file_and_place_and_the_store_keeps_earlier_jobs(
        case, earlier, tmp_path, monkeypatch):
    monkeypatch.setenv("NBSAGE_HOME", str(earlier.home))
    (algorithm, hyperparameters), content_type, make, expected = CASES[case]
    path = make(tmp_path)
    reason = fail_reason(algorithm, hyperparameters, path, content_type)
    assert reason.startswith("ClientError"), reason
    import re
    assert re.search(expected, reason), reason
    # the same message comes from the reader itself, outside a job
    with pytest.raises(DataError, match=expected):
        read_table([path], content_type)
    assert_store_intact(earlier, failed=1)


def test_a_json_lines_record_missing_a_required_field_names_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"features": [1, 2], "label": 1}\n{"features": [3, 4]}\n')
    with pytest.raises(DataError, match=r"train\.jsonl line 2: record has no 'label' field"):
        read_table([path], "application/jsonlines")


def test_a_deepar_job_on_a_record_missing_target_names_the_line(earlier, tmp_path, monkeypatch):
    monkeypatch.setenv("NBSAGE_HOME", str(earlier.home))
    path = tmp_path / "series.json"
    path.write_text(json.dumps({"start": "2020-01-01 00:00:00", "target": list(range(12))}) + "\n"
                    + json.dumps({"start": "2020-01-01 00:00:00"}) + "\n")
    reason = fail_reason("deepar", {"context_length": 2, "prediction_length": 2, "epochs": 1, "time_freq": "H"},
                         path, "application/jsonlines")
    assert "series.json line 2" in reason and "target" in reason, reason
    assert_store_intact(earlier, failed=1)


def test_a_gzip_stream_that_breaks_midway_names_the_file(tmp_path):
    data = gzip.compress(b'{"features": [1], "label": 0}\n' * 50000)
    (tmp_path / "train.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train\.jsonl\.gz: not a valid gzip stream"):
        read_table([tmp_path / "train.jsonl.gz"], "application/jsonlines")


def test_a_sql_error_names_the_query():
    from nbsage import data
    from nbsage.errors import NBSageError
    with pytest.raises(NBSageError) as info:
        data.sql("SELEC 1")
    assert "SELEC" in str(info.value) and "syntax error" in str(info.value).lower()
