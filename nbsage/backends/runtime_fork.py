"""A training runtime forked ahead of time, for a supervisor that was itself forked from the zygote.

A supervisor forked from the pre-warmed runtime (nbsage.backends.zygote) has xgboost and the
runtime already imported. Right after that fork, while it still has one thread, it forks once more:
`PreparedRuntime` is that child, its own session and process group, SIGKILL when the supervisor
dies (as `die_with_parent`), waiting on a pipe. When the job's runtime is due, `start` hands it the
command, the job root and the environment (replacing its own wholesale); it changes to the root,
names itself `python -m nbsage.runtime train --root ROOT` and runs `nbsage.runtime.__main__`
exactly as the fresh interpreter would, its output on the pipe the supervisor reads. Fork after
threads is unsafe, so it can only be made before the supervisor starts any: it is made at once and
used once; a supervisor that never runs a training runtime (processing, transform, a job that
failed staging) closes the pipe or dies, and the child leaves.

`ForkedProcess` is the handle the supervisor keeps, the part of `subprocess.Popen` that RuntimeRun
and terminate_group use (pid, stdout, poll, wait, kill).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from nbsage.backends import proc_title

COMMANDS = ("train",)  # what a prepared runtime runs; processing and serving start fresh


class ForkedProcess:
    """What RuntimeRun needs of a Popen, for a child forked from this process."""

    def __init__(self, pid: int, stdout, args):
        self.pid, self.stdout, self.args = pid, stdout, args
        self.stdin = self.stderr = None
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def _status(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere: as Popen, its status is lost
            self.returncode = 0 if self.returncode is None else self.returncode
            return
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def poll(self) -> int | None:
        if self.returncode is None and self._lock.acquire(False):
            try:
                if self.returncode is None:
                    self._status(os.WNOHANG)
            finally:
                self._lock.release()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            with self._lock:  # one blocking waiter at a time; the others find returncode set after
                if self.returncode is None:
                    self._status(0)
            return self.returncode  # type: ignore[return-value]
        deadline, delay = time.monotonic() + timeout, 0.0005
        while self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            delay = min(delay * 2, left, 0.05)
            time.sleep(delay)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class PreparedRuntime:
    """A runtime process forked now (one thread here), started later by `start`."""

    def __init__(self, import_env: dict[str, str], start_dir: str):
        self.import_env = import_env  # the zygote's import-time variables
        command_r, self._command_w = os.pipe()
        self._out_r, out_w = os.pipe()
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, reported through the job's log
            code = 1
            try:
                os.close(self._command_w)
                os.close(self._out_r)
                code = _wait_and_run(command_r, out_w, parent, start_dir)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(command_r)
        os.close(out_w)
        self.pid = pid

    def fits(self, command: str, env: dict) -> bool:
        """Whether the prepared process can be this runtime: a training runtime whose import-time
        environment is the zygote's."""
        from nbsage.backends.zygote import import_environment
        return self._command_w is not None and command in COMMANDS \
            and import_environment(env) == self.import_env

    def start(self, command: str, root, env: dict) -> ForkedProcess:
        message = json.dumps({"command": command, "root": str(root), "env": dict(env)}).encode()
        w, self._command_w = self._command_w, None
        try:
            with os.fdopen(w, "wb") as f:
                f.write(message)
        except OSError:
            pass  # the child is gone: its exit status says so
        args = [sys.executable, "-m", "nbsage.runtime", command, "--root", str(root)]
        return ForkedProcess(self.pid, os.fdopen(self._out_r, "rb"), args)

    def discard(self) -> None:
        """Not used: close its pipe (it leaves) and reap it."""
        if self._command_w is None:
            return
        os.close(self._command_w)
        os.close(self._out_r)
        self._command_w = None
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _wait_and_run(command_r: int, out_w: int, parent: int, start_dir: str) -> int:
    """The prepared child: wait for the command, then be `python -m nbsage.runtime COMMAND --root ROOT`."""
    from nbsage.backends.runtime_process import die_with_parent
    die_with_parent()
    if os.getppid() != parent:  # the supervisor died before PR_SET_PDEATHSIG took
        return 0
    os.setsid()  # its own session and process group, as start_new_session
    chunks = []
    while True:
        chunk = os.read(command_r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(command_r)
    if not chunks:  # never used
        return 0
    message = json.loads(b"".join(chunks))
    command, root = message["command"], message["root"]
    argv = [command, "--root", root]
    proc_title.set_command_line([sys.executable, "-m", "nbsage.runtime", *argv])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    os.close(out_w)
    os.environ.clear()
    os.environ.update(message["env"])
    proc_title.set_environ(message["env"])
    os.chdir(root)
    # `python -m` puts the folder it starts in first on sys.path: the job root, not the zygote's
    if sys.path and sys.path[0] == start_dir:
        sys.path[0] = root
    run_runtime(argv)
    return 1


def point_std_streams_at(log_fd: int) -> None:
    """A forked child's stdin from /dev/null and its stdout and stderr to `log_fd` (then closed), as
    subprocess.Popen(stdin=DEVNULL, stdout=log, stderr=STDOUT) starts a fresh process."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)


def run_runtime(argv: list[str]) -> None:
    """Run `python -m nbsage.runtime ARGV` in this (forked) process and end it with the runtime's status."""
    import nbsage.runtime.__main__ as runtime_main
    sys.argv = [runtime_main.__file__, *argv]
    try:
        status = runtime_main.main(argv)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:
        import traceback
        traceback.print_exc()
        status = 1
    exit_as_interpreter(status)


def exit_as_interpreter(status) -> None:
    """End a forked process as the interpreter would end: wait for its non-daemon threads, run the
    exit handlers, flush the standard streams, and exit with `status` (never returning into the
    zygote's code). Freeing every module one by one is left out, as `exit_now` does."""
    import atexit
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx does first
    except BaseException:
        pass
    try:
        atexit._run_exitfuncs()  # type: ignore[attr-defined]
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if not isinstance(status, int):
        status = 0 if status is None else 1
    os._exit(status & 0xFF if status >= 0 else 1)
