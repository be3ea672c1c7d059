"""A view of the file system of the job's own: /opt/ml is its root, NBSAGE_HOME shows nothing else.

The runtime (processing) or the child about to exec the job's code (script mode) gives itself a
private mount namespace; nothing changes for any other process, so two jobs running at once each
see only their own files:

- `unshare(CLONE_NEWNS)` when running as root, else `unshare(CLONE_NEWUSER | CLONE_NEWNS)` with the
  user mapped to root inside for processing (what `unshare --mount --map-root-user` does; it works
  unprivileged wherever unprivileged user namespaces are enabled) or to itself for script mode.
  Mount propagation is made private first, so no mount leaks back to the host;
- /opt/ml (processing; script mode when it runs as NBSAGE_JOB_USER): if the machine has a directory
  /opt/ml, the job root is bind-mounted on it; otherwise a tmpfs is mounted on /opt, every entry
  /opt held is bound back in place (symlinks recreated), and the job root is bind-mounted on the new
  /opt/ml. The host's /opt is never written to;
- NBSAGE_HOME is covered by an empty read-only tmpfs, and only this job's root (read-write, at its
  own path), the requirements environments (nbsage.runtime.model_env) and the folders the job's
  FastFile channels link into (read-only) are bound back: the job's code cannot read or write the
  store (nbsage.db holds every job's request, secrets included), the artifacts, or another job.

No external tool is needed (no bubblewrap, no `unshare` binary): the system calls are made through
ctypes, first in a forked probe, so a namespace that cannot be finished (a user namespace in which
mounting is then refused, as AppArmor's `kernel.apparmor_restrict_unprivileged_userns` does) leaves
the caller as it was and its fallback takes over.
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import threading
from pathlib import Path

OPT_ML = "/opt/ml"


class IsolationUnavailable(Exception):
    """No private mount namespace can be made here; the message says why."""


_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
_MNT_DETACH = 2


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError as e:  # pragma: no cover - every Linux libc loads
        raise IsolationUnavailable(f"libc cannot be loaded ({e})") from None


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise IsolationUnavailable(f"{what} failed: {os.strerror(code)} ({errno.errorcode.get(code, code)})")


def _mount(libc, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None):
    _check(libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def _enter_namespace(libc, map_root: bool = True) -> str:
    """unshare a mount namespace (and a user namespace when not root); returns how.

    In a user namespace the invoking user is root inside when `map_root` (a processing container
    runs as root), else keeps its own uid (script mode, where the script always ran as the user):
    the capabilities to mount belong to the namespace's creator either way, until the job's code is
    exec'd.
    """
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0 and libc.unshare(_CLONE_NEWNS) == 0:
        return "mount namespace"
    reason = os.strerror(ctypes.get_errno()) if uid == 0 else None
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
        code = ctypes.get_errno()
        why = os.strerror(code)
        hint = ""
        if code in (errno.EPERM, errno.ENOSPC, errno.EINVAL):
            hint = ("; unprivileged user namespaces may be disabled (sysctl user.max_user_namespaces, "
                    "kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, "
                    "or a seccomp profile such as a container's)")
        raise IsolationUnavailable(f"unshare(CLONE_NEWUSER|CLONE_NEWNS) failed: {why}"
                                   + (f" (and CLONE_NEWNS alone: {reason})" if reason else "") + hint)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{0 if map_root else uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{0 if map_root else gid} {gid} 1")
    return "user and mount namespace"


def _rebuild_opt_with_ml(libc, job_root: str) -> None:
    """tmpfs on /opt, every entry of the old /opt bound back, and the job root on /opt/ml."""
    old = os.open("/opt", os.O_PATH | os.O_DIRECTORY)
    try:
        through = f"/proc/self/fd/{old}"  # the old /opt, still reachable once covered
        entries = sorted(os.listdir(through))
        st_opt = os.stat(through)
        _mount(libc, "tmpfs", "/opt", "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode={stat.S_IMODE(st_opt.st_mode):o}")
        try:
            for name in entries:
                if name == "ml":
                    continue
                src, dst = f"{through}/{name}", f"/opt/{name}"
                st = os.lstat(src)
                if stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(src), dst)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(dst)
                else:
                    with open(dst, "w"):
                        pass
                _mount(libc, src, dst, None, _MS_BIND | _MS_REC)
            os.mkdir("/opt/ml")
            _mount(libc, job_root, "/opt/ml", None, _MS_BIND | _MS_REC)
        except BaseException:
            libc.umount2(b"/opt", _MNT_DETACH)  # back to the host's view before giving up
            raise
    finally:
        os.close(old)


def nbsage_home() -> Path | None:
    """NBSAGE_HOME (default ~/.nbsage) when it exists: the folder the job's code must not reach."""
    home = Path(os.environ.get("NBSAGE_HOME") or "~/.nbsage").expanduser()
    try:
        return home.resolve() if home.is_dir() else None
    except PermissionError:  # out of this user's reach already: nothing to hide from it
        return None


