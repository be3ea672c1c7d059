"""The pre-warmed runtime of the local place: a process with nbsage's supervisor, the training runtime
and xgboost imported, that forks each job's supervisor instead of starting a fresh interpreter.

A short job used to pay for two interpreters: the supervisor's (~0.2 s of imports) and the
runtime's (~0.5 s, most of it xgboost with scipy.sparse and pyarrow), more than a 1-round job's
training. The zygote (`python -m nbsage.backends.zygote SOCKET FINGERPRINT NBSAGE_DIR PADDING`)
imports them once and waits on a Unix socket. `launch` asks it for a supervisor; the forked child
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
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

ENABLED_ENV = "NBSAGE_ZYGOTE"  # "0" turns it off
IDLE_ENV = "NBSAGE_ZYGOTE_IDLE_SECONDS"
IDLE_SECONDS = 300.0
ANSWER_SECONDS = 5.0  # a zygote that does not fork within this is busy: start fresh
STALE_CHECK_SECONDS = 5.0
PLACES = {"nbsage.backends.local_supervisor"}  # the supervisors a zygote may fork
MODULE = "nbsage.backends.zygote"

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


# ---- the zygote ----------------------------------------------------------------------------------
WARM_MODULES = (
    "nbsage.backends.local_supervisor", "nbsage.backends.staging", "nbsage.backends.lifecycle",
    "nbsage.backends.runtime_fork", "nbsage.runtime.__main__", "nbsage.runtime.train",
    "nbsage.runtime.packaging", "nbsage.algorithms", "nbsage.algorithms.xgboost",
    "nbsage.algorithms.xgboost.training", "nbsage.algorithms.xgboost.callbacks", "nbsage.algorithms.xgboost.data",
    "nbsage.algorithms.xgboost.evaluation", "nbsage.algorithms.xgboost.parameters", "nbsage.algorithms.xgboost.model",
    "nbsage.formats", "nbsage.formats.row_copy", "nbsage.formats.compression", "pyarrow", "pyarrow.csv",
    "tarfile", "gzip", "nbsage.formats.text_csv", "nbsage.backends.retention", MODULE)


def _warm_up() -> None:
    """Import what a job's supervisor and an XGBoost runtime import, without starting a thread."""
    import importlib
    # xgboost without scikit-learn, as in a runtime process (nbsage.algorithms.xgboost.library)
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        import xgboost  # noqa: F401
    finally:
        del sys.modules["sklearn"]
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # a module this machine cannot import: the job would say so itself
            print(f"zygote: {name} not imported: {type(e).__name__}: {e}", flush=True)


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


