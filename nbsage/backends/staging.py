"""Staging channels into a job root and collecting its artifacts: the parts every place shares.

A channel's source (a local file or folder, any fsspec URL prefix, or a ManifestFile) is listed
once into objects sorted by key. `select_objects` then applies the channel's ShuffleConfig (a
seeded shuffle, re-seeded per epoch in Pipe mode) and S3DataDistributionType (ShardedByS3Key:
host i of N gets objects i, i+N, ... of that list — object-level sharding, so a host may get none).
How the selected objects reach the algorithm depends on the input mode:

- File: put into `input/data/<channel>/<key>` before the runtime starts. With CompressionType
  Gzip each object is decompressed on the way (and a `.gz` suffix dropped). SageMaker uses
  CompressionType only in Pipe mode; nbsage also honours it in File mode rather than ignore it.
  A local file is not copied where that is safe (`stage_local_file`): a reflink (a copy-on-write
  clone: the job's writes never reach the source) where the file system makes one, else, for a
  built-in algorithm's job, a hard link on the same file system — nbsage's own code only reads its
  input, and no mode is changed on the link (it is the source's inode). A job that runs the user's
  code (script mode) gets a reflink or a copy: a hard link would let its writes reach the source.
  (A hard-linked file is read as it is when the algorithm reads it: rewriting the file in place
  while the job starts changes what it reads, where a copy would have kept the staged version.)
  The staged input is removed when the job's runtime has ended (`release_input`); config, logs,
  model and outputs stay until the job folder is pruned (`nbsage prune`, nbsage.backends.retention).
- FastFile: a read-only view, nothing copied up front. SageMaker mounts the S3 prefix read-only
  and streams objects on access; nbsage does the same:
  * remote sources (s3://, gs://, http(s)://, ...): `input/data/<channel>` is a read-only FUSE
    mount (nbsage.backends.fastfile_mount, served by its own small process) holding exactly the
    host's selected objects under their keys; each read is served from the source by byte ranges
    (a read-ahead block per open file), so bytes the algorithm never reads are never fetched. The
    place calls `release_fastfile(root)` when the job ends; a mount whose staging process dies (even
    by SIGKILL) unmounts itself. Writing into the channel fails with EROFS.
  * where FUSE cannot be used (no fusepy, no libfuse 2, no /dev/fuse or no right to mount,
    NBSAGE_FASTFILE_FUSE=0, the mount fails, or a source that lives only in this process such as
    memory://), one line in the job log says why, and each object is fetched once into a content
    cache (`$NBSAGE_HOME/cache/fastfile`, keyed by URL and ETag/size/mtime, files made 0444) and
    linked into the channel folder: materialised when the job starts, not on first read; a later
    job reading the same unchanged objects does not fetch them again.
  * local sources: `input/data/<channel>/<key>` are symlinks to the source files (opened lazily,
    zero copy). Read-only is not enforced here: a script that writes through a link changes the
    source file.
  CompressionType Gzip is rejected in FastFile mode, as SageMaker does.
- Pipe: nothing is staged; `nbsage.backends.pipe_feeder` streams the objects into the FIFOs
  `input/data/<channel>_<epoch>` while the job runs. Staging only checks that the source exists.

In every mode each object's key goes through `nbsage.paths.landing_path` before anything is
written: a key (an S3 key, a ManifestFile entry) that would land outside the channel folder, such
as `train/../../x`, fails the job with a ChannelError naming the key and the folder.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import inspect
import json
import logging
import os
import random
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

from nbsage.errors import ChannelError
from nbsage.paths import landing_path
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot, private_tree
from nbsage.store.artifacts import ArtifactStore, is_local, join, local_path

INPUT_MODES = ("File", "Pipe", "FastFile")
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
COMPRESSIONS = ("None", "Gzip")
RECORD_WRAPPERS = ("None", "RecordIO")
# an AugmentedManifestFile's objects are the manifest files themselves: File mode stages them,
# Pipe mode streams the AttributeNames of each line (nbsage.formats.augmented_manifest)
S3_DATA_TYPES = ("S3Prefix", "ManifestFile", "AugmentedManifestFile")
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


@dataclass
class ChannelObject:
    """One object of a channel's source: where to read it and its key under the channel folder."""

    url: str
    key: str
    fs: Any = field(default=None, repr=False, compare=False)  # fsspec filesystem; None for local files
    path: str = field(default="", repr=False, compare=False)  # the path within `fs`

    @property
    def local(self) -> bool:
        return self.fs is None

    def open(self) -> BinaryIO:
        """The object's bytes as stored (compressed objects are not decompressed here)."""
        if self.fs is None:
            return open(self.url, "rb")
        return self.fs.open(self.path, "rb")