_MS_RDONLY, _MS_REMOUNT = 1, 32
# statvfs flags -> the mount flags a read-only remount must repeat (a user namespace locks them)
_LOCKED_FLAGS = {os.ST_NOSUID: 2, os.ST_NODEV: 4, os.ST_NOEXEC: 8, os.ST_NOATIME: 1024,
                 os.ST_NODIRATIME: 2048, os.ST_RELATIME: 1 << 21}


def _remount_read_only(libc, path: str) -> None:
    kept = os.statvfs(path).f_flag
    flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
    for st_flag, ms_flag in _LOCKED_FLAGS.items():
        if kept & st_flag:
            flags |= ms_flag
    _mount(libc, None, path, None, flags)


LINKED_FOLDERS_MAX = 64


def _linked_folders(home: Path, job_root: Path) -> list[Path]:
    """Folders in `home` but outside the job root that the root's symlinks point into: a FastFile
    channel of a local source (data uploaded to the default artifact root, say) or of the FastFile
    cache is a folder of links. The fewest folders that hold every target; above LINKED_FOLDERS_MAX,
    their ancestors two levels below home (`artifacts/data`, `cache/fastfile`)."""
    targets = set()
    for folder, dirs, files in os.walk(job_root):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(folder, d))]  # a FUSE view: not links
        for name in files + dirs:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                target = Path(os.path.realpath(path))
                folder = target if target.is_dir() else target.parent
                if home in folder.parents and folder != job_root and job_root not in folder.parents \
                        and folder not in job_root.parents:  # never a folder that holds other roots
                    targets.add(folder)
    folders: list[Path] = []
    for folder in sorted(targets, key=lambda p: len(p.parts)):
        if not any(f == folder or f in folder.parents for f in folders):
            folders.append(folder)
    if len(folders) > LINKED_FOLDERS_MAX:
        folders = sorted({home.joinpath(*f.relative_to(home).parts[:2]) for f in folders})
    return [f for f in folders if f.is_dir()]


