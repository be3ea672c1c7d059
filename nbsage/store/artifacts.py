"""Artifacts (model.tar.gz, output.tar.gz, staged data) through fsspec: a local folder by default,
any fsspec URL (s3://bucket/prefix, memory://, gs://...) when configured."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


def join(base: str, *parts: str) -> str:
    base = base.rstrip("/")
    return "/".join([base, *[p.strip("/") for p in parts if p]])


class ArtifactStore:
    """Reads and writes artifacts under a root URL; every write is atomic."""

    def __init__(self, root: str):
        self.root = root if not is_local(root) else str(Path(local_path(root)).expanduser().resolve())

    def url(self, *parts: str) -> str:
        return join(self.root, *parts)

    @staticmethod
    def _fs(url: str):
        import fsspec
        fs, path = fsspec.core.url_to_fs(url)
        return fs, path

    def put_file(self, local: str | os.PathLike, url: str) -> str:
        """Copy a local file to `url` so that readers never see a half-written file."""
        if is_local(url):
            dest = Path(local_path(url))
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
            shutil.copyfile(local, tmp)
            os.replace(tmp, dest)
            return str(dest)
        fs, path = self._fs(url)
        # object stores publish a PUT whole; other filesystems get a temporary name then a move
        if fs.protocol in ("s3", "s3a", "gs", "gcs", "abfs", "az", "memory") or "s3" in fs.protocol:
            fs.put_file(str(local), path)
        else:
            parent = path.rsplit("/", 1)[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
            fs.put_file(str(local), tmp)
            fs.mv(tmp, path)
        return url

    def get_file(self, url: str, local: str | os.PathLike) -> Path:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        if is_local(url):
            shutil.copyfile(local_path(url), local)
        else:
            fs, path = self._fs(url)
            fs.get_file(path, str(local))
        return local

    def exists(self, url: str) -> bool:
        if is_local(url):
            return Path(local_path(url)).exists()
        fs, path = self._fs(url)
        return fs.exists(path)
