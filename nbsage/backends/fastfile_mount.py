"""FastFile's lazy read-only mount: a channel's remote objects, read by byte ranges on access.

SageMaker mounts a FastFile channel's S3 prefix read-only and streams bytes as the algorithm reads
them. nbsage does the same with FUSE: `input/data/<channel>` becomes a read-only mount that holds
exactly the channel's selected objects under their keys; each `read` of the algorithm is served from
the object's fsspec filesystem by range requests (a read-ahead block per open file), so a script that
reads 4 KB of a 64 MB object fetches a few MB, not 64.

The mount is served by its own small process (`python -m nbsage.backends.fastfile_mount MOUNTPOINT`,
the objects handed over on its stdin), in the foreground, in its own session so that signals sent
to the supervisor's process group do not reach it. It unmounts and exits when

- the place releases it (`release`, at the job's end): the stdin pipe is closed;
- the process that mounted it dies, even by SIGKILL: the kernel closes the write end of that pipe
  (EOF on the mount process's stdin), and a changed parent pid is checked too. A pipe rather than
  PR_SET_PDEATHSIG, because a death signal follows the *thread* that started the child, and staging
  runs in worker threads (multi-host, Dask).

`mount` raises `MountUnavailable` with the reason when FUSE cannot be used here (no fusepy, no
libfuse 2, no /dev/fuse, no right to mount, NBSAGE_FASTFILE_FUSE=0, a filesystem that lives only in
this process such as memory://); staging then falls back to fetching the objects at job start.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import pickle
import posixpath
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

FSNAME = "nbsage-fastfile"
SUBTYPE = "nbsage"  # the mount's type in /proc/mounts is fuse.nbsage
BLOCK_SIZE = int(os.environ.get("NBSAGE_FASTFILE_BLOCK_SIZE", str(4 << 20)))
MOUNT_TIMEOUT = float(os.environ.get("NBSAGE_FASTFILE_MOUNT_TIMEOUT", "20"))
# filesystems whose objects exist only inside the process that made them: another process sees none
PROCESS_LOCAL_PROTOCOLS = {"memory"}
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class MountUnavailable(Exception):
    """FUSE cannot serve this channel here; the message says why."""


@dataclass
class MountEntry:
    """One object of the mount: its key (path under the mount) and where its bytes are read."""

    key: str
    fs: Any  # an fsspec filesystem; None for a local file (read with open())
    path: str


# ---- the mount process's side ----------------------------------------------------------------------
def _fuse_errors(method):
    """Any failure of an operation becomes an errno for the reader (EIO by default).

    fusepy stops the whole mount on an exception that is not an OSError (an HTTP client's error,
    say); one failed read must fail that read only.
    """
    @functools.wraps(method)
    def wrapper(self, *args):
        from fuse import FuseOSError
        try:
            return method(self, *args)
        except FuseOSError:
            raise
        except FileNotFoundError:
            raise FuseOSError(errno.ENOENT) from None
        except PermissionError:
            raise FuseOSError(errno.EACCES) from None
        except Exception as e:  # noqa: BLE001 - reported to the reader as EIO, logged here
            print(f"nbsage fastfile: {method.__name__}{args[:1]} failed: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
            raise FuseOSError(errno.EIO) from None
    return wrapper


def _operations_class():
    from fuse import FuseOSError, Operations

    class ChannelView(Operations):
        """A read-only tree of a channel's objects; file bytes are fetched when read."""

        def __init__(self, entries: Iterable[MountEntry], block_size: int = BLOCK_SIZE):
            self.files: dict[str, MountEntry] = {}
            self.dirs: dict[str, set[str]] = {"/": set()}
            for entry in entries:  # keys were checked by landing_path in mount(): none climbs out
                parts = [p for p in posixpath.normpath(entry.key).split("/") if p not in ("", ".")]
                parent = "/"
                for part in parts[:-1]:
                    child = f"{parent.rstrip('/')}/{part}"
                    self.dirs[parent].add(part)
                    self.dirs.setdefault(child, set())
                    parent = child
                self.dirs[parent].add(parts[-1])
                self.files[f"{parent.rstrip('/')}/{parts[-1]}"] = entry
            self.block_size = block_size
            self.uid, self.gid, self.time = os.getuid(), os.getgid(), time.time()
            self._sizes: dict[str, int] = {}
            self._handles: dict[int, tuple[Any, threading.Lock]] = {}
            self._next_handle = 1
            self._lock = threading.Lock()

        def _size(self, path: str) -> int:
            size = self._sizes.get(path)
            if size is None:
                entry = self.files[path]
                size = os.stat(entry.path).st_size if entry.fs is None else int(entry.fs.size(entry.path))
                self._sizes[path] = size
            return size

        @_fuse_errors
        def getattr(self, path, fh=None):
            common = dict(st_uid=self.uid, st_gid=self.gid, st_atime=self.time, st_mtime=self.time,
                          st_ctime=self.time)
            if path in self.dirs:
                return dict(common, st_mode=stat.S_IFDIR | 0o555, st_nlink=2 + sum(
                    f"{path.rstrip('/')}/{name}" in self.dirs for name in self.dirs[path]))
            if path in self.files:
                size = self._size(path)
                return dict(common, st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=size,
                            st_blocks=(size + 511) // 512, st_blksize=self.block_size)
            raise FuseOSError(errno.ENOENT)

        @_fuse_errors
        def readdir(self, path, fh):
            if path not in self.dirs:
                raise FuseOSError(errno.ENOTDIR if path in self.files else errno.ENOENT)
            return [".", "..", *sorted(self.dirs[path])]

        @_fuse_errors
        def open(self, path, flags):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC | os.O_CREAT):
                raise FuseOSError(errno.EROFS)
            entry = self.files.get(path)
            if entry is None:
                raise FuseOSError(errno.EISDIR if path in self.dirs else errno.ENOENT)
            if entry.fs is None:
                handle = open(entry.path, "rb")
            else:
                handle = entry.fs.open(entry.path, "rb", block_size=self.block_size, cache_type="readahead")
            with self._lock:
                fh, self._next_handle = self._next_handle, self._next_handle + 1
                self._handles[fh] = (handle, threading.Lock())
            return fh

        @_fuse_errors
        def read(self, path, size, offset, fh):
            handle, lock = self._handles[fh]
            with lock:  # fusepy serves reads from several threads; a file object is not thread-safe
                handle.seek(offset)
                return handle.read(size)

        @_fuse_errors
        def release(self, path, fh):
            with self._lock:
                handle, lock = self._handles.pop(fh, (None, None))
            if handle is not None:
                with lock:
                    handle.close()
            return 0

        def statfs(self, path):
            return dict(f_bsize=self.block_size, f_frsize=self.block_size, f_blocks=0, f_bfree=0,
                        f_bavail=0, f_files=len(self.files), f_ffree=0, f_namemax=255)

    return ChannelView


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError("the mounting process closed the pipe before sending the objects")
        data += chunk
    return data


