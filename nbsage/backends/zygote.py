"""The pre-warmed runtime of the local place: a process with nbsage's supervisor, the training runtime
and xgboost imported, that forks each job's supervisor instead of starting a fresh interpreter.

A short job used to pay for two interpreters: the supervisor's (~0.2 s of imports) and the
runtime's (~0.5 s, most of it xgboost with scipy.sparse and pyarrow), more than a 1-round job's
training. The zygote (`python -m nbsage.backends.zygote_server SOCKET FINGERPRINT NBSAGE_DIR PADDING`)
imports them once and waits on a Unix socket (nbsage.backends.zygote_server; this module is the
callers' side). `launch` asks it for a supervisor; the forked child
becomes exactly what `python -m nbsage.backends.local_supervisor JOB` would be:

- its own session and process group; stdin /dev/null, stdout and stderr the job's supervisor.log
  (the open file is passed over the socket); the caller's umask, working directory, resource
  limits, CPU affinity and environment (os.environ replaced wholesale: a variable of one job is
  never seen by the next); its command line rewritten (nbsage.backends.proc_title), so pid checks
  recognise it; the signal dispositions of a fresh interpreter; numpy's global random state
  reseeded;
- before anything else, still single-threaded, it forks the job's training runtime ahead of time
  (nbsage.backends.runtime_fork), which runs when the supervisor would have started
  `python -m nbsage.runtime train`, with the job's environment, root as cwd, its own process group
  and the same exit codes, failure file and SIGTERM/SIGKILL handling. Script mode is unchanged: the
  user's script still runs in a fresh interpreter of its own (script_mode.run_script execs it), so
  nothing it imports was imported before it, and the private view is made in that child as before.

Fork after threads is unsafe, so the zygote never starts one, and never runs anything that starts
OpenMP's or xgboost's thread pools (only imports): the forked runtime starts its own. Importing
reads some environment variables once (OMP_*, PYTHON*, locale, NBSAGE_STOP_GRACE_SECONDS...,
`import_environment`); a zygote serves only callers whose values are its own.

Falls back to the fresh interpreter (launch returns None) when: NBSAGE_ZYGOTE=0; no zygote runs
for this fingerprint yet (one is started in the background for the next job); it is busy or does
not answer within `ANSWER_SECONDS`; it is stale. The fingerprint covers the interpreter, every file
of the nbsage package (path, size, mtime), the site-packages folders' mtimes (a pip install or
uninstall changes them) and the import-time variables: a change of any gives another socket name,
so a stale zygote is never asked, and it exits by itself once it sees its own fingerprint change.
It also exits after NBSAGE_ZYGOTE_IDLE_SECONDS (default 300) without a request, or when its socket
is removed or taken over. Only its owner can reach it: the socket lives in a 0700 folder of the
user's (XDG_RUNTIME_DIR or /tmp/nbsage-zygote-UID), and a peer of another uid is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import subprocess
import sys
from pathlib import Path

ENABLED_ENV = "NBSAGE_ZYGOTE"  # "0" turns it off
IDLE_ENV = "NBSAGE_ZYGOTE_IDLE_SECONDS"
IDLE_SECONDS = 300.0
ANSWER_SECONDS = 5.0  # a zygote that does not fork within this is busy: start fresh
STALE_CHECK_SECONDS = 5.0
PLACES = {"nbsage.backends.local_supervisor"}  # the supervisors a zygote may fork
MODULE = "nbsage.backends.zygote_server"  # the zygote itself

# read once, when Python starts or a module is imported: a forked process keeps the zygote's values
IMPORT_PREFIXES = ("PYTHON", "OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "BLIS_", "NUMEXPR_", "LD_",
                   "MALLOC_", "LC_", "CUDA_", "NVIDIA_", "XGBOOST", "ARROW_", "VIRTUAL_ENV")
IMPORT_NAMES = ("LANG", "LANGUAGE", "HOME", "TZ", "PATH")
# NBSAGE_* read at call time (the stores, the job's own settings); every other NBSAGE_* is taken as
# read at import (module constants such as NBSAGE_STOP_GRACE_SECONDS)
CALL_TIME_NBSAGE = ("NBSAGE_HOME", "NBSAGE_ARTIFACT_ROOT", "NBSAGE_ZYGOTE", "NBSAGE_JOB_USER",
                    "NBSAGE_PROCESSING_ISOLATION", "NBSAGE_JOB_RETENTION_DAYS", "NBSAGE_DEFAULT_BUCKET",
                    "NBSAGE_ROLE_ARN", "NBSAGE_CHECKPOINT_SYNC_SECONDS", "NBSAGE_SPOT_RESTART_SECONDS",
                    "NBSAGE_FASTFILE_FUSE", "NBSAGE_INFERENCE_DEVICE")


def enabled(env=None) -> bool:
    return (env if env is not None else os.environ).get(ENABLED_ENV, "1").strip() not in ("0", "false", "no", "off")


def import_environment(env) -> dict[str, str]:
    """The variables of `env` that take effect when Python starts or a module is imported."""
    return {k: v for k, v in env.items()
            if k.startswith(IMPORT_PREFIXES) or k in IMPORT_NAMES
            or (k.startswith("NBSAGE_") and k not in CALL_TIME_NBSAGE and k != IDLE_ENV)}


def _nbsage_dir() -> Path:
    import nbsage
    return Path(nbsage.__file__).resolve().parent


def fingerprint(env, nbsage_dir: Path | None = None) -> str:
    """What a zygote's imports depend on: the interpreter, nbsage's files, the installed packages'
    folders, the import-time variables."""
    import site
    h = hashlib.sha256()
    folder = nbsage_dir or _nbsage_dir()
    h.update(f"{sys.executable}\0{sys.version}\0{folder}\0".encode())
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".so", ".json")):
                st = os.stat(os.path.join(top, name))
                h.update(f"{top}/{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    for packages in site.getsitepackages():
        try:
            h.update(f"{packages}\0{os.stat(packages).st_mtime_ns}\0".encode())
        except OSError:
            pass
    for key, value in sorted(import_environment(env).items()):
        h.update(f"{key}={value}\0".encode())
    return h.hexdigest()[:24]


def socket_folder() -> Path | None:
    """The user's own folder for zygote sockets (0700, owned by this uid); None when none can be had."""
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(runtime) / "nbsage-zygote" if runtime and os.path.isdir(runtime) \
        else Path(f"/tmp/nbsage-zygote-{uid}")
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or stat.S_IMODE(st.st_mode) & 0o077:
        return None  # someone else's, or open to others: not a place for a socket that runs code
    return folder


