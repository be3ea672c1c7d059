"""The pre-warmed runtime itself: `python -m nbsage.backends.zygote_server SOCKET FINGERPRINT NBSAGE_DIR PADDING`.

It imports what a local job's supervisor and an XGBoost runtime import (never starting a thread),
listens on SOCKET, and forks one process per request, which becomes the supervisor the caller asked
for (see nbsage.backends.zygote for the contract and the callers' side).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from nbsage.backends.zygote import (ANSWER_SECONDS, ENABLED_ENV, IDLE_ENV, IDLE_SECONDS, MODULE, PLACES,
                                    STALE_CHECK_SECONDS, _nbsage_dir, fingerprint, import_environment)

WARM_MODULES = (
    "nbsage.backends.local_supervisor", "nbsage.backends.staging", "nbsage.backends.lifecycle",
    "nbsage.backends.runtime_fork", "nbsage.runtime.__main__", "nbsage.runtime.train",
    "nbsage.runtime.packaging", "nbsage.algorithms", "nbsage.algorithms.xgboost",
    "nbsage.algorithms.xgboost.training", "nbsage.algorithms.xgboost.callbacks", "nbsage.algorithms.xgboost.data",
    "nbsage.algorithms.xgboost.evaluation", "nbsage.algorithms.xgboost.parameters", "nbsage.algorithms.xgboost.model",
    "nbsage.formats", "nbsage.formats.row_copy", "nbsage.formats.compression", "pyarrow", "pyarrow.csv",
    "tarfile", "gzip", "nbsage.formats.text_csv", "nbsage.backends.retention", "nbsage.backends.zygote",
    # a transform job's supervisor (fsspec lists and opens its input) and the model servers it forks
    # (nbsage.transform.servers); pandas is what pyarrow's to_numpy imports on first use (0.5-1 s at a
    # server's first CSV request otherwise)
    "nbsage.transform.job", "nbsage.runtime.serve", "nbsage.algorithms.xgboost.inference", "pandas", "fsspec",
    "fsspec.implementations.local")


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

        from nbsage.backends.runtime_fork import point_std_streams_at
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
        point_std_streams_at(log_fd)
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
