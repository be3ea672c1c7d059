"""The endpoint's supervisor: keeps its model server running, as SageMaker replaces an unhealthy instance.

`deploy` starts `python -m nbsage.serving.supervisor ... -- <server command>` detached; the supervisor
starts the model server as its child (same process group, so deleting the endpoint stops both) and
owns the endpoint's status from then on:

- Creating -> InService once the server has written its port and answers GET /ping with 200;
- a server that exits, or fails `NBSAGE_HEALTH_CHECK_FAILURES` /ping checks in a row (one every
  `NBSAGE_HEALTH_CHECK_INTERVAL_SECONDS`), is replaced: Updating, a backoff (0.5 s doubling up to
  10 s), a new server, InService again on its new port (a 503 with Retry-After, the server's
  answer at its connection cap, is busy, not unhealthy);
- Failed, with a reason naming the crashes and the log's last lines, once the server has crashed
  `NBSAGE_ENDPOINT_MAX_CRASHES` times within `NBSAGE_ENDPOINT_CRASH_WINDOW_SECONDS`; Failed at
  once when the model fails to load (it would fail the same way every time).

The running server's pid is kept in `server.pid` beside its log.
"""
from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

HOST = "127.0.0.1"
READY_NAME = "ready"
SERVER_PID_NAME = "server.pid"
BACKOFF_START, BACKOFF_CAP = 0.5, 10.0


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


def ping(port: int, timeout: float = 2.0, busy_is_healthy: bool = False) -> bool:
    """True when the server on `port` answers GET /ping with 200 within `timeout` seconds (or, with
    `busy_is_healthy`, with a 503 carrying Retry-After: at its connection cap, busy but alive)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        response.read()
        return response.status == 200 or (busy_is_healthy and response.status == 503
                                          and response.getheader("Retry-After") is not None)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def exit_text(code: int | None) -> str:
    """How a process ended, in words: 'exit code 1' or 'killed by SIGKILL'."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def log_tail(path: Path, lines: int = 5, limit: int = 800) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(text.rstrip().splitlines()[-lines:])[-limit:]