# ---- the caller's side -------------------------------------------------------------------------
def launch(module: str, args: list[str], env: dict, log_fd: int, umask: int) -> int | None:
    """Fork `python -m MODULE ARGS` from the zygote: its pid, or None to start it fresh."""
    if module not in PLACES or not enabled(env) or not hasattr(os, "fork") or not sys.platform.startswith("linux"):
        return None
    path = socket_for(env)
    if path is None:
        return None
    try:
        request = {"module": module, "args": list(args), "env": dict(env), "cwd": os.getcwd(), "umask": umask,
                   "limits": _limits(), "affinity": sorted(os.sched_getaffinity(0)),
                   "priority": os.getpriority(os.PRIO_PROCESS, 0)}
    except OSError:  # a working folder that was removed: only a fresh interpreter can inherit it
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(ANSWER_SECONDS)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            start(env)
            return None
        body = json.dumps(request).encode()
        socket.send_fds(sock, [struct.pack("!I", len(body))], [log_fd])
        sock.sendall(body)
        answer = _read_line(sock)
        if not answer:
            return None
        reply = json.loads(answer)
        if "pid" not in reply:
            return None
        sock.sendall(b"g")  # go: the pid is ours to record; without it the child leaves
        return int(reply["pid"])
    except (OSError, ValueError):  # busy, gone, a broken answer: the fresh interpreter
        return None
    finally:
        sock.close()


def _read_line(sock) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            return b""
        data += chunk
    return data


def _limits() -> dict[str, list[int]]:
    import resource
    return {name: list(resource.getrlimit(getattr(resource, name)))
            for name in dir(resource) if name.startswith("RLIMIT_")}


def socket_for(env) -> Path | None:
    """Where the zygote for processes started with `env` listens (None: no zygote can be had)."""
    folder = socket_folder()
    if folder is None:
        return None
    try:
        return folder / f"{fingerprint(env)}.sock"
    except OSError:
        return None


def start(env) -> None:
    """Start the zygote for `env` in the background, unless one runs, is starting or failed."""
    from nbsage.backends.proc_title import ROOM_VARIABLE, padding
    path = socket_for(env)
    if path is None:
        return
    folder, print_ = path.parent, path.stem
    if path.with_suffix(".failed").exists() or _locked(path.with_suffix(".lock")):
        return
    nbsage_dir = _nbsage_dir()
    zygote_env = {k: v for k, v in env.items() if k in ("USER", "LOGNAME", "TMPDIR", "SHELL")}
    zygote_env.update(import_environment(env))
    zygote_env[ROOM_VARIABLE] = padding() * 4  # room for its children's environments in /proc/PID/environ
    if env.get(IDLE_ENV):
        zygote_env[IDLE_ENV] = env[IDLE_ENV]
    with open(folder / f"{print_}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", MODULE, str(folder / f"{print_}.sock"), print_,
                                 str(nbsage_dir), padding()],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=zygote_env,
                                cwd=str(nbsage_dir.parent), start_new_session=True, close_fds=True)
    import threading
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped when it ends, never a zombie here


def _locked(path: Path) -> bool:
    import fcntl
    try:
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return True
