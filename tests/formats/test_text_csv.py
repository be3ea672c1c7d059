"""text/csv: label first, no header, gzip; errors name the file, line and cell."""
from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest

from nbsage.errors import DataError
from nbsage.formats import iter_batches, read_table, text_csv, write


def csv_file(path, text: str):
    path.write_text(text)
    return path


def test_label_first_then_features_and_integers_read_as_float32(tmp_path):
    table = read_table([csv_file(tmp_path / "t.csv", "1,2,3\n0,4.5,-6e2\n")], "text/csv")
    assert table.features.dtype == np.float32 and table.features.flags.c_contiguous
    assert table.features.tolist() == [[2, 3], [4.5, -600]] and table.labels.tolist() == [1, 0]


def test_weights_come_from_the_second_column(tmp_path):
    table = read_table([csv_file(tmp_path / "t.csv", "1,0.5,3\n0,2,4\n")], "text/csv", weights=True)
    assert table.weights.tolist() == [0.5, 2] and table.features.tolist() == [[3], [4]]


def test_blank_lines_and_nan_cells_are_read_as_written(tmp_path):
    table = read_table([csv_file(tmp_path / "t.csv", "1,2\n\n0,nan\n1,inf\n")], "text/csv")
    assert table.num_rows == 3 and np.isnan(table.features[1, 0]) and np.isinf(table.features[2, 0])


def test_a_row_with_another_column_count_names_the_line(tmp_path):
    path = csv_file(tmp_path / "part-0.csv", "1,2,3\n" * 16 + "1,2\n")
    with pytest.raises(DataError, match=r"part-0\.csv line 17: expected 3 columns \(label \+ 2 features\), found 2"):
        read_table([path], "text/csv")


def test_a_non_numeric_cell_names_the_line_and_column(tmp_path):
    path = csv_file(tmp_path / "t.csv", "1,2,3\n0,4,abc\n")
    with pytest.raises(DataError, match=r"t\.csv line 2, column 3: 'abc' is not a number"):
        read_table([path], "text/csv")


def test_a_header_row_is_named_as_the_problem(tmp_path):
    path = csv_file(tmp_path / "t.csv", "label,x\n1,2\n")
    with pytest.raises(DataError, match=r"line 1, label: 'label' is not a number.*no header"):
        read_table([path], "text/csv")


def test_an_empty_cell_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"line 2, column 2: empty cell"):
        read_table([csv_file(tmp_path / "t.csv", "1,2\n0,\n")], "text/csv")


def test_an_error_deep_in_a_large_file_is_found_while_streaming(tmp_path):
    rows = np.ones((200000, 5), dtype=np.float32)
    write(rows, tmp_path / "big.csv", "text/csv")
    with open(tmp_path / "big.csv", "a") as f:
        f.write("1,1,1,x,1\n")
    batches = iter_batches([tmp_path / "big.csv"], "text/csv", batch_rows=1000)
    assert next(batches).num_rows == 1000  # rows before the bad line stream out
    with pytest.raises(DataError, match=r"big\.csv line 200001, column 4: 'x' is not a number"):
        list(batches)


def test_a_truncated_gzip_file_names_the_file(tmp_path):
    data = gzip.compress(b"1,2,3\n" * 100000)
    path = tmp_path / "t.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t\.csv\.gz: not a valid gzip stream"):
        read_table([path], "text/csv")


def test_a_label_only_file_says_features_are_needed(tmp_path):
    with pytest.raises(DataError, match="needs the label first, then at least one feature"):
        read_table([csv_file(tmp_path / "t.csv", "1\n0\n")], "text/csv")


def test_the_writer_writes_label_first_without_header(tmp_path):
    write(np.array([[0.5, 2.0]], dtype=np.float32), tmp_path / "o.csv", "text/csv", labels=np.array([1]))
    assert (tmp_path / "o.csv").read_text() == "1,0.5,2\n"


def test_inference_rows_and_predictions_keep_their_shapes():
    assert text_csv.read_features(b"1,2\n3,4\n").tolist() == [[1, 2], [3, 4]]
    assert text_csv.write_rows([0.5, 1]) == b"0.5\n1.0"


def test_reading_csv_and_parquet_does_not_import_pandas(tmp_path):
    write(np.ones((4, 2)), tmp_path / "t.csv", "text/csv", labels=np.ones(4))
    write(np.ones((4, 2)), tmp_path / "t.parquet", "application/x-parquet", labels=np.ones(4))
    code = ("import sys; from nbsage.formats import read_table; "
            f"read_table([{str(tmp_path / 't.csv')!r}], 'text/csv'); "
            f"read_table([{str(tmp_path / 't.parquet')!r}], 'application/x-parquet'); "
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_process_forked_after_a_large_read_reads_large_files_too(tmp_path):
    import os
    import time
    rows = np.ones((50000, 50), dtype=np.float32)  # large enough to be filled by threads
    write(rows, tmp_path / "big.csv", "text/csv", labels=np.ones(50000))
    assert read_table([tmp_path / "big.csv"], "text/csv").num_rows == 50000
    pid = os.fork()
    if pid == 0:  # the child: the parent's fill threads do not exist here
        try:
            os._exit(0 if read_table([tmp_path / "big.csv"], "text/csv").num_rows == 50000 else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked reader hung")


def test_a_large_file_read_in_pieces_keeps_every_row_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(text_csv, "PIECE_BYTES", 700)  # cut into many pieces, at line ends
    rng = np.random.default_rng(0)
    x = rng.integers(-99, 99, size=(500, 6)).astype(np.float32)
    lines = [",".join(str(int(v)) for v in row) for row in x]
    lines[100:100] = ["", ""]  # blank lines are skipped wherever a piece starts or ends
    (tmp_path / "a.csv").write_bytes(("\r\n".join(lines)).encode())  # CRLF, no newline at the end
    (tmp_path / "b.csv").write_text("1,2,3,4,5,6\n")
    table = read_table([tmp_path / "a.csv", tmp_path / "b.csv"], "text/csv")
    assert table.features.tolist() == x[:, 1:].tolist() + [[2, 3, 4, 5, 6]]
    assert table.labels.tolist() == x[:, 0].tolist() + [1]
    assert len(text_csv.pieces(tmp_path / "a.csv", 6)) > 10


def test_a_bad_line_in_a_later_piece_names_its_line_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(text_csv, "PIECE_BYTES", 100)
    path = csv_file(tmp_path / "part-0.csv", "1,2,3\n" * 300 + "1,2\n" + "1,2,3\n" * 20)
    with pytest.raises(DataError, match=r"part-0\.csv line 301: expected 3 columns \(label \+ 2 features\), found 2"):
        read_table([path], "text/csv")
    path = csv_file(tmp_path / "part-1.csv", "1,2,3\n" * 300 + "1,,3\n")
    with pytest.raises(DataError, match=r"part-1\.csv line 301, column 2: empty cell"):
        read_table([path], "text/csv")


def test_gzip_files_read_whole_beside_plain_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(text_csv, "PIECE_BYTES", 100)
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"1,2,3\n" * 200))
    csv_file(tmp_path / "b.csv", "0,4,5\n" * 100)
    table = read_table([tmp_path / "a.csv.gz", tmp_path / "b.csv"], "text/csv", weights=True)
    assert table.num_rows == 300 and table.features.tolist() == [[3]] * 200 + [[5]] * 100
    assert table.weights.tolist() == [2] * 200 + [4] * 100