def _watch_parent(parent: int, mountpoint: str) -> None:
    """Wait for EOF on stdin (released, or the mounting process died) or a new parent; then stop."""
    while True:
        ready, _, _ = select.select([0], [], [], 0.5)
        if ready:
            try:
                if not os.read(0, 4096):
                    break
            except OSError:
                break
        elif os.getppid() != parent:
            break
    # libfuse's SIGTERM handler ends its loop and unmounts; only the main thread takes the signal
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    time.sleep(10)  # a loop that did not end: take the mount away from it
    _detach(mountpoint)
    os._exit(1)


def serve(mountpoint: str) -> int:
    """The mount process: read the entries from stdin, mount read-only in the foreground, serve."""
    parent = os.getppid()
    # only the main thread may take the stop signals: libfuse's loop waits there, and its worker
    # threads (and fsspec's IO thread, started from them or from here) block them
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    (length,) = struct.unpack("!Q", _read_exactly(0, 8))
    objects, block_size = pickle.loads(_read_exactly(0, length))
    entries = [MountEntry(*o) for o in objects]
    from fuse import FUSE
    operations = _operations_class()(entries, block_size)
    threading.Thread(target=_watch_parent, args=(parent, mountpoint), daemon=True, name="nbsage-fastfile-watch").start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    # nonempty: files an earlier staging left in the folder are hidden, the channel shows its objects only
    options = dict(foreground=True, nothreads=False, ro=True, fsname=FSNAME, subtype=SUBTYPE, nonempty=True,
                   kernel_cache=True, attr_timeout=3600, entry_timeout=3600)
    FUSE(operations, mountpoint, **options)
    return 0


