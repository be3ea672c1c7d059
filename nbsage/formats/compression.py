"""Gzip on channel files: found by its magic bytes as well as by the `.gz` suffix.

SageMaker hands a Gzip channel to a File-mode algorithm as the objects were uploaded, so a reader
meets `train.csv.gz`, and also gzipped objects without the suffix. A file named `.gz` that is not
gzip is an error that names the file, not a parse error three layers down.
"""
from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path
from typing import BinaryIO

from nbsage.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
GZIP_SUFFIXES = (".gz", ".gzip")

# what a truncated or corrupt gzip stream raises while it is read
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file is gzip: it starts with gzip's magic bytes.

    A file named `.gz` that does not start with them raises `DataError` naming the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if head == GZIP_MAGIC:
        return True
    if path.suffix.lower() in GZIP_SUFFIXES and path.stat().st_size > 0:
        raise DataError(f"{path}: named {path.suffix} but is not a gzip file (it starts with {head!r}, "
                        f"gzip starts with {GZIP_MAGIC!r}); rename it or compress it with gzip")
    return False


def open_binary(path: str | os.PathLike) -> BinaryIO:
    """A binary stream over a plain or gzipped file (decompressed as it is read)."""
    if is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def open_text(path: str | os.PathLike, errors: str = "strict"):
    """A UTF-8 text stream over a plain or gzipped file; newlines are kept as written."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors=errors, newline="")


def arrow_stream(path: str | os.PathLike):
    """A pyarrow input stream over a plain or gzipped file (C++ decompression, no GIL)."""
    import pyarrow as pa
    return pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)


def corrupt(path: str | os.PathLike, error: BaseException) -> DataError:
    """The error for a gzip stream that breaks while it is read."""
    return DataError(f"{path}: not a valid gzip stream ({error}); the file is truncated or corrupt")


def open_output(path_or_file, mode: str = "wb"):
    """(binary stream, close?) for a writer: a path (gzipped when it ends in .gz) or an open file."""
    if isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in GZIP_SUFFIXES:
            return gzip.open(path, mode), True
        return open(path, mode), True
    return path_or_file, False
