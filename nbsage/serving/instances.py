"""A variant's instances: model server processes, and the kept-alive connections the front sends them requests on.

An `Instance` is one `python -m nbsage.runtime serve` child of the endpoint's front
(nbsage.serving.front), started with the variant's model and environment, dying with the front; it
serves once it answers /ping, and is stopped (SIGTERM, then SIGKILL after a grace period) with its
folder removed. Its output reaches the endpoint's log through the front, which keeps its last lines
(`tail`) for the line that reports its end. A shadow variant's servers run at a lower CPU priority.
`Upstream` is one kept-alive connection to a server, leaner than http.client: the request goes out
in one sendall and the answer is read by its Content-Length.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from nbsage.runtime.http1 import error_answer

HOST = "127.0.0.1"
HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "date", "server",
               "content-type"}  # headers of a hop, not passed on (Content-Type travels on its own)
SHADOW_NICENESS = 10
TAIL_LINES = 5  # of a server's output, kept for the line that reports its end


def env_number(name: str, default: float) -> float:
    """A positive number from the environment, else `default`."""
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


def _lower_priority() -> None:
    """A shadow's model servers yield the CPU to production's: on a shared machine a shadow test must
    not slow the answers callers get."""
    from nbsage.backends.runtime_process import die_with_parent
    die_with_parent()
    try:
        os.nice(SHADOW_NICENESS)
    except OSError:
        pass


class Unreachable(Exception):
    """An instance could not be reached (refused, reset before an answer): try another one."""


# ---- one model server -----------------------------------------------------------------------------
class Upstream:
    """One kept-alive connection to a model server: the request goes out in one sendall, the answer is
    read by its Content-Length (the model server always sends one). Leaner than http.client, whose
    header parsing would be most of what the front adds to a request."""

    def __init__(self, port: int, timeout: float):
        self.sock = socket.create_connection((HOST, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb", buffering=65536)

    def exchange(self, head: bytes, body: bytes) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        """(status, headers, body, server closes) for one request; ConnectionResetError when the
        server closed the connection before answering."""
        if len(body) < 65536:
            self.sock.sendall(head + body)
        else:
            self.sock.sendall(head)
            self.sock.sendall(body)
        line = self.reader.readline(65537)
        if not line:
            raise ConnectionResetError("the model server closed the connection")
        parts = line.split(None, 2)
        status = int(parts[1])
        headers, length, close = [], None, False
        while True:
            raw = self.reader.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            name, value = name.strip(), value.strip()
            low = name.lower()
            if low == "content-length":
                length = int(value)
            elif low == "connection" and "close" in value.lower():
                close = True
            headers.append((name, value))
        if length is None:
            data, close = self.reader.read(), True
        else:
            data = self.reader.read(length) if length else b""
            if len(data) < length:
                raise ConnectionResetError("the model server closed the connection mid-answer")
        return status, headers, data, close

    def close(self) -> None:
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


def request_head(headers: dict, length: int) -> bytes:
    """The request line and headers of POST /invocations to a model server."""
    lines = ["POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {length}\r\n\r\n")
    return "".join(lines).encode("latin-1", errors="replace")


class Instance:
    """One model server process of a variant, with its pool of kept-alive connections."""

    READY = "ready"

    def __init__(self, variant: "Variant", number: int, folder: Path):
        self.variant, self.number = variant, number
        self.folder = folder
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.in_flight = 0
        self.state = "starting"  # starting -> serving -> draining -> stopped; failed
        self.idle: deque[Upstream] = deque()
        self.failure: str | None = None
        self.load_failed = False  # the model failed to load (the server said why), not a crash
        self.ping_failures = 0
        self.crashes = 0  # crashes in a row of the instances this one replaces (nbsage.serving.restarts)
        self.started_at = time.monotonic()
        self.serving_since: float | None = None
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        self.output: threading.Thread | None = None

    @property
    def ready_file(self) -> Path:
        return self.folder / self.READY

    def start(self) -> None:
        from nbsage.backends.runtime_process import die_with_parent
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in (self.ready_file, Path(f"{self.ready_file}.failure")):
            path.unlink(missing_ok=True)
        serve = self.variant.serve
        cmd = [sys.executable, "-m", "nbsage.runtime", "serve", "--model-dir", serve["ModelDir"],
               "--host", HOST, "--port", "0", "--ready-file", str(self.ready_file)]
        if serve.get("Algorithm"):
            cmd += ["--algorithm", serve["Algorithm"]]
        if serve.get("EntryPoint"):
            cmd += ["--entry-point", serve["EntryPoint"]]
        if serve.get("Pipeline"):
            cmd += ["--pipeline"]
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (serve.get("Environment") or {}).items()})
        if serve.get("EntryPoint"):
            env["SAGEMAKER_PROGRAM"] = serve["EntryPoint"]
        preexec = _lower_priority if self.variant.shadow else die_with_parent
        reading, writing = os.pipe()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=writing, stderr=writing,
                                         cwd=self.folder, env=env, preexec_fn=preexec, close_fds=True)
        except BaseException:
            os.close(reading)
            raise
        finally:
            os.close(writing)
        self.started_at = time.monotonic()
        self.output = threading.Thread(target=self._copy_output, args=(reading,), daemon=True,
                                       name=f"nbsage-output-{self.variant.name}-{self.number}")
        self.output.start()

    def _copy_output(self, reading: int) -> None:
        """The server's output, whole lines at a time, to the front's own (the endpoint's log), keeping the last."""
        pending = b""
        try:
            while True:
                chunk = os.read(reading, 65536)
                if not chunk:
                    break
                data = pending + chunk
                cut = data.rfind(b"\n") + 1 if len(data) < 65536 else len(data)
                pending = data[cut:]
                if cut:
                    self._emit(data[:cut])
        except OSError:
            pass
        finally:
            if pending:
                self._emit(pending)
            os.close(reading)

    def _emit(self, data: bytes) -> None:
        self.lines.extend(data.decode("utf-8", errors="replace").splitlines()[-TAIL_LINES:])
        try:
            while data:
                data = data[os.write(1, data):]
        except OSError:
            pass  # no log to write to: the output is still read, so the server never blocks on it

    def tail(self, limit: int = 800) -> str:
        """The server's last lines of output (all of them once it ended), on one line."""
        if self.output is not None and self.proc is not None and self.proc.poll() is not None:
            self.output.join(2.0)  # what it wrote before it ended
        return " | ".join(line.strip() for line in list(self.lines) if line.strip())[-limit:]

    def ended_how(self) -> str:
        from nbsage.serving.supervisor import exit_text
        return exit_text(self.proc.returncode) if self.proc is not None else "never started"

    def check_started(self, ping_timeout: float) -> bool | None:
        """True once the server answers /ping, False when it ended (self.failure says why), else None."""
        from nbsage.serving.supervisor import exit_text, ping
        if self.proc.poll() is not None:
            try:
                self.failure = Path(f"{self.ready_file}.failure").read_text().strip() or None
            except OSError:
                self.failure = None
            self.load_failed = self.failure is not None
            self.failure = self.failure or f"the model server ended while starting ({exit_text(self.proc.returncode)})"
            self.state = "failed"
            return False
        try:
            port = int(self.ready_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if ping(port, ping_timeout):
            self.port = port
            return True
        return None

    def connection(self) -> tuple["Upstream", bool]:
        try:
            return self.idle.pop(), True
        except IndexError:
            return Upstream(self.port, self.variant.timeout), False

    def send(self, head: bytes, body: bytes) -> tuple[int, bytes, str, dict]:
        """POST /invocations on a pooled connection (a stale kept-alive one is replaced once)."""
        for attempt in (0, 1):
            try:
                conn, reused = self.connection()
            except OSError as exc:
                raise Unreachable(f"{type(exc).__name__}: {exc}") from None
            try:
                status, headers, data, close = conn.exchange(head, body)
            except (OSError, ValueError) as exc:
                conn.close()
                if isinstance(exc, (socket.timeout, TimeoutError)):
                    return error_answer(504, "ModelTimeout", f"the model did not answer within "
                                                             f"{self.variant.timeout:g} s")
                if attempt == 0 and reused:
                    continue  # a kept-alive connection the server has since closed
                raise Unreachable(f"{type(exc).__name__}: {exc}") from None
            if close:
                conn.close()
            else:
                self.idle.append(conn)
            content_type = ""
            extra = {}
            for name, value in headers:
                low = name.lower()
                if low == "content-type":
                    content_type = value
                elif low not in HOP_BY_HOP:
                    extra[name] = value
            return status, data, content_type, extra
        raise Unreachable("the connection closed twice")  # not reached

    def close_connections(self) -> None:
        while True:
            try:
                self.idle.pop().close()
            except IndexError:
                return

    def stop(self, grace: float) -> None:
        stop_all([self], grace)


def stop_all(instances: list[Instance], grace: float) -> None:
    """SIGTERM every instance at once, then wait for each (SIGKILL after `grace` seconds); folders removed."""
    for inst in instances:
        inst.state = "stopped"
        inst.close_connections()
        if inst.proc is not None and inst.proc.poll() is None:
            inst.proc.terminate()
    deadline = time.monotonic() + grace
    for inst in instances:
        if inst.proc is not None:
            try:
                inst.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                inst.proc.kill()
                inst.proc.wait()
        shutil.rmtree(inst.folder, ignore_errors=True)
