"""Where a transform job writes: one `<input object>.out` per input object under S3OutputPath.

A `.out` appears whole or not at all: it is written under a temporary name (beside the destination
on a local disk, in the job's folder for an object store, where a PUT publishes whole) and moved or
uploaded only when every record of its object was transformed. A failed object leaves no partial
file and takes nothing away from the objects already written.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from nbsage.errors import DataError
from nbsage.store.artifacts import is_local, join, local_path


class ObjectOutput:
    """The `.out` of one input object while it is being written."""

    def __init__(self, destination: str, temporary: Path, artifacts):
        self.destination, self.temporary, self.artifacts = destination, temporary, artifacts
        self.file = open(temporary, "wb")
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.bytes += len(data)

    def commit(self) -> str:
        """Publish the finished `.out`; returns where it is."""
        self.file.close()
        try:
            if is_local(self.destination):
                os.replace(self.temporary, local_path(self.destination))
            else:
                self.artifacts.put_file(self.temporary, self.destination)
        except OSError as e:
            raise DataError(f"the output {self.destination} cannot be written: {e.strerror or e}") from None
        finally:
            self.temporary.unlink(missing_ok=True)
        return self.destination

    def discard(self) -> None:
        self.file.close()
        self.temporary.unlink(missing_ok=True)


class OutputPath:
    """S3OutputPath: a local folder or any fsspec URL."""

    def __init__(self, url: str, artifacts, scratch: Path):
        self.url = os.path.expanduser(url) if is_local(url) else url
        self.artifacts, self.scratch = artifacts, Path(scratch)

    def check(self) -> None:
        """Refuse, before any request, an output path that cannot be written."""
        if not is_local(self.url):
            return  # an object store says so at the first upload, naming the object
        folder = Path(local_path(self.url))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".nbsage-write-check-{uuid.uuid4().hex[:8]}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise DataError(f"output_path {self.url} cannot be written: {e.strerror or e}; give a folder (or an "
                            "s3:// or other fsspec URL) this user can write") from None

    def destination(self, relative: str) -> str:
        return join(self.url, relative + ".out")

    def open(self, relative: str) -> ObjectOutput:
        destination = self.destination(relative)
        if is_local(destination):
            target = Path(local_path(destination))
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise DataError(f"the output {destination} cannot be written: {e.strerror or e}") from None
            temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        else:
            self.scratch.mkdir(parents=True, exist_ok=True)
            temporary = self.scratch / f"{uuid.uuid4().hex}.partial"
        try:
            return ObjectOutput(destination, temporary, self.artifacts)
        except OSError as e:
            raise DataError(f"the output {destination} cannot be written: {e.strerror or e}") from None
