"""The model servers of a transform job: nbsage's own (`python -m nbsage.runtime serve`), one per instance.

SageMaker runs the model's container on each instance of a transform job and calls it over HTTP;
here each instance is a model-server process on loopback, started with the container environment
SageMaker gives a batch container (`SAGEMAKER_BATCH`, `SAGEMAKER_MAX_PAYLOAD_IN_MB`, and
`SAGEMAKER_BATCH_STRATEGY` / `SAGEMAKER_MAX_CONCURRENT_TRANSFORMS` when the job sets them) plus the
model's and the job's Environment. A server that fails to load the model fails the job with the
server's own one-line reason.

The servers of a built-in XGBoost model are forked from the job's supervisor when it can
(`fork=True`, see `forkable`): a supervisor forked from the pre-warmed runtime
(nbsage.backends.zygote) has xgboost, pyarrow, pandas and nbsage's model server imported, so a forked
server is serving in tens of milliseconds where a fresh `python -m nbsage.runtime serve` takes about
a second (the interpreter, its imports, then the model), and its first request imports nothing.
The forked server is what the fresh one would be: the same command line in /proc, the environment
replaced wholesale (os.environ and /proc/PID/environ), its own log file as stdout and stderr, stdin
/dev/null, SIGKILL when the supervisor dies, the same exit codes, failure file and SIGTERM handling
(it runs `nbsage.runtime.__main__` itself). Other algorithms, user inference code, pipelines, a job
Environment that changes an import-time variable, NBSAGE_ZYGOTE=0, a supervisor without room in
/proc for the server's command line and a supervisor that already runs a thread (fork after
threads is unsafe) get the fresh interpreter.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from nbsage.errors import NBSageError

HOST = "127.0.0.1"
STARTUP_SECONDS = float(os.environ.get("NBSAGE_TRANSFORM_STARTUP_SECONDS", "600"))
READY_POLL_SECONDS = 0.05  # /ping while a server loads its model: the job waits at most this long past its readiness


class ServerFailed(NBSageError):
    """A model server could not be started or stopped answering."""


def batch_environment(model: dict, request_env: dict, max_payload_mb: float, strategy: str | None,
                      max_concurrent: int | None) -> dict:
    """The environment of a batch container, as SageMaker sets it."""
    if model.get("Containers"):  # a pipeline: the containers' Environments merged, as its endpoint's server has
        from nbsage.serving.pipelines import server_environment
        model_env = server_environment(model["Containers"])
    else:
        model_env = model.get("Environment") or {}
    env = {str(k): str(v) for k, v in model_env.items()}
    env.update({str(k): str(v) for k, v in (request_env or {}).items()})
    env["SAGEMAKER_BATCH"] = "true"
    env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = f"{max_payload_mb:g}"
    if strategy:
        env["SAGEMAKER_BATCH_STRATEGY"] = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}[strategy]
    if max_concurrent:
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(max_concurrent)
    if model.get("EntryPoint"):
        env["SAGEMAKER_PROGRAM"] = model["EntryPoint"]
    return env


# How a model record is served, by its "ServerKind": name -> "module:function", imported on use, each
# function(model_dir, model, ready_file) -> the server's argv (bound to 127.0.0.1, port 0, writing its port
# to ready_file as `python -m nbsage.runtime serve` does). A model record with Containers (an inference
# pipeline, CreateModel's Containers) is a "pipeline"; one without a ServerKind is one container.
SERVER_KINDS = {"container": "nbsage.transform.servers:server_command",
                "pipeline": "nbsage.transform.servers:pipeline_server_command"}


def command_for(model_dir: Path, model: dict, ready_file: Path) -> list[str]:
    """The argv of the server for a model record (see SERVER_KINDS)."""
    import importlib

    from nbsage.errors import ValidationError, did_you_mean
    kind = model.get("ServerKind") or ("pipeline" if model.get("Containers") else "container")
    if kind not in SERVER_KINDS:
        raise ValidationError(f"model {model.get('ModelName')!r} is served by {kind!r}, which nbsage does not know"
                              f"{did_you_mean(kind, SERVER_KINDS)}; kinds are {', '.join(SERVER_KINDS)}")
    module, function = SERVER_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), function)(model_dir, model, ready_file)


def server_command(model_dir: Path, model: dict, ready_file: Path) -> list[str]:
    """One container: nbsage's model server over the model directory."""
    cmd = [sys.executable, "-m", "nbsage.runtime", "serve", "--model-dir", str(model_dir), "--host", HOST,
           "--port", "0", "--ready-file", str(ready_file)]
    if model.get("Algorithm") and not model.get("EntryPoint"):
        cmd += ["--algorithm", model["Algorithm"]]
    if model.get("EntryPoint"):
        cmd += ["--entry-point", model["EntryPoint"]]
    return cmd


