"""text/libsvm: sparse rows `label[:weight] index:value`, streamed in CSR batches."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from nbsage.errors import DataError
from nbsage.formats import iter_batches, read_table, write


def test_indices_are_used_as_written_and_weights_follow_the_label(tmp_path):
    path = tmp_path / "t.libsvm"
    path.write_text("1:2 0:1.5 3:2\n0 1:4 # a comment\n\n1 qid:3 2:1\n")
    table = read_table([path], "text/libsvm")
    assert sp.issparse(table.features) and table.features.shape == (3, 4)
    assert table.features.toarray().tolist() == [[1.5, 0, 0, 2], [0, 4, 0, 0], [0, 0, 1, 0]]
    assert table.labels.tolist() == [1, 0, 1] and table.weights.tolist() == [2, 1, 1]


def test_num_features_pads_to_the_train_channels_width(tmp_path):
    path = tmp_path / "v.libsvm"
    path.write_text("1 0:1\n")
    assert read_table([path], "text/libsvm", num_features=10).features.shape == (1, 10)


def test_batches_are_csr_and_as_wide_as_asked(tmp_path):
    rows = sp.random(300, 50, density=0.05, format="csr", dtype=np.float32, random_state=0)
    write(rows, tmp_path / "t.libsvm", "text/libsvm", labels=np.arange(300) % 2)
    batches = list(iter_batches([tmp_path / "t.libsvm"], "text/libsvm", batch_rows=128, num_features=50))
    assert [b.features.shape for b in batches] == [(128, 50), (128, 50), (44, 50)]
    np.testing.assert_array_equal(sp.vstack([b.features for b in batches]).toarray(), rows.toarray())


def test_a_bad_pair_names_the_line(tmp_path):
    path = tmp_path / "t.libsvm"
    path.write_text("1 0:1\n0 1-2\n")
    with pytest.raises(DataError, match=r"t\.libsvm line 2: '1-2' is not index:value"):
        read_table([path], "text/libsvm")


def test_a_bad_label_names_the_line(tmp_path):
    path = tmp_path / "t.libsvm"
    path.write_text("yes 0:1\n")
    with pytest.raises(DataError, match=r"line 1: label 'yes' is not a number"):
        read_table([path], "text/libsvm")
