"""CheckpointConfig: a job's checkpoint folder mirrored to `CheckpointConfig.S3Uri` while it runs.

SageMaker's rules (contracts-detail 1.2): objects already under the URI are copied into the local
path when the job starts; files the job adds or changes are uploaded continuously, uncompressed;
files the job deletes are deleted under the URI too; objects added under the URI after the start
are not copied in. The URI may be any fsspec URL (s3://, gs://, file://, memory://) or a folder.

    sync = CheckpointSync("s3://bucket/ckpt/job", root / "checkpoints")
    sync.restore()      # at job start
    sync.start()        # uploads every `interval` seconds in a thread
    ...                 # the job runs
    sync.stop()         # a last sync

Files whose name ends in `.sagemaker-ignore` (half-written checkpoints, as SageMaker's uploader
skips them) and temporary `.*.tmp` files are never uploaded: the rule is
`nbsage.checkpoint_files.is_ignored`, next to the `write_checkpoint` every algorithm writes with.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

from nbsage.checkpoint_files import is_ignored
from nbsage.paths import landing_path
from nbsage.store.artifacts import ArtifactStore, is_local, local_path


class CheckpointSync:
    """Mirror `local_dir` to a URL: restore() once, then start()/stop() around the run."""

    def __init__(self, artifacts_or_url, local_dir: str | os.PathLike, interval: float = 1.0,
                 log: Callable[[str], None] | None = None):
        url = artifacts_or_url.root if isinstance(artifacts_or_url, ArtifactStore) else str(artifacts_or_url)
        self.url = url.rstrip("/") or url
        self.local_dir = Path(local_dir)
        self.interval = float(interval)
        self.log = log or (lambda message: None)
        self._store = ArtifactStore(self.url)
        self._seen: dict[str, tuple[int, int]] = {}  # rel path -> (size, mtime_ns) as last uploaded/restored
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded = 0
        self.deleted = 0
        self.errors = 0

    # ---- the remote side ------------------------------------------------------------------------
    def _fs(self):
        import fsspec
        return fsspec.core.url_to_fs(local_path(self.url) if is_local(self.url) else self.url)

    def _remote_keys(self) -> list[str]:
        """Relative keys of the objects under the URL."""
        fs, base = self._fs()
        base = base.rstrip("/")
        try:
            if not fs.exists(base):
                return []
            found = fs.find(base, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        keys = []
        for p in found:
            p = str(p)
            if p.startswith(base + "/") and not is_ignored(p):  # e.g. an upload in flight
                keys.append(p[len(base) + 1:])
        return sorted(keys)

    def _local_files(self) -> dict[str, tuple[int, int]]:
        files = {}
        if not self.local_dir.is_dir():
            return files
        for dirpath, _, names in os.walk(self.local_dir):
            for n in names:
                p = Path(dirpath) / n
                rel = p.relative_to(self.local_dir).as_posix()
                if is_ignored(rel):
                    continue
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue  # deleted while we looked
                files[rel] = (st.st_size, st.st_mtime_ns)
        return files

    # ---- the three steps -------------------------------------------------------------------------
    def restore(self) -> int:
        """Copy the objects under the URL into the local folder; returns how many were copied."""
        self.local_dir.mkdir(parents=True, exist_ok=True)
        count = 0
        with self._lock:
            keys = [rel for rel in self._remote_keys() if not is_ignored(rel)]
            dests = [landing_path(self.local_dir, rel, what=f"checkpoint object under {self.url}") for rel in keys]
            for rel, dest in zip(keys, dests):
                self._store.get_file(self._store.url(rel), dest)
                st = dest.stat()
                self._seen[rel] = (st.st_size, st.st_mtime_ns)
                count += 1
        if count:
            self.log(f"Restored {count} checkpoint file(s) from {self.url} into {self.local_dir}")
        return count

    def sync(self) -> tuple[int, int]:
        """Upload new and changed files, delete remote objects of deleted files: (uploaded, deleted)."""
        with self._lock:
            now = self._local_files()
            up = down = 0
            for rel, sig in sorted(now.items()):
                if self._seen.get(rel) == sig:
                    continue
                try:
                    self._store.put_file(self.local_dir / rel, self._store.url(rel))
                except FileNotFoundError:
                    continue  # deleted between the listing and the upload: the next sync deletes it
                self._seen[rel] = sig
                up += 1
            gone = [rel for rel in self._seen if rel not in now]
            if gone:
                fs, base = self._fs()
                for rel in gone:
                    try:
                        fs.rm_file(f"{base.rstrip('/')}/{rel}")
                    except FileNotFoundError:
                        pass
                    self._seen.pop(rel, None)
                    down += 1
            self.uploaded += up
            self.deleted += down
            return up, down

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except Exception as e:  # a failing store must not end the job; the next round retries
                self.errors += 1
                if self.errors <= 3:
                    self.log(f"Checkpoint upload to {self.url} failed: {type(e).__name__}: {e}")

    def start(self) -> "CheckpointSync":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="checkpoint-sync", daemon=True)
            self._thread.start()
        return self

    def stop(self, final: bool = True) -> None:
        """End the thread, then one last sync (unless final=False)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if final:
            started = time.monotonic()
            self.sync()
            if time.monotonic() - started > 5:
                self.log(f"Final checkpoint upload to {self.url} took {time.monotonic() - started:.0f} s")


def checkpoint_sync_for(request: dict, root, artifacts=None, log=None, interval: float | None = None):
    """A CheckpointSync for a job's request (None without CheckpointConfig.S3Uri)."""
    from nbsage.runtime.environment import resolve_checkpoint_dir
    cfg = request.get("CheckpointConfig") or {}
    uri = cfg.get("S3Uri")
    if not uri:
        return None
    if interval is None:
        interval = float(os.environ.get("NBSAGE_CHECKPOINT_SYNC_SECONDS", "1"))
    return CheckpointSync(uri, resolve_checkpoint_dir(root, cfg.get("LocalPath")), interval=interval, log=log)


# ---- the kernel place: the sync runs inside the kernel, next to the runtime ----------------------
_kernel_syncs: dict[str, CheckpointSync] = {}


def kernel_start(job_root: str, uri: str, local_path: str | None, interval: float = 1.0) -> str:
    """Called in the job's kernel before `run`: restore, then mirror while the runtime runs."""
    import json
    from nbsage.runtime.environment import resolve_checkpoint_dir
    lines: list[str] = []
    sync = CheckpointSync(uri, resolve_checkpoint_dir(job_root, local_path), interval=interval, log=lines.append)
    restored = sync.restore()
    _kernel_syncs[job_root] = sync.start()
    return json.dumps({"restored": restored, "log": lines})


def kernel_stop(job_root: str) -> str:
    """Called in the job's kernel after `run`: the last sync."""
    import json
    sync = _kernel_syncs.pop(job_root, None)
    if sync is None:
        return json.dumps({"uploaded": 0, "deleted": 0})
    sync.stop()
    return json.dumps({"uploaded": sync.uploaded, "deleted": sync.deleted, "errors": sync.errors})
