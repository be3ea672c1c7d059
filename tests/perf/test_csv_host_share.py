"""FullyReplicated CSV on several hosts: each host parses only its part of the bytes.

The hosts' parts, taken in rank order, are every row of the channel exactly once and in order,
whatever the line lengths, blank lines and file sizes; a bad line is named by the host that reads it
as a whole-channel read names it.
"""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from nbsage.errors import DataError
from nbsage.formats import text_csv


@pytest.fixture
def channel(tmp_path):
    rng = np.random.default_rng(3)
    files = []
    for i, rows in enumerate([1, 0, 257, 40, 3]):
        lines = [f"{rng.integers(2)},{rng.random():.{rng.integers(1, 9)}f},{rng.integers(-10**6, 10**6)}"
                 for _ in range(rows)]
        if rows > 5:
            lines.insert(rows // 2, "")  # a blank line inside
        path = tmp_path / f"part-{i}.csv"
        path.write_text("\n".join(lines) + ("\n" if i % 2 == 0 and rows else ""))
        files.append(path)
    return files


@pytest.mark.parametrize("hosts", [1, 2, 3, 5, 400])
def test_the_hosts_parts_are_the_channel_once_in_order(channel, hosts):
    whole = text_csv.read_table(channel)
    parts = [text_csv.CSVFormat().read_table(channel, host_share=(rank, hosts)) for rank in range(hosts)]
    assert np.array_equal(np.concatenate([p.features for p in parts]), whole.features)
    assert np.array_equal(np.concatenate([p.labels for p in parts]), whole.labels)
    assert all(p.num_features == 2 for p in parts)


def test_a_bad_line_is_named_by_the_host_that_reads_it(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("".join(f"1,{i},{i}\n" for i in range(100)) + "0,abc,1\n" + "".join("1,2,3\n" for _ in range(99)))
    errors = []
    for rank in range(2):
        try:
            text_csv.CSVFormat().read_table([path], host_share=(rank, 2))
        except DataError as e:
            errors.append((rank, str(e)))
    assert errors == [(1, f"{path} line 101, column 2: 'abc' is not a number (text/csv channels hold numbers "
                          "only, label first, no header)")]


def test_gzip_files_are_read_whole_and_split_by_rows(tmp_path):
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress("".join(f"{i % 2},{i}\n" for i in range(11)).encode()))
    part = text_csv.CSVFormat().read_table([path], host_share=(1, 3))
    assert part.features[:, 0].tolist() == [1, 4, 7, 10]


def test_two_hosts_train_on_a_fully_replicated_csv_channel_each_reading_its_part(tmp_path, session):
    import re

    from nbsage.estimator import Estimator
    from nbsage.inputs import TrainingInput
    folder = tmp_path / "train"
    folder.mkdir()
    rng = np.random.default_rng(0)
    X = rng.random((301, 3))
    lines = [f"{int(x[0] > 0.5)},{x[0]:.4f},{x[1]:.4f},{x[2]:.4f}" for x in X]
    (folder / "a.csv").write_text("\n".join(lines[:200]) + "\n")
    (folder / "b.csv").write_text("\n".join(lines[200:]) + "\n")
    hps = {"num_round": 2, "max_depth": 2, "objective": "binary:logistic"}
    job = Estimator("xgboost", hps, instance_count=2, sagemaker_session=session).fit(
        {"train": TrainingInput(str(folder), content_type="text/csv")}, logs=False)
    rows = [int(m.group(1)) for line in job.logs() if (m := re.search(r"Train matrix has (\d+) rows", line))]
    assert sorted(rows) != [301, 301] and sum(rows) == 301 and len(rows) == 2  # each host its part, once
    (folder / "b.csv").write_text("\n".join(lines[200:260] + ["nan,1,2,3"] + lines[261:]) + "\n")
    failed = Estimator("xgboost", hps, instance_count=2, sagemaker_session=session).fit(
        {"train": TrainingInput(str(folder), content_type="text/csv")}, wait=False).wait_quietly(timeout=120)
    assert failed["TrainingJobStatus"] == "Failed"
    assert re.search(r"b\.csv line 61\b.*label is nan", failed["FailureReason"]), failed["FailureReason"]
