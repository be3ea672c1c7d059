"""model/ -> model.tar.gz (files at the archive root, as SageMaker writes it) and back."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path


def pack_dir(directory: Path, archive: Path) -> Path | None:
    """Tar+gzip the contents of `directory` into `archive` atomically; None when it is empty."""
    directory, archive = Path(directory), Path(archive)
    entries = sorted(p for p in directory.iterdir()) if directory.exists() else []
    if not entries:
        return None
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.tmp")
    # compresslevel 1: model files are mostly incompressible floats; speed matters more
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
        for entry in entries:
            if entry.resolve() == archive.resolve() or entry.name.startswith(".") and entry.name.endswith(".tmp"):
                continue
            tar.add(entry, arcname=entry.name)
    os.replace(tmp, archive)
    return archive


def unpack(archive: Path, directory: Path) -> Path:
    """Extract a model.tar.gz safely (no absolute paths or '..')."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(directory, filter="data")
    return directory