def _hidden(rel: str) -> bool:
    """Hidden files are not data. `.` and `..` are not hidden names: a key holding them is checked
    by landing_path when it is staged (a key that climbs out of its folder fails the job)."""
    return any(part.startswith(".") and part not in (".", "..") for part in rel.split("/"))


def _list_local(src: Path) -> list[ChannelObject]:
    if src.is_file():
        return [ChannelObject(str(src), src.name)]
    objects = []
    for root, dirs, files in os.walk(src, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            full = Path(root) / name
            objects.append(ChannelObject(str(full), full.relative_to(src).as_posix()))
    return objects


def _list_remote(uri: str, channel: str) -> list[ChannelObject]:
    import fsspec
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as e:
        raise ChannelError(f"channel {channel!r}: cannot read {uri}: {e}") from None
    try:
        fs.invalidate_cache()  # another process (a job, an upload) may have written since the last listing
    except Exception:
        pass
    try:
        if _answers_any_url(fs):
            # every URL that answers is one object, and fsspec's exists/isfile each GET the whole
            # body (a FastFile mount would read only what the script reads): one HEAD says as much
            try:
                fs.info(path)
            except FileNotFoundError:
                return _list_key_prefix(fs, path, uri, channel)
            return [ChannelObject(uri, path.rstrip("/").rsplit("/", 1)[-1], fs, path)]
        if not fs.exists(path):
            return _list_key_prefix(fs, path, uri, channel)
        if fs.isfile(path):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            return [ChannelObject(uri, name, fs, path)]
        return _find(fs, path.rstrip("/"))
    except ChannelError:
        raise
    except (OSError, PermissionError) as e:
        raise ChannelError(f"channel {channel!r}: cannot list {uri}: {e}") from None
    except Exception as e:  # botocore's EndpointConnectionError, an aiohttp error, ...: the store is unreachable
        raise ChannelError(f"channel {channel!r}: cannot reach {uri}: {type(e).__name__}: "
                           f"{' '.join(str(e).split())}") from None


def _answers_any_url(fs) -> bool:
    """http(s)://: a filesystem where any URL that answers is a file (fsspec's HTTPFileSystem)."""
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    return bool(protocols & {"http", "https"})


def _find(fs, base: str) -> list[ChannelObject]:
    objects = []
    for key in fs.find(base):
        rel = key[len(base) + 1:] if key.startswith(base + "/") else ""
        if not rel or rel.endswith("/") or _hidden(rel):
            continue  # S3 "folder" markers and hidden files are not data
        objects.append(ChannelObject(fs.unstrip_protocol(key), rel, fs, key))
    return objects


def _list_key_prefix(fs, path: str, uri: str, channel: str) -> list[ChannelObject]:
    """A URI that names neither an object nor a folder is a key prefix, as an S3Uri is:
    s3://b/data/train matches data/train-0.csv, data/train-1.csv, ... (a URI naming a folder reads
    that folder). Keys are taken relative to the prefix's folder (data/), so matches keep their names.
    """
    parent, _, stem = path.rstrip("/").rpartition("/")
    matches = []
    if parent and stem:
        try:
            matches = [p for p in fs.ls(parent, detail=False) if p.rstrip("/").rsplit("/", 1)[-1].startswith(stem)]
        except (FileNotFoundError, OSError):
            matches = []
    if not matches:
        raise ChannelError(f"channel {channel!r}: {uri} does not exist (or is not readable with the "
                           "configured credentials)")
    objects = []
    for match in sorted(matches):
        if fs.isfile(match):
            objects.append(ChannelObject(fs.unstrip_protocol(match), match[len(parent) + 1:], fs, match))
        else:
            objects += [ChannelObject(o.url, f"{match[len(parent) + 1:].rstrip('/')}/{o.key}", fs, o.path)
                        for o in _find(fs, match.rstrip("/"))]
    return [o for o in objects if not _hidden(o.key)]


def _list_manifest(uri: str, channel: str) -> list[ChannelObject]:
    """A ManifestFile: `[{"prefix": "s3://b/p/"}, "rel/key1", "rel/key2", ...]`."""
    try:
        if is_local(uri):
            text = Path(local_path(uri)).expanduser().read_text()
        else:
            import fsspec
            with fsspec.open(uri, "rt") as f:
                text = f.read()
        manifest = json.loads(text)
    except (OSError, ValueError) as e:
        raise ChannelError(f"channel {channel!r}: cannot read the manifest {uri}: {e}") from None
    if (not isinstance(manifest, list) or not manifest or not isinstance(manifest[0], dict)
            or "prefix" not in manifest[0] or not all(isinstance(k, str) for k in manifest[1:])):
        raise ChannelError(f"channel {channel!r}: {uri} is not a ManifestFile: expected a JSON list "
                           '[{"prefix": "s3://bucket/prefix/"}, "key1", "key2", ...]')
    prefix = manifest[0]["prefix"]
    objects = []
    for rel in manifest[1:]:
        url = prefix + rel if prefix.endswith("/") else f"{prefix}/{rel}"
        found = _list_local(Path(local_path(url))) if is_local(url) else _list_remote(url, channel)
        if len(found) != 1:
            raise ChannelError(f"channel {channel!r}: manifest {uri} names {url}, which is not one file")
        objects.append(ChannelObject(found[0].url, rel, found[0].fs, found[0].path))
    return objects


def list_channel_objects(uri: str, channel: str, s3_data_type: str = "S3Prefix") -> list[ChannelObject]:
    """Every object of a channel's source, sorted by key (hidden files skipped)."""
    if s3_data_type not in S3_DATA_TYPES:
        raise ChannelError(f"channel {channel!r}: S3DataType {s3_data_type!r} is not supported; "
                           f"use one of {', '.join(S3_DATA_TYPES)}")
    if s3_data_type == "ManifestFile":
        objects = _list_manifest(uri, channel)
    elif is_local(uri):
        src = Path(local_path(uri)).expanduser()
        if src.exists():
            objects = _list_local(src.resolve())
        else:  # a key prefix, as an S3Uri is (the default bucket's URIs land here)
            import fsspec
            objects = _list_key_prefix(fsspec.filesystem("file"), str(src.absolute()), uri, channel)
    else:
        objects = _list_remote(uri, channel)
    if not objects:
        raise ChannelError(f"channel {channel!r}: {uri} holds no files")
    return sorted(objects, key=lambda o: o.key)


def select_objects(objects: list[ChannelObject], distribution: str = "FullyReplicated", host_index: int = 0,
                   host_count: int = 1, shuffle_seed: int | None = None, epoch: int = 0) -> list[ChannelObject]:
    """The objects one host reads: shuffled by ShuffleConfig's seed (plus the epoch), then sharded.

    ShardedByS3Key gives host i of N the objects i, i+N, i+2N, ... of the (shuffled) list; with a
    shuffle that changes per epoch, so does the shard-to-host assignment, as on SageMaker.
    """
    if distribution not in DISTRIBUTIONS:
        raise ChannelError(f"S3DataDistributionType {distribution!r} is not valid; use one of {', '.join(DISTRIBUTIONS)}")
    if not 0 <= host_index < max(host_count, 1):
        raise ChannelError(f"host index {host_index} is not one of the {host_count} hosts")
    chosen = list(objects)
    if shuffle_seed is not None:
        random.Random(int(shuffle_seed) + epoch).shuffle(chosen)
    if distribution == "ShardedByS3Key" and host_count > 1:
        chosen = chosen[host_index::host_count]
    return chosen


def _check_channel_options(channel: str, input_mode: str, compression: str | None) -> str:
    if input_mode not in INPUT_MODES:
        raise ChannelError(f"channel {channel!r}: input mode {input_mode!r} is not valid; use one of {', '.join(INPUT_MODES)}")
    compression = compression or "None"
    if compression not in COMPRESSIONS:
        raise ChannelError(f"channel {channel!r}: CompressionType {compression!r} is not valid; "
                           f"use one of {', '.join(COMPRESSIONS)}")
    if compression == "Gzip" and input_mode == "FastFile":
        raise ChannelError(f"channel {channel!r}: CompressionType Gzip works with the File and Pipe input "
                           "modes, not FastFile (SageMaker streams FastFile objects as stored)")
    return compression


class _Rejoined:
    """A stream with bytes already read from it put back in front (no seek needed: HTTP, pipes)."""

    def __init__(self, head: bytes, raw: BinaryIO):
        self.head, self.raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.raw.read(n)
        if n is None or n < 0:
            data, self.head = self.head + self.raw.read(), b""
            return data
        data, self.head = self.head[:n], self.head[n:]
        return data + (self.raw.read(n - len(data)) if len(data) < n else b"")


class _Gunzip(gzip.GzipFile):
    """GzipFile that also closes the object stream it reads."""

    def __init__(self, raw: BinaryIO, head: bytes):
        super().__init__(fileobj=_Rejoined(head, raw), mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_decompressed(obj: ChannelObject, channel: str) -> BinaryIO:
    """An object's bytes, gunzipped; a clear ChannelError when it is not gzip data."""
    raw = obj.open()
    head = raw.read(2)
    if head != GZIP_MAGIC:
        raw.close()
        raise ChannelError(f"channel {channel!r}: CompressionType is Gzip, and {obj.url} is not gzip data")
    return _Gunzip(raw, head)


def _copy_object(obj: ChannelObject, target: Path, channel: str, gunzip: bool, link: bool = False) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if obj.local and not gunzip:
        stage_local_file(Path(obj.url), target, link)
        return
    if gunzip:
        src = open_decompressed(obj, channel)
        try:
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        except (OSError, EOFError) as e:
            raise ChannelError(f"channel {channel!r}: {obj.url} is not valid gzip data ({e})") from None
    else:
        obj.fs.get_file(obj.path, str(target))


_FICLONE = 0x40049409  # ioctl: make `dst` a copy-on-write clone of `src` (btrfs, XFS, bcachefs, ...)


def _reflink(source: Path, target: Path) -> bool:
    """Clone source into a new file at target; False (and nothing left at target) where the file
    system cannot."""
    import fcntl
    try:
        with open(source, "rb") as src:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                fcntl.ioctl(fd, _FICLONE, src.fileno())
            finally:
                os.close(fd)
    except OSError:
        target.unlink(missing_ok=True)
        return False
    return True


def stage_local_file(source: Path, target: Path, link: bool = False) -> str:
    """Put a local file at target without copying it where that is safe; returns how: 'reflink',
    'hardlink' or 'copy'.

    A reflink is always safe (the job's writes go to its own blocks). A hard link is the source's
    own inode, so it is made only when `link` says nothing in the job writes its input (a built-in
    algorithm); its mode is left as it is (a chmod would change the source's). Else a copy.
    """
    if target.is_symlink() or target.exists():
        target.unlink()
    if _reflink(source, target):
        return "reflink"
    if link and source.is_file():
        try:
            os.link(source, target)
            return "hardlink"
        except OSError:  # another file system, no right to link (fs.protected_hardlinks), a limit
            pass
    shutil.copyfile(source, target)
    return "copy"


def runs_user_code(request: dict) -> bool:
    """Whether the job runs the user's code (script mode: `sagemaker_program`), which may write its input."""
    return "sagemaker_program" in (request.get("HyperParameters") or {})


def release_input(root: JobRoot | str | os.PathLike) -> None:
    """The job's runtime has ended: its FastFile mounts released and its staged input (input/data:
    copies, links, FIFOs) removed. input/config, the logs, the model and the outputs stay.

    Links are removed, never followed: a hard link or symlink to the user's file leaves the file.
    """
    root = root if isinstance(root, JobRoot) else JobRoot(root)
    release_fastfile(root)
    data = root.data_dir
    if data.is_dir() and not data.is_symlink():
        for entry in list(data.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)  # rmtree unlinks symlinks, never follows them
            else:
                try:
                    entry.unlink()
                except OSError:
                    pass


def default_cache_dir() -> Path:
    """Where FastFile keeps fetched remote objects: $NBSAGE_HOME/cache/fastfile."""
    return Path(os.environ.get("NBSAGE_HOME") or "~/.nbsage").expanduser() / "cache" / "fastfile"


def _cached(obj: ChannelObject, cache_dir: Path, name: str) -> Path:
    """The object's local copy in the FastFile cache (as `name`, the file name it lands under), fetched
    on first use."""
    try:
        info = obj.fs.info(obj.path)
    except (OSError, FileNotFoundError):
        info = {}
    version = next((str(info[k]) for k in ("ETag", "etag", "md5Hash", "mtime", "LastModified", "last_modified", "created") if info.get(k)), "")
    digest = hashlib.sha256(f"{obj.url}\n{version}\n{info.get('size', '')}".encode()).hexdigest()
    cached = landing_path(cache_dir / digest[:2] / digest, name, what=f"FastFile cache of {obj.url}")
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        obj.fs.get_file(obj.path, str(tmp))
        os.chmod(tmp, 0o444)
        os.replace(tmp, cached)
    return cached


def _mount_fastfile(objects: list[ChannelObject], targets: list[Path], dest_dir: Path, channel: str, uri: str,
                    log: Callable[[str], None] | None) -> bool:
    """Mount a FastFile channel's remote objects lazily at dest_dir, each at its target (a landing_path
    under dest_dir); False (and one log line saying why) when FUSE cannot be used, and the objects
    are fetched at job start instead."""
    from nbsage.backends import fastfile_mount
    entries = [fastfile_mount.MountEntry(t.relative_to(dest_dir).as_posix(), o.fs, o.url if o.local else o.path)
               for o, t in zip(objects, targets)]
    try:
        fastfile_mount.mount(entries, dest_dir)
    except fastfile_mount.MountUnavailable as e:
        (log or _log.warning)(f"FastFile channel {channel!r}: no lazy mount of {uri} ({e}); fetching its "
                              f"{len(objects)} object(s) into the cache before the job starts instead")
        return False
    (log or _log.info)(f"FastFile channel {channel!r}: {len(objects)} object(s) of {uri} mounted read-only "
                       f"at input/data/{channel}, read from the source on access")
    return True


def release_fastfile(root: JobRoot | str | os.PathLike | None = None) -> int:
    """Unmount the FastFile mounts this process made for a job root (every one when None).

    A place calls it when the job's runtime has ended; a mount whose staging process dies goes by
    itself. Returns how many mounts were released.
    """
    if "nbsage.backends.fastfile_mount" not in sys.modules:
        return 0  # nothing was mounted by this process
    from nbsage.backends import fastfile_mount
    return fastfile_mount.release(root.path if isinstance(root, JobRoot) else root)


def releases_fastfile(run: Callable) -> Callable:
    """Decorator: release the FastFile mounts of the call's `root` argument and remove its staged
    input when the call ends (`release_input`)."""
    signature = inspect.signature(run)

    @functools.wraps(run)
    def wrapper(*args, **kwargs):
        try:
            return run(*args, **kwargs)
        finally:
            root = signature.bind_partial(*args, **kwargs).arguments.get("root")
            if root is not None:  # never every mount of the process: other jobs' hosts may share it
                release_input(root)
    return wrapper


def stage_channel(uri: str, dest_dir: Path, channel: str, *, input_mode: str = "File",
                  compression: str | None = None, distribution: str = "FullyReplicated", host_index: int = 0,
                  host_count: int = 1, shuffle_seed: int | None = None, s3_data_type: str = "S3Prefix",
                  cache_dir: Path | None = None, attribute_names: list | None = None,
                  log: Callable[[str], None] | None = None, fastfile_mount: bool = True,
                  link: bool = False) -> int:
    """Put one host's share of a channel into dest_dir as its input mode wants; returns the object count.

    `link`: File mode may hard-link local files (nothing in the job writes its input; see
    stage_local_file).

    Pipe mode stages nothing (the pipe feeder streams the objects while the job runs). FastFile
    mounts remote objects lazily (release them with `release_fastfile`) unless `fastfile_mount` is
    False or FUSE cannot be used here; `log` gets the line that says why it fell back.
    """
    compression = _check_channel_options(channel, input_mode, compression)
    objects = select_objects(list_channel_objects(uri, channel, s3_data_type), distribution,
                             host_index, host_count, shuffle_seed)
    gunzip = compression == "Gzip"
    # every key is checked before anything is written, whatever the mode: a key that would land
    # outside the channel folder fails the job with the key named, and nothing is staged
    targets = [landing_path(dest_dir, obj.key[:-3] if gunzip and obj.key.endswith(".gz") else obj.key,
                            what=f"channel {channel!r} ({uri})", error=ChannelError) for obj in objects]
    if input_mode == "Pipe":
        return len(objects)
    if (input_mode == "FastFile" and fastfile_mount and objects and not all(o.local for o in objects)
            and _mount_fastfile(objects, targets, dest_dir, channel, uri, log)):
        return len(objects)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for obj, target in zip(objects, targets):
        if input_mode == "File":
            _copy_object(obj, target, channel, gunzip, link)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = Path(obj.url) if obj.local else _cached(obj, cache_dir or default_cache_dir(), target.name)
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(source)
    return len(objects)


def channel_options(ch: dict, request: dict) -> dict:
    """stage_channel's keyword arguments for one InputDataConfig entry of a request."""
    s3 = ch.get("DataSource", {}).get("S3DataSource", {})
    seed = (ch.get("ShuffleConfig") or {}).get("Seed")
    return {
        "input_mode": ch.get("InputMode") or request.get("AlgorithmSpecification", {}).get("TrainingInputMode") or "File",
        "compression": ch.get("CompressionType"),
        "distribution": s3.get("S3DataDistributionType", "FullyReplicated"),
        "shuffle_seed": int(seed) if seed is not None else None,
        "s3_data_type": s3.get("S3DataType", "S3Prefix"),
        "attribute_names": s3.get("AttributeNames"),
    }


def host_count(request: dict) -> int:
    return int(request.get("ResourceConfig", {}).get("InstanceCount", 1) or 1)


def prepare_root(root: JobRoot, request: dict, code_source: str | None = None, *, host_index: int = 0,
                 cache_dir: Path | None = None, log: Callable[[str], None] | None = None,
                 fastfile_mount: bool = True) -> JobRoot:
    """Write the config files, stage host `host_index`'s share of every channel and the script's source.

    FastFile channels of remote sources are mounted (see stage_channel): the place calls
    `release_fastfile(root)` when the job ends. `log` gets the job log's lines about staging.
    """
    write_job_configs(root, request, host_index)
    try:
        for ch in request.get("InputDataConfig", []):
            name = ch["ChannelName"]
            stage_channel(ch["DataSource"]["S3DataSource"]["S3Uri"], root.channel_dir(name), name,
                          host_index=host_index, host_count=host_count(request), cache_dir=cache_dir,
                          log=log, fastfile_mount=fastfile_mount, link=not runs_user_code(request),
                          **channel_options(ch, request))
        if code_source:
            src = Path(local_path(code_source))
            if src.is_dir():
                shutil.copytree(src, root.code_dir, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(".git", "__pycache__", ".ipynb_checkpoints"))
            else:
                shutil.copyfile(src, root.code_dir / src.name)
            private_tree(root.code_dir)  # copies keep the source's 0755/0644
    except BaseException:
        release_input(root)  # a job that does not start keeps no mount and no staged input
        raise
    return root


def artifact_uris(request: dict) -> tuple[str, str]:
    """(model.tar.gz, output.tar.gz) URIs: <S3OutputPath>/<job>/output/..., as SageMaker places them."""
    base = join(request["OutputDataConfig"]["S3OutputPath"], request["TrainingJobName"], "output")
    return join(base, "model.tar.gz"), join(base, "output.tar.gz")


def stopped_model(root: JobRoot, request: dict, artifacts: ArtifactStore, log=None) -> str | None:
    """StopTrainingJob as SageMaker does it: the model a stopped runtime saved (XGBoost's
    save_model_on_termination, a script's SIGTERM handler; packed by the runtime when /opt/ml/model
    is not empty) is uploaded as model.tar.gz, so the stopped job can be deployed. Every place's stop
    path calls this. None when there is none, or when the upload failed (the job still ends Stopped)."""
    if not root.model_archive.exists():
        return None
    try:
        return artifacts.put_file(root.model_archive, artifact_uris(request)[0])
    except Exception as e:
        if log:
            log(f"The model saved on stop could not be uploaded: {type(e).__name__}: {e}")
        return None


def collect(root: JobRoot, request: dict, artifacts: ArtifactStore) -> tuple[str | None, str | None]:
    """Upload model.tar.gz and output.tar.gz from the root; returns their URIs (None when absent)."""
    model_uri, output_uri = artifact_uris(request)
    model = artifacts.put_file(root.model_archive, model_uri) if root.model_archive.exists() else None
    output = artifacts.put_file(root.output_archive, output_uri) if root.output_archive.exists() else None
    return model, output