def pipeline_server_command(model_dir: Path, model: dict, ready_file: Path) -> list[str]:
    """Several containers: the one model server of a pipeline endpoint over the staged pipeline
    (nbsage.serving.pipelines.stage_pipeline), calling the stages in order in memory."""
    return [sys.executable, "-m", "nbsage.runtime", "serve", "--model-dir", str(model_dir), "--host", HOST,
            "--port", "0", "--ready-file", str(ready_file), "--pipeline"]


def _package_path(env: dict) -> dict:
    """The server imports this nbsage, wherever it was imported from."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([root] + paths)
    return env


class ModelServers:
    """`count` model servers for one model directory; a context manager that stops them all.

    `launch` starts them (forked or fresh) without waiting, so the job can list its input meanwhile;
    `wait_ready` waits until each answers /ping. `start` does both."""

    def __init__(self, model_dir: Path, model: dict, env: dict, folder: Path, count: int, log=print,
                 fork: bool = False):
        self.model_dir, self.model, self.env, self.folder, self.count = Path(model_dir), model, env, Path(folder), count
        self.log, self.fork = log, fork
        self.procs: list = []  # subprocess.Popen, or runtime_fork.ForkedProcess for a forked server
        self.ports: list[int] = []
        self.forked = False

    def __enter__(self) -> "ModelServers":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> list[int]:
        if not self.procs:
            self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the servers; they bind, write their ports and load the model while the caller goes on."""
        from nbsage.backends.runtime_process import die_with_parent
        self.folder.mkdir(parents=True, exist_ok=True)
        env = _package_path(dict(os.environ, PYTHONUNBUFFERED="1", **self.env))
        self.forked = self.fork and forkable(self.model, self.env)
        if self.forked:
            _warm_server()
            self.forked = _single_threaded()  # (no import started a thread)
        for i in range(self.count):
            ready = self.folder / f"server-{i + 1}.ready"
            ready.unlink(missing_ok=True)
            Path(f"{ready}.failure").unlink(missing_ok=True)
            command = command_for(self.model_dir, self.model, ready)
            log_path = self.folder / f"server-{i + 1}.log"
            if self.forked and command[1:3] == ["-m", "nbsage.runtime"] and _room_for(command, env):
                self.procs.append(fork_server(command, env, log_path))
                continue
            with open(log_path, "ab") as log:
                self.procs.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                                   stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
                                                   close_fds=True))

    def wait_ready(self) -> list[int]:
        self.ports = [self._wait_ready(i, proc) for i, proc in enumerate(self.procs)]
        self.log(f"{self.count} model server{'s' if self.count > 1 else ''} serving on "
                 + ", ".join(f"{HOST}:{p}" for p in self.ports))
        return self.ports

    def _wait_ready(self, i: int, proc: subprocess.Popen) -> int:
        ready = self.folder / f"server-{i + 1}.ready"
        deadline, poll = time.monotonic() + STARTUP_SECONDS, 0.01
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                failure = Path(f"{ready}.failure")
                reason = failure.read_text().strip() if failure.exists() else self.log_tail(i)
                raise ServerFailed(f"the model server of instance {i + 1} could not start: {reason}")
            try:
                port = int(ready.read_text().strip())
            except (OSError, ValueError):
                port = None
            if port and ping(port):
                return port
            time.sleep(poll)  # polling the server's readiness, with a deadline
            poll = min(poll * 1.5, READY_POLL_SECONDS)
        raise ServerFailed(f"the model server of instance {i + 1} did not answer /ping within {STARTUP_SECONDS:g} s")

    def log_tail(self, i: int, lines: int = 5) -> str:
        try:
            text = (self.folder / f"server-{i + 1}.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])[-800:]

    def execution_parameters(self) -> dict:
        """GET /execution-parameters of the first server ({} when it has none)."""
        conn = http.client.HTTPConnection(HOST, self.ports[0], timeout=5)
        try:
            conn.request("GET", "/execution-parameters")
            response = conn.getresponse()
            data = response.read()
            return json.loads(data) if response.status == 200 else {}
        except (OSError, http.client.HTTPException, ValueError):
            return {}
        finally:
            conn.close()

    def terminate(self) -> None:
        """SIGTERM to every server still running (they finish what they answer and exit); `stop` waits."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()

    def stop(self) -> None:
        grace = float(os.environ.get("NBSAGE_STOP_GRACE_SECONDS", "5") or 5)
        self.terminate()
        for proc in self.procs:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- servers forked from the supervisor ------------------------------------------------------------
FORK_OFF = "NBSAGE_ZYGOTE=0 starts it fresh"
# the built-in algorithms whose model server the pre-warmed runtime has imported (xgboost, pyarrow, pandas:
# nbsage.backends.zygote_server.WARM_MODULES); the others (torch's) load their libraries in a fresh interpreter
FORKED_ALGORITHMS = ("xgboost",)
# what a forked server would import first thing: imported once in the supervisor, before it forks
_SERVER_MODULES = ("nbsage.runtime.__main__", "nbsage.runtime.serve", "nbsage.runtime.http1",
                   "nbsage.runtime.data_capture", "nbsage.runtime.model_archive")


def forkable(model: dict, job_env: dict) -> bool:
    """Whether this process may fork the model servers of `model` rather than start fresh interpreters:
    the container of a built-in algorithm in FORKED_ALGORITHMS (user code and pipelines import what
    they like, in an interpreter of their own), the pre-warmed runtime not turned off (NBSAGE_ZYGOTE=0),
    an Environment that leaves every import-time variable as this process has it, and this process
    still single-threaded."""
    from nbsage.backends.zygote import enabled, import_environment
    if not (hasattr(os, "fork") and sys.platform.startswith("linux") and enabled(os.environ)):
        return False
    if model.get("Containers") or model.get("EntryPoint") or model.get("ServerKind") not in (None, "container"):
        return False
    from nbsage import algorithms
    if algorithms.canonical_name(str(model.get("Algorithm") or "")) not in FORKED_ALGORITHMS:
        return False
    if import_environment(dict(os.environ, **job_env)) != import_environment(os.environ):
        return False
    return _single_threaded()


def _single_threaded() -> bool:
    try:
        native = len(os.listdir("/proc/self/task"))
    except OSError:
        return False
    return native == 1 and threading.active_count() == 1


def _room_for(command: list[str], env: dict) -> bool:
    """Whether a child of this process can show `command` and all of `env` in /proc/PID/cmdline and
    environ (nbsage.backends.proc_title): a supervisor forked from the zygote has the zygote's padded
    room; one started fresh has only its own short command line."""
    from nbsage.backends.proc_title import _area
    argv = sum(len(os.fsencode(a)) + 1 for a in command)
    environ = sum(len(os.fsencode(k)) + len(os.fsencode(v)) + 2 for k, v in env.items())
    try:
        (argv_start, argv_end), (env_start, env_end) = _area(45), _area(47)
    except (OSError, ValueError, IndexError):
        return False
    return argv <= argv_end - argv_start and environ <= env_end - env_start


def _warm_server() -> None:
    """Import the model server's modules here once, so each forked server starts with them."""
    import importlib
    for name in _SERVER_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the server imports it again and reports the failure itself
            pass


def fork_server(command: list[str], env: dict, log_path: Path):
    """Fork `command` (`python -m nbsage.runtime serve ...`) from this process; its handle."""
    from nbsage.backends.runtime_fork import ForkedProcess
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        os.close(log_fd)
        raise
    if pid == 0:  # pragma: no cover - the model server; it reports through its log and ready file
        code = 1
        try:
            code = _be_server(command, env, log_fd, parent)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(log_fd)
    return ForkedProcess(pid, None, command)


def _be_server(command: list[str], env: dict, log_fd: int, parent: int) -> int:
    """In the forked child: become `command` as subprocess.Popen would have started it; never returns."""
    from nbsage.backends import proc_title
    from nbsage.backends.runtime_fork import point_std_streams_at, run_runtime
    from nbsage.backends.runtime_process import die_with_parent
    die_with_parent()
    if os.getppid() != parent:  # the supervisor died before PR_SET_PDEATHSIG took
        return 1
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_DFL)  # a fresh interpreter's dispositions, not the supervisor's
    signal.signal(signal.SIGINT, signal.default_int_handler)
    point_std_streams_at(log_fd)
    for stream in (sys.stdout, sys.stderr):  # PYTHONUNBUFFERED, as the fresh server has it
        try:
            stream.reconfigure(line_buffering=True, write_through=True)
        except (AttributeError, ValueError):
            pass
    os.environ.clear()
    os.environ.update(env)
    if not (proc_title.set_command_line(command) and proc_title.set_environ(env)):
        os.execve(command[0], command, env)  # cannot look like the fresh server: become one
    import tempfile
    tempfile.tempdir = None  # found again from the server's TMPDIR
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # a fresh interpreter's own sequence, not the supervisor's
    print(f"nbsage model server: forked from the transform job's supervisor (pid {parent}; {FORK_OFF})",
          file=sys.stderr, flush=True)
    run_runtime(command[3:])  # the arguments after `python -m nbsage.runtime`
    return 1


def ping(port: int, timeout: float = 2.0) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
