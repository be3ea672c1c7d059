"""Splitting input objects into requests: SplitType, BatchStrategy and MaxPayloadInMB, streamed."""
from __future__ import annotations

import io
import struct

import pytest

from nbsage.errors import DataError
from nbsage.transform.records import RECORDIO_MAGIC, batches


def _lines(n: int, width: int = 10) -> bytes:
    return b"".join(f"{i:0{width - 1}d}\n".encode() for i in range(1, n + 1))


def test_multirecord_lines_fill_each_request_up_to_the_payload_and_keep_line_numbers():
    data = _lines(1000)  # 10,000 bytes of 10-byte lines
    got = list(batches(io.BytesIO(data), "a.csv", "Line", "MultiRecord", 2500))
    assert all(len(b.body) <= 2500 for b in got)
    assert b"".join(b.body for b in got) == data
    assert [b.first for b in got] == [1, 251, 501, 751]
    assert got[1].records()[0] == b"000000251" and got[1].where() == "lines 251-500"


def test_singlerecord_lines_send_one_line_each_and_skip_blank_lines():
    got = list(batches(io.BytesIO(b"1,2\n\n3,4\r\n5,6"), "a.csv", "Line", "SingleRecord", 100))
    assert [(b.body, b.first) for b in got] == [(b"1,2", 1), (b"3,4", 3), (b"5,6", 4)]


def test_a_line_larger_than_the_payload_names_the_file_and_line():
    data = b"1,2\n" + b"9" * (3 << 20) + b"\n3,4\n"
    with pytest.raises(DataError, match=r"big\.csv line 2: a record of 3\.0 MB does not fit in MaxPayloadInMB=1"):
        list(batches(io.BytesIO(data), "big.csv", "Line", "MultiRecord", 1 << 20))


def test_split_type_none_sends_the_whole_object_or_says_it_does_not_split():
    assert [b.body for b in batches(io.BytesIO(b'{"a": 1}'), "x.json", "None", "MultiRecord", 100)] == [b'{"a": 1}']
    with pytest.raises(DataError, match=r"x\.json \(the whole object\).*split_type='Line'"):
        list(batches(io.BytesIO(b"x" * 200), "x.json", "None", "MultiRecord", 100))


def _recordio(payload: bytes) -> bytes:
    return struct.pack("<II", RECORDIO_MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4)


def _tfrecord(payload: bytes) -> bytes:
    return struct.pack("<Q", len(payload)) + b"crc!" + payload + b"crc!"


@pytest.mark.parametrize("split_type, frame", [("RecordIO", _recordio), ("TFRecord", _tfrecord)])
def test_framed_records_keep_framing_in_multirecord_and_drop_it_in_singlerecord(split_type, frame):
    payloads = [b"abc", b"defgh", b"ij"]
    data = b"".join(frame(p) for p in payloads)
    single = list(batches(io.BytesIO(data), "r.rec", split_type, "SingleRecord", 100))
    assert [b.body for b in single] == payloads and [b.where() for b in single] == ["record 1", "record 2", "record 3"]
    multi = list(batches(io.BytesIO(data), "r.rec", split_type, "MultiRecord", len(frame(b"abc")) + len(frame(b"defgh"))))
    assert [b.count for b in multi] == [2, 1] and b"".join(b.body for b in multi) == data


def test_a_file_that_is_not_recordio_is_named():
    with pytest.raises(DataError, match=r"r\.csv record 1: expected RecordIO's magic"):
        list(batches(io.BytesIO(b"1,2,3,4,5,6,7,8\n"), "r.csv", "RecordIO", "MultiRecord", 100))


def test_a_large_csv_request_is_parsed_by_pyarrow_and_a_bad_line_is_still_named():
    from nbsage.formats.text_csv import read_features
    body = b"1,2,3\n" * 20000  # above the size where the model server parses with pyarrow
    assert read_features(body, 3).shape == (20000, 3)
    with pytest.raises(DataError, match=r"line 20001: '' is not a number"):
        read_features(body + b"1,,3\n", 3)
    with pytest.raises(DataError, match=r"line 20001: expected 3 values as in line 1, found 2"):
        read_features(body + b"1,2\n", 3)


def test_predictions_are_written_as_csv_text_exactly_as_one_value_at_a_time():
    import numpy as np

    from nbsage.formats.text_csv import _fmt, write_rows
    values = np.array([0.6369617, 1e-5, -1.1e8, 1e16, 0.0, np.nan, np.inf], dtype=np.float32)
    assert write_rows(values) == "\n".join(_fmt(v) for v in values).encode()
    assert write_rows(values.reshape(-1, 1)[:4].reshape(2, 2)) == b"0.6369617,1e-05\n-1.1e+08,1e+16"