def _hide_home(libc, job_root: Path) -> None:
    """Cover NBSAGE_HOME with an empty read-only tmpfs, then bind back this job's root (read-write,
    at its own path), the per-requirements environments and the folders its channels link into
    (read-only): the store, the other artifacts and every other job's root are out of the job's
    sight. Inside the namespace only."""
    home = nbsage_home()
    if home is None or home == job_root or job_root in home.parents:
        return  # nothing of nbsage's to hide, or the job root holds it all (a root given by hand)
    keep = []
    if home in job_root.parents:
        keep.append((job_root, False))
    envs = (home / "envs").resolve()
    if envs.is_dir():
        keep.append((envs, True))
    keep += [(folder, True) for folder in _linked_folders(home, job_root)
             if not any(folder == kept or kept in folder.parents for kept, _ in keep)]
    opened = [(os.open(path, os.O_PATH | os.O_DIRECTORY), path, read_only) for path, read_only in keep]
    try:
        # 0755: the job's user (NBSAGE_JOB_USER) walks through it to its own root
        _mount(libc, "tmpfs", str(home), "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=755")
        for fd, path, read_only in opened:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", str(path), None, _MS_BIND | _MS_REC)
            if read_only:
                _remount_read_only(libc, str(path))
        # and nothing new in the home either (a script's `open(home/nbsage.db, "a")` fails, not
        # creates a decoy); the job root bound above is a mount of its own and stays writable
        _mount(libc, None, str(home), None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    finally:
        for fd, _, _ in opened:
            os.close(fd)


def probe_private_opt_ml(job_root: str | os.PathLike) -> str | None:
    """Try private_opt_ml in a forked child; None when it works, else why not.

    A failure half-way (say, a user namespace made but no mount allowed in it, as AppArmor's
    restriction of unprivileged user namespaces does) then leaves this process untouched.
    """
    return probe_private_view(job_root, opt_ml=True, map_root=True)


def private_opt_ml(job_root: str | os.PathLike) -> str:
    """Make /opt/ml this job's root for this process and its children; returns how it was done.

    Call it while the process has a single thread (unshare of a user namespace requires that).
    Raises IsolationUnavailable, leaving the view of the file system as it was.
    """
    return private_view(job_root)

def probe_private_view(job_root: str | os.PathLike, opt_ml: bool, map_root: bool) -> str | None:
    """Try private_view in a forked child; None when it works, else why not."""
    if not hasattr(os, "fork"):
        return f"mount namespaces are a Linux feature; this is {sys.platform}"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once, never returning into the caller's code
        code = 1
        try:
            os.close(read_end)
            private_view(job_root, opt_ml=opt_ml, map_root=map_root, threads_checked=True)
            code = 0
        except BaseException as e:
            os.write(write_end, str(e).encode("utf-8", "replace")[:2000])
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        message = f.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return message or f"the probe ended with status {os.waitstatus_to_exitcode(status)}"


def private_view(job_root: str | os.PathLike, opt_ml: bool = True, map_root: bool = True,
                 threads_checked: bool = False) -> str:
    """Give this process (and its children) a view of the file system of its own: the job root on
    /opt/ml when `opt_ml`, and NBSAGE_HOME covered except this job's root (see _hide_home).

    `threads_checked`: the caller is a freshly forked child (a probe, a preexec_fn), so it has one
    thread whatever its parent had. Raises IsolationUnavailable.
    """
    if not sys.platform.startswith("linux"):
        raise IsolationUnavailable(f"mount namespaces are a Linux feature; this is {sys.platform}")
    if not threads_checked and threading.active_count() > 1:
        raise IsolationUnavailable("the runtime already runs several threads; unshare needs one")
    job_root = Path(job_root).resolve()
    has_ml = os.path.isdir(OPT_ML) and not os.path.islink(OPT_ML)
    if opt_ml and not has_ml and not os.path.isdir("/opt"):
        raise IsolationUnavailable("this machine has no /opt directory to hold /opt/ml")
    libc = _libc()
    how = _enter_namespace(libc, map_root)
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing we mount reaches the host
    if opt_ml:
        # opened inside the new namespace (a bind source must be in it) and before anything covers
        # it, so a root that lies under /opt or /opt/ml is still found
        root_fd = os.open(job_root, os.O_PATH | os.O_DIRECTORY)
        try:
            source = f"/proc/self/fd/{root_fd}"
            if has_ml:
                _mount(libc, source, OPT_ML, None, _MS_BIND | _MS_REC)
            else:
                _rebuild_opt_with_ml(libc, source)
        finally:
            os.close(root_fd)
    _hide_home(libc, job_root)
    return f"private {how}"