class Supervisor:
    """Runs one endpoint's model server and replaces it when it dies or stops answering /ping."""

    def __init__(self, store, name: str, folder: Path, command: list[str]):
        self.store, self.name, self.folder, self.command = store, name, Path(folder), command
        self.ready = self.folder / READY_NAME
        self.stopping = threading.Event()
        self.interval = _env_number("NBSAGE_HEALTH_CHECK_INTERVAL_SECONDS", 5.0)
        self.ping_timeout = _env_number("NBSAGE_HEALTH_CHECK_TIMEOUT_SECONDS", 2.0)
        self.max_ping_failures = int(_env_number("NBSAGE_HEALTH_CHECK_FAILURES", 3))
        self.max_crashes = int(_env_number("NBSAGE_ENDPOINT_MAX_CRASHES", 5))
        self.window = _env_number("NBSAGE_ENDPOINT_CRASH_WINDOW_SECONDS", 300.0)
        self.proc: subprocess.Popen | None = None

    # ---- the store: only while the endpoint is still wanted -------------------------------------
    def _status(self) -> str | None:
        """The endpoint's status; None once its record is gone (deleted: nothing left to keep alive).
        A store that cannot be read for a moment (busy, full) is not a deletion: the server stays."""
        from nbsage.errors import EndpointError
        try:
            return self.store.get_endpoint(self.name)["status"]
        except EndpointError:
            return None
        except Exception as e:  # noqa: BLE001 - logged; the next look decides
            print(f"nbsage endpoint supervisor: cannot read the endpoint's record ({type(e).__name__}: {e}); "
                  "keeping the model server", file=sys.stderr, flush=True)
            return "Unknown"

    def _set(self, **fields) -> None:
        if self._status() in ("Creating", "InService", "Updating"):
            self.store.update_endpoint(self.name, **fields)

    # ---- one server -------------------------------------------------------------------------------
    def _start(self) -> subprocess.Popen:
        from nbsage.backends.runtime_process import die_with_parent
        for path in (self.ready, Path(f"{self.ready}.failure")):
            path.unlink(missing_ok=True)
        proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, cwd=self.folder,
                                preexec_fn=die_with_parent, close_fds=True)
        (self.folder / SERVER_PID_NAME).write_text(f"{proc.pid}\n")
        return proc

    def _ready_port(self) -> int | None:
        try:
            return int(self.ready.read_text().strip())
        except (OSError, ValueError):
            return None

    def _watch(self, proc: subprocess.Popen) -> tuple[str, str]:
        """Follow one server until it ends: ('stopped'|'load_failed'|'crashed', reason)."""
        port, poll = None, 0.02
        while port is None:  # starting: the port, then a 200 from /ping
            if self.stopping.is_set():
                return "stopped", ""
            if proc.poll() is not None:
                failure = Path(f"{self.ready}.failure")
                if failure.exists():
                    return "load_failed", failure.read_text().strip()
                return "crashed", f"it ended while starting ({exit_text(proc.returncode)})"
            candidate = self._ready_port()
            if candidate and ping(candidate, self.ping_timeout):
                port = candidate
                self._set(status="InService", host=HOST, port=port, failure_reason=None)
                break
            self.stopping.wait(poll)
            poll = min(poll * 1.5, 0.25)
        failures, next_ping = 0, time.monotonic() + self.interval
        while True:  # serving: exit or /ping failures
            try:
                proc.wait(min(0.25, max(0.0, next_ping - time.monotonic())))
                return "crashed", exit_text(proc.returncode)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping.is_set():
                return "stopped", ""
            if time.monotonic() < next_ping:
                continue
            next_ping = time.monotonic() + self.interval
            failures = 0 if ping(port, self.ping_timeout, busy_is_healthy=True) else failures + 1
            if failures >= self.max_ping_failures:
                proc.kill()
                proc.wait()
                return "crashed", f"GET /ping failed {failures} times in a row"

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        crashes: deque[tuple[float, str]] = deque()
        log = self.folder / "server.log"
        while not self.stopping.is_set():
            self.proc = proc = self._start()
            outcome, reason = self._watch(proc)
            if outcome == "stopped" or self.stopping.is_set():
                break
            if self._status() is None:
                print("nbsage endpoint supervisor: the endpoint's record is gone; not restarting its server",
                      file=sys.stderr, flush=True)
                break
            if outcome == "load_failed":
                self._set(status="Failed", failure_reason=f"the model failed to load: {reason}")
                return 1
            now = time.monotonic()
            crashes.append((now, reason))
            while crashes and crashes[0][0] < now - self.window:
                crashes.popleft()
            print(f"nbsage endpoint supervisor: the model server (pid {proc.pid}) stopped: {reason}",
                  file=sys.stderr, flush=True)
            if len(crashes) >= self.max_crashes:
                tail = log_tail(log)
                self._set(status="Failed", failure_reason=(
                    f"the model server crashed {len(crashes)} times within {self.window:g} s "
                    f"({'; '.join(r for _, r in crashes)})" + (f"; its log ends with: {tail}" if tail else "")))
                return 1
            if self._status() == "InService":
                self._set(status="Updating")
            delay = min(BACKOFF_CAP, BACKOFF_START * 2 ** (len(crashes) - 1))
            print(f"nbsage endpoint supervisor: starting a new model server in {delay:g} s",
                  file=sys.stderr, flush=True)
            self.stopping.wait(delay)
        self._stop_server()
        return 0

    def _stop_server(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(_env_number("NBSAGE_STOP_GRACE_SECONDS", 5.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def on_signal(self, signum, frame) -> None:
        self.stopping.set()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m nbsage.serving.supervisor",
                                     description="Keep an endpoint's model server running.")
    parser.add_argument("--db", required=True, help="the metadata store (NBSAGE_HOME/nbsage.db)")
    parser.add_argument("--name", required=True, help="the endpoint's name")
    parser.add_argument("--folder", required=True, help="the endpoint's folder (ready file, server.log)")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        parser.error("give the model server's command after --")
    from nbsage.store.metadata import MetadataStore
    supervisor = Supervisor(MetadataStore(Path(args.db)), args.name, Path(args.folder), command)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