class Zygote:
    def __init__(self, path: str, print_: str, nbsage_dir: str):
        self.path, self.print_, self.nbsage_dir = Path(path), print_, Path(nbsage_dir)
        self.start_dir = os.getcwd()
        self.import_env = import_environment(os.environ)
        self.idle = float(os.environ.get(IDLE_ENV) or IDLE_SECONDS)

    def fail(self, why: str) -> int:
        print(f"zygote: {why}", flush=True)
        try:
            self.path.with_suffix(".failed").write_text(why + "\n")
        except OSError:
            pass
        return 1

    def serve(self) -> int:
        import fcntl
        self.lock = lock = open(self.path.with_suffix(".lock"), "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another zygote serves (or is starting for) this fingerprint
        from nbsage.backends.proc_title import set_command_line
        if not set_command_line([sys.executable, "-m", MODULE, self.print_]):
            return self.fail("its command line cannot be rewritten here (/proc/self/mem)")
        if _nbsage_dir() != self.nbsage_dir:
            return self.fail(f"it imports nbsage from {_nbsage_dir()}, not {self.nbsage_dir}")
        if fingerprint(os.environ, self.nbsage_dir) != self.print_:
            return self.fail("its fingerprint differs from the one it was started for")
        _warm_up()
        import threading
        if threading.active_count() > 1:
            return self.fail("importing started a Python thread; fork after threads is unsafe")
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the forked children
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # ended by hand: its socket goes with it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        listener.bind(str(temp))
        os.chmod(temp, 0o600)
        listener.listen(16)
        os.replace(temp, self.path)  # ready: callers find it from now on
        inode = os.stat(self.path).st_ino
        print(f"zygote: serving on {self.path} (pid {os.getpid()}, {_threads()} native threads)", flush=True)
        last_request = last_check = time.monotonic()
        try:
            while True:
                listener.settimeout(1.0)
                try:
                    conn, _ = listener.accept()
                except socket.timeout:
                    conn = None
                now = time.monotonic()
                if conn is not None:
                    last_request = now
                    self.answer(conn, listener)
                if now - last_request > self.idle:
                    print("zygote: idle, exiting", flush=True)
                    return 0
                if now - last_check > STALE_CHECK_SECONDS:
                    last_check = now
                    try:
                        if os.stat(self.path).st_ino != inode:
                            return 0  # taken over
                        if fingerprint(self.import_env, self.nbsage_dir) != self.print_:
                            print("zygote: nbsage or the installed packages changed, exiting", flush=True)
                            return 0
                    except OSError:
                        return 0  # its socket is gone
        finally:
            try:
                if os.stat(self.path).st_ino == inode:  # still ours: nobody else's files go
                    for suffix in (".sock", ".lock", ".log"):
                        os.unlink(self.path.with_suffix(suffix))
            except OSError:
                pass

    def answer(self, conn, listener) -> None:
        """Read one request and fork its process; the child answers the caller itself."""
        fds: list[int] = []
        try:
            conn.settimeout(ANSWER_SECONDS)
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid != os.getuid():
                return
            head, fds, _, _ = socket.recv_fds(conn, 4, 4)
            if len(head) < 4 or len(fds) != 1:
                return
            (size,) = struct.unpack("!I", head)
            body = b""
            while len(body) < size:
                chunk = conn.recv(min(1 << 20, size - len(body)))
                if not chunk:
                    return
                body += chunk
            request = json.loads(body)
            if request.get("module") not in PLACES:
                return
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the job's supervisor; reports through its log
                code = 1
                try:
                    listener.close()
                    self.lock.close()  # a job outliving the zygote must not keep the next one from starting
                    code = self.child(conn, fds[0], request)
                finally:
                    os._exit(code)
        except (OSError, ValueError) as e:
            print(f"zygote: a request failed: {type(e).__name__}: {e}", flush=True)
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()

    def child(self, conn, log_fd: int, request: dict) -> int:
        """Become `python -m MODULE ARGS` as the caller would have started it; never returns."""
        import resource
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()
        try:
            for name, (soft, hard) in request["limits"].items():
                which = getattr(resource, name, None)
                if which is not None and resource.getrlimit(which) != (soft, hard):
                    resource.setrlimit(which, (soft, hard))
            os.sched_setaffinity(0, request["affinity"])
            if os.getpriority(os.PRIO_PROCESS, 0) != request["priority"]:
                os.setpriority(os.PRIO_PROCESS, 0, request["priority"])
            os.chdir(request["cwd"])
        except (OSError, ValueError) as e:  # not what the caller has: it starts the fresh interpreter
            conn.sendall(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode() + b"\n")
            return 1
        os.umask(request["umask"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.environ.clear()
        os.environ.update(request["env"])
        module, args = request["module"], request["args"]
        from nbsage.backends.proc_title import set_command_line, set_environ
        set_command_line([sys.executable, "-m", module, *args])
        set_environ(request["env"])
        import tempfile
        tempfile.tempdir = None  # found again from this job's TMPDIR
        numpy_random = sys.modules.get("numpy.random")
        if numpy_random is not None:
            numpy_random.seed()  # not the zygote's sequence: a fresh interpreter's own
        prepared = None
        if import_environment(os.environ) == self.import_env:
            from nbsage.backends import runtime_fork, runtime_process
            prepared = runtime_process.prepared = runtime_fork.PreparedRuntime(self.import_env, self.start_dir)
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        if conn.recv(1) != b"g":  # the caller gave up waiting and starts it fresh
            if prepared is not None:
                prepared.discard()
            return 0
        conn.close()
        print(f"nbsage: forked from the pre-warmed runtime (zygote pid {os.getppid()}, {ENABLED_ENV}=0 turns it off)",
              flush=True)
        import importlib
        import importlib.util

        from nbsage.backends.runtime_fork import exit_as_interpreter
        sys.argv = [str(Path(importlib.util.find_spec(module).origin)), *args]
        try:
            status = importlib.import_module(module).main(args)
        except SystemExit as e:
            status = e.code
        except BaseException:
            import traceback
            traceback.print_exc()
            status = 1
        finally:
            if prepared is not None:
                prepared.discard()
        exit_as_interpreter(status)
        return 1


def main(argv: list[str] | None = None) -> int:
    path, print_, nbsage_dir = (argv or sys.argv[1:])[:3]
    return Zygote(path, print_, nbsage_dir).serve()


if __name__ == "__main__":
    sys.exit(main())