# ---- the mounting process's side -------------------------------------------------------------------
@dataclass
class Mount:
    """A mount process and the pipe that keeps it alive."""

    mountpoint: str
    proc: subprocess.Popen

    def close(self, timeout: float = 10.0) -> None:
        """Unmount: close the pipe (the process unmounts and exits); force it when it does not."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.mountpoint in mounts_under(self.mountpoint):
            _detach(self.mountpoint)


_mounts: dict[str, Mount] = {}
_mounts_lock = threading.Lock()


def unavailable_reason() -> str | None:
    """Why FUSE cannot be used on this machine, or None when it can."""
    if os.environ.get("NBSAGE_FASTFILE_FUSE", "1").strip().lower() in ("0", "false", "no", "off"):
        return "NBSAGE_FASTFILE_FUSE=0"
    return _machine_reason()


@functools.lru_cache(maxsize=1)
def _machine_reason() -> str | None:
    import importlib.util
    if not sys.platform.startswith("linux"):
        return f"FUSE mounts are only used on Linux, not {sys.platform}"
    if importlib.util.find_spec("fuse") is None:
        return "fusepy is not installed (pip install fusepy)"
    if not (os.environ.get("FUSE_LIBRARY_PATH") or ctypes.util.find_library("fuse")):
        return "libfuse 2 is not installed (Debian: apt-get install libfuse2)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (a container needs --device /dev/fuse)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if os.geteuid() != 0 and not shutil.which("fusermount"):
        return "fusermount is not installed and this process is not root"
    return None


def mount(entries: list[MountEntry], mountpoint: Path, timeout: float = MOUNT_TIMEOUT) -> Mount:
    """Mount `entries` read-only at `mountpoint` (made if missing); returns once the mount is up."""
    from nbsage.errors import ChannelError
    from nbsage.paths import landing_path
    for entry in entries:  # a key that climbs out of the mount is refused, not served (nor fallen back on)
        landing_path(mountpoint, entry.key, what=f"FastFile mount at {mountpoint}", error=ChannelError)
    reason = unavailable_reason()
    if reason:
        raise MountUnavailable(reason)
    for entry in entries:
        protocols = getattr(entry.fs, "protocol", ()) if entry.fs is not None else ()
        protocols = {protocols} if isinstance(protocols, str) else set(protocols)
        if protocols & PROCESS_LOCAL_PROTOCOLS:
            raise MountUnavailable(f"{'/'.join(sorted(protocols & PROCESS_LOCAL_PROTOCOLS))}:// objects "
                                   "live only in this process, and the mount is served by another one")
    try:
        payload = pickle.dumps(([(e.key, e.fs, e.path) for e in entries], BLOCK_SIZE))
    except Exception as e:  # noqa: BLE001 - a filesystem object that cannot travel to the mount process
        raise MountUnavailable(f"the filesystem cannot be handed to a mount process ({type(e).__name__}: {e})") from None
    mountpoint = Path(mountpoint)
    mountpoint.mkdir(parents=True, exist_ok=True)
    target = str(mountpoint.resolve())
    if target in mounts_under(target):  # a mount left behind by a process that was killed
        _detach(target)
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "nbsage.backends.fastfile_mount", target],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                            start_new_session=True, close_fds=True)
    handle = Mount(target, proc)
    try:
        proc.stdin.write(struct.pack("!Q", len(payload)) + payload)
        proc.stdin.flush()
    except OSError:
        pass  # the process ended already: its reason is read below
    deadline = time.monotonic() + timeout
    while not os.path.ismount(target):
        ended = proc.poll() is not None
        if ended or time.monotonic() > deadline:
            handle.close(timeout=2)
            errors.seek(0)
            said = [line.strip() for line in errors.read().decode("utf-8", "replace").splitlines() if line.strip()]
            errors.close()
            said = "; ".join(said[-3:]) or f"exit code {proc.returncode}"
            if ended:
                raise MountUnavailable(f"mounting {target} failed: {said}")
            raise MountUnavailable(f"the mount at {target} was not up after {timeout:g} s ({said})")
        time.sleep(0.02)
    errors.close()
    with _mounts_lock:
        _mounts[target] = handle
    return handle


def release(under: str | os.PathLike | None = None) -> int:
    """Unmount the FastFile mounts this process made under `under` (all of them when None); also
    detach stale FastFile mounts left there by a killed mount process. Returns how many were released."""
    base = str(Path(under).resolve()) if under is not None else None

    def inside(path: str) -> bool:
        return base is None or path == base or path.startswith(base.rstrip("/") + "/")

    with _mounts_lock:
        mine = [m for path, m in _mounts.items() if inside(path)]
        for m in mine:
            _mounts.pop(m.mountpoint, None)
    for m in mine:
        m.close()
    if base is not None:
        for path in mounts_under(base):
            _detach(path)
    return len(mine)


def mounts_under(base: str | os.PathLike) -> list[str]:
    """FastFile mount points at or below `base`, as /proc/mounts lists them."""
    base = str(base).rstrip("/") or "/"
    found = []
    try:
        with open("/proc/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[2] != f"fuse.{SUBTYPE}":
            continue
        path = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
        if path == base or path.startswith(base.rstrip("/") + "/"):
            found.append(path)
    return found


def _detach(path: str) -> None:
    """Lazily unmount `path` (it goes once nothing uses it)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(path.encode(), 2) == 0:  # MNT_DETACH
            return
    if shutil.which("fusermount"):
        subprocess.run(["fusermount", "-u", "-z", path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m nbsage.backends.fastfile_mount MOUNTPOINT  (objects on stdin)", file=sys.stderr)
        return 2
    try:
        return serve(argv[0])
    except Exception as e:  # noqa: BLE001 - the mounting process reads this line as the reason
        print(f"{type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
