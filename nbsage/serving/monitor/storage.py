"""Reading and writing Model Monitor's files at local paths or fsspec URLs, and its records in NBSAGE_HOME.

Baselining jobs, monitoring schedules and their executions are JSON files under
`<NBSAGE_HOME>/monitoring/` (one per record, replaced atomically), so a scheduler process, a kernel
and the console read the same records without a schema of their own in the job store.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from nbsage.runtime.data_capture import write_file


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _local(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


def read_bytes(url: str) -> bytes:
    if is_local(url):
        return Path(_local(url)).expanduser().read_bytes()
    import fsspec
    with fsspec.open(url, "rb") as f:
        return f.read()


def write_json(url: str, body: dict) -> str:
    write_file(url if not is_local(url) else str(Path(_local(url)).expanduser()),
               json.dumps(body, indent=2).encode("utf-8"))
    return url


def read_json(url: str) -> dict:
    return json.loads(read_bytes(url))


def list_files(url: str) -> list[str]:
    """Every file under `url` (recursively), as URLs of the same kind; [] when there is nothing there."""
    if is_local(url):
        root = Path(_local(url)).expanduser()
        if root.is_file():
            return [str(root)]
        return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    import fsspec
    fs, path = fsspec.core.url_to_fs(url)
    try:
        if fs.isfile(path):
            return [url]
        found = fs.find(path)
    except FileNotFoundError:
        return []
    protocol = url.split("://", 1)[0]
    return sorted(f"{protocol}://{p}" for p in found)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


# ---- records in NBSAGE_HOME -------------------------------------------------------------------------------
def monitoring_dir(session) -> Path:
    return Path(session.home) / "monitoring"


def save_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, path)


def load_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
