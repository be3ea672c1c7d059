"""Talking to a Jupyter kernel: run code in it, interrupt it, notice when it dies.

Three ways to reach a kernel, one interface (`KernelConnection`):

- `LocalKernel`: a kernelspec on this machine, started with jupyter_client's KernelManager;
- `GatewayKernel`: a kernel started through a Jupyter Kernel Gateway / Enterprise Gateway
  (`POST /api/kernels`), spoken to over its websocket `/api/kernels/<id>/channels` with the Jupyter
  message protocol as JSON text frames; interrupted with `POST /api/kernels/<id>/interrupt` and
  shut down with `DELETE /api/kernels/<id>`;
- `ConnectionFileKernel`: a kernel that already runs, reached through its connection file
  (jupyter_client's BlockingKernelClient); it is interrupted with an `interrupt_request` on the
  control channel and never shut down by nbsage.

`execute(code)` returns the text/plain form of the code's value and hands each stream message
(stdout/stderr text) to a callback as it arrives. A kernel that dies, restarts, or a connection
that drops raises `KernelGone`, whose message names the kernel.
"""
from __future__ import annotations

import ast
import asyncio
import datetime
import json
import os
import queue
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from nbsage.errors import PlaceError

PROTOCOL_VERSION = "5.3"
STARTUP_TIMEOUT = float(os.environ.get("NBSAGE_KERNEL_STARTUP_TIMEOUT", "120"))
# how often a quiet kernel is checked for life while code runs in it
ALIVE_CHECK_SECONDS = 2.0
REQUEST_TIMEOUT = 10.0


class KernelGone(PlaceError):
    """The kernel died, restarted or could not be reached any more."""


class KernelCodeError(PlaceError):
    """Code sent to the kernel raised an exception there."""

    def __init__(self, ename: str, evalue: str, traceback: list[str] | None = None):
        self.ename, self.evalue, self.traceback = ename, evalue, traceback or []
        super().__init__(f"{ename}: {evalue}")


StreamCallback = Callable[[str, str], None]  # (stream name, text)


def call_code(module: str, function: str, *args) -> str:
    """The code that calls `module.function(*args)` in a kernel (arguments as Python literals),
    importing the module without adding a name to the kernel's user namespace."""
    return f"__import__({module!r}, fromlist=['_']).{function}({', '.join(repr(a) for a in args)})"


class KernelConnection:
    """A kernel that runs code for the kernel place. Subclasses supply the message transport."""

    #: the kernel was started for this job (and is shut down at the end), or it was already there
    owned = True

    def __init__(self):
        self.abandon_at: float | None = None  # set on stop: give up on the kernel after this time

    # ---- what subclasses implement ------------------------------------------------------------
    def describe(self) -> str:
        """The kernel in words, for log lines and failure reasons."""
        raise NotImplementedError

    def info(self) -> dict:
        """Where the kernel is (recorded with the job so that stop and refresh can find it)."""
        return {}

    def _send(self, channel: str, msg_type: str, content: dict, metadata: dict | None = None) -> str:
        raise NotImplementedError

    def _receive(self, timeout: float) -> tuple[str, dict] | None:
        """The next (channel, message) from iopub or shell, or None after `timeout` seconds."""
        raise NotImplementedError

    def check_alive(self) -> None:
        """Raise KernelGone when the kernel is not running any more."""

    def interrupt(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Disconnect; shut the kernel down when it was started for the job."""

    # ---- shared --------------------------------------------------------------------------------
    def gone(self, what: str) -> KernelGone:
        return KernelGone(f"the Jupyter kernel {self.describe()} {what}")

    def execute(self, code: str, on_stream: StreamCallback | None = None, metadata: dict | None = None) -> str | None:
        """Run `code`; return the text/plain of its value (None when it has none).

        `metadata` travels in the request's metadata, where the code can read it (ipykernel's
        `kernel.get_parent()`): bulk data sent that way skips IPython's parsing of the code and the
        execute_input echo.
        """
        msg_id = self._send("shell", "execute_request", {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False}, metadata)
        idle = False
        reply = result = None
        last_check = time.monotonic()
        while not (idle and reply is not None):
            if self.abandon_at is not None and time.monotonic() > self.abandon_at:
                raise self.gone("did not answer the interrupt")
            item = self._receive(0.5)
            if time.monotonic() - last_check > ALIVE_CHECK_SECONDS or item is None:
                self.check_alive()
                last_check = time.monotonic()
            if item is None:
                continue
            channel, msg = item
            msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
            content = msg.get("content", {})
            if msg_type == "status" and content.get("execution_state") in ("restarting", "autorestarting", "dead"):
                # the gateway's restarter brought up a new kernel: the old one, and the job, are gone
                raise self.gone(f"died (the kernel's state became {content['execution_state']!r})")
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            if channel == "iopub":
                if msg_type == "stream" and on_stream is not None:
                    on_stream(content.get("name", "stdout"), content.get("text", ""))
                elif msg_type == "execute_result":
                    result = content.get("data", {}).get("text/plain")
                elif msg_type == "status" and content.get("execution_state") == "idle":
                    idle = True
            elif channel == "shell" and msg_type == "execute_reply":
                reply = content
        if reply.get("status") != "ok":
            raise KernelCodeError(reply.get("ename", "Error"), reply.get("evalue", reply.get("status", "")),
                                  reply.get("traceback"))
        return result

    def call(self, module: str, function: str, *args, on_stream: StreamCallback | None = None,
             metadata: dict | None = None) -> dict:
        """`module.function(*args)` in the kernel, which answers a JSON string; the answer, decoded."""
        text = self.execute(call_code(module, function, *args), on_stream, metadata)
        if text is None:
            raise PlaceError(f"the Jupyter kernel {self.describe()} gave no answer to {function}(): "
                             "is it an IPython kernel?")
        return json.loads(ast.literal_eval(text))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- jupyter_client: a local kernelspec, or an existing kernel's connection file ---------------------
class _ClientKernel(KernelConnection):
    """Shared by the two jupyter_client transports: messages from the shell and iopub sockets."""

    client = None

    def _start_client(self, client) -> None:
        import zmq
        self.client = client
        client.start_channels()
        try:
            client.wait_for_ready(timeout=STARTUP_TIMEOUT)
        except RuntimeError as e:
            self.close()
            raise self.gone(f"did not become ready: {e}") from None
        self._poller = zmq.Poller()
        self._poller.register(client.iopub_channel.socket, zmq.POLLIN)
        self._poller.register(client.shell_channel.socket, zmq.POLLIN)

    def _send(self, channel: str, msg_type: str, content: dict, metadata: dict | None = None) -> str:
        msg = self.client.session.msg(msg_type, content, metadata=metadata)
        getattr(self.client, f"{channel}_channel").send(msg)
        return msg["header"]["msg_id"]

    def _receive(self, timeout: float):
        for name in ("iopub", "shell"):  # iopub first: a reply's output comes before its idle status
            channel = getattr(self.client, f"{name}_channel")
            if channel.msg_ready():
                return name, channel.get_msg(timeout=0)
        if self._poller.poll(int(timeout * 1000)):
            return self._receive(0)
        return None


class LocalKernel(_ClientKernel):
    """A kernel started on this machine from a kernelspec (e.g. one bound to a GPU environment)."""

    def __init__(self, kernel_name: str = "python3", cwd: str | None = None, env: dict | None = None,
                 quiet: bool = False):
        super().__init__()
        import subprocess

        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import NoSuchKernel
        self.kernel_name = kernel_name
        self.manager = KernelManager(kernel_name=kernel_name)
        # quiet: the kernel's own warnings do not belong in the notebook's terminal
        output = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if quiet else {}
        try:
            self.manager.start_kernel(cwd=cwd, env=env, **output)
        except NoSuchKernel:
            raise PlaceError(f"there is no Jupyter kernelspec named {kernel_name!r} on this machine; "
                             f"kernelspecs are {', '.join(local_kernel_names()) or 'none'}") from None
        self._start_client(self.manager.blocking_client())

    def describe(self) -> str:
        pid = getattr(self.manager.provisioner, "pid", None) if self.manager.provisioner else None
        return f"{self.kernel_name!r} (local kernelspec" + (f", pid {pid})" if pid else ")")

    def info(self) -> dict:
        pid = getattr(self.manager.provisioner, "pid", None) if self.manager.provisioner else None
        return {"kernel_pid": pid, "connection_file": self.manager.connection_file}

    def check_alive(self) -> None:
        if not self.manager.is_alive():
            raise self.gone("died (its process ended)")

    def interrupt(self) -> None:
        self.manager.interrupt_kernel()

    def close(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        try:
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=True)
        except Exception:
            pass
        self.manager.cleanup_resources()


class ConnectionFileKernel(_ClientKernel):
    """A kernel that already runs, reached through its connection file; never shut down by nbsage."""

    owned = False

    def __init__(self, connection_file: str):
        super().__init__()
        from jupyter_client import BlockingKernelClient
        self.connection_file = str(connection_file)
        path = Path(self.connection_file).expanduser()
        if not path.is_file():
            raise PlaceError(f"connection file {self.connection_file!r} does not exist "
                             "(a kernel's connection file is in `jupyter --runtime-dir`, kernel-<id>.json)")
        client = BlockingKernelClient(connection_file=str(path))
        try:
            client.load_connection_file()
        except (OSError, ValueError, KeyError) as e:
            raise PlaceError(f"connection file {self.connection_file!r} is not a kernel connection file: {e}") from None
        self._start_client(client)
        client.hb_channel.time_to_dead = 3.0

    def describe(self) -> str:
        return f"with connection file {self.connection_file}"

    def info(self) -> dict:
        return {"connection_file": self.connection_file}

    def check_alive(self) -> None:
        if not self.client.hb_channel.is_beating():
            raise self.gone("stopped answering its heartbeat (it died or the connection dropped)")

    def interrupt(self) -> None:
        # ipykernel answers interrupt_request on the control channel by signalling itself
        self.client.control_channel.send(self.client.session.msg("interrupt_request", {}))

    def close(self) -> None:
        if self.client is not None:
            self.client.stop_channels()


def local_kernel_names() -> list[str]:
    from jupyter_client.kernelspec import KernelSpecManager
    return sorted(KernelSpecManager().find_kernel_specs())


# ---- a kernel gateway ----------------------------------------------------------------------------
def gateway_headers(token: str | None) -> dict:
    token = token or os.environ.get("NBSAGE_GATEWAY_TOKEN") or os.environ.get("JUPYTER_GATEWAY_AUTH_TOKEN")
    return {"Authorization": f"token {token}"} if token else {}


def gateway_request(url: str, method: str, path: str, token: str | None = None, body: dict | None = None,
                    timeout: float = REQUEST_TIMEOUT):
    """One REST call to a gateway; a gateway that does not answer raises PlaceError naming the URL."""
    import requests
    try:
        return requests.request(method, url.rstrip("/") + path, json=body, headers=gateway_headers(token),
                                timeout=timeout)
    except requests.RequestException as e:
        raise PlaceError(f"the kernel gateway at {url} does not answer ({_why(e, timeout)}); "
                         "check the URL and that the gateway is running") from None


def _why(e: Exception, timeout: float) -> str:
    """The cause of a failed request in a few words (requests nests it deep in a long text)."""
    import requests
    if isinstance(e, requests.Timeout):
        return f"no answer within {timeout:.0f} s"
    found = re.search(r"\[Errno -?\d+\] [^'\")\]]+", str(e))
    if found:
        return found.group(0).strip()
    text = f"{type(e).__name__}: {e}"
    return text if len(text) < 200 else text[:200] + "..."


def gateway_kernel_names(url: str, token: str | None = None) -> list[str]:
    """The kernelspecs a gateway offers (GET /api/kernelspecs)."""
    r = gateway_request(url, "GET", "/api/kernelspecs", token)
    if r.status_code in (401, 403):
        raise PlaceError(f"the kernel gateway at {url} refused nbsage ({r.status_code} {r.reason}); "
                         "give its token with gateway_token=... or NBSAGE_GATEWAY_TOKEN")
    if r.status_code != 200:
        raise PlaceError(f"{url} answered {r.status_code} {r.reason} to GET /api/kernelspecs: "
                         "is it a Jupyter Kernel Gateway (or Enterprise Gateway)?")
    try:
        return sorted(r.json().get("kernelspecs", {}))
    except ValueError:
        raise PlaceError(f"{url} did not answer GET /api/kernelspecs with JSON: "
                         "is it a Jupyter Kernel Gateway (or Enterprise Gateway)?") from None


class GatewayKernel(KernelConnection):
    """A kernel on a Jupyter Kernel Gateway: REST to start/interrupt/stop it, a websocket to talk to it."""

    def __init__(self, url: str, kernel_name: str | None = None, token: str | None = None,
                 env: dict | None = None):
        super().__init__()
        self.url = url.rstrip("/")
        self.token = token
        self.kernel_name = kernel_name
        body: dict = {"env": {k: str(v) for k, v in (env or {}).items()}}
        if kernel_name:
            body["name"] = kernel_name
        r = gateway_request(self.url, "POST", "/api/kernels", token, body, timeout=STARTUP_TIMEOUT)
        if r.status_code not in (200, 201):
            which = f"kernel {kernel_name!r}" if kernel_name else "its default kernel"
            raise PlaceError(f"the kernel gateway at {self.url} could not start {which}: "
                             f"{r.status_code} {_reason(r)}")
        model = r.json()
        self.kernel_id = model["id"]
        self.kernel_name = model.get("name", kernel_name)
        self.session_id = uuid.uuid4().hex
        self._messages: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self._close_reason = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nbsage-gateway-ws", daemon=True)
        self._thread.start()
        try:
            self._ws = self._call(self._connect(), STARTUP_TIMEOUT)
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def describe(self) -> str:
        return f"{self.kernel_name!r} (id {self.kernel_id}) on the kernel gateway {self.url}"

    def info(self) -> dict:
        return {"gateway": self.url, "kernel_id": self.kernel_id}

    # -- the websocket, in its own event loop thread --
    def _call(self, coro, timeout: float):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self):
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect
        ws_url = ("ws" + self.url[len("http"):] if self.url.startswith("http") else self.url)
        ws_url += f"/api/kernels/{self.kernel_id}/channels?session_id={self.session_id}"
        request = HTTPRequest(ws_url, headers=gateway_headers(self.token), connect_timeout=REQUEST_TIMEOUT,
                              request_timeout=STARTUP_TIMEOUT)
        # pings notice a connection that drops without a close frame (a host that went away)
        return await websocket_connect(request, on_message_callback=self._on_message, ping_interval=10,
                                       ping_timeout=10, max_message_size=64 * 2**20)

    def _on_message(self, message) -> None:
        if message is None:
            ws = getattr(self, "_ws", None)
            code = getattr(ws, "close_code", None)
            self._close_reason = "websocket closed" + (f" with code {code}" if code else "")
            self._closed.set()
            self._messages.put(None)
            return
        try:
            msg = json.loads(message)
        except (TypeError, ValueError):
            return  # a binary frame: nbsage asked for the JSON protocol only
        self._messages.put((msg.get("channel", ""), msg))

    async def _write(self, text: str) -> None:
        await self._ws.write_message(text)

    def _send(self, channel: str, msg_type: str, content: dict, metadata: dict | None = None) -> str:
        if self._closed.is_set():
            raise self.gone(f"cannot be reached: the connection dropped ({self._close_reason})")
        msg_id = uuid.uuid4().hex
        msg = {"header": {"msg_id": msg_id, "msg_type": msg_type, "username": "nbsage", "session": self.session_id,
                          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "version": PROTOCOL_VERSION},
               "parent_header": {}, "metadata": metadata or {}, "content": content, "channel": channel,
               "buffers": []}
        try:
            self._call(self._write(json.dumps(msg)), REQUEST_TIMEOUT)
        except Exception as e:
            raise self.gone(f"cannot be reached: the connection dropped ({type(e).__name__}: {e})") from None
        return msg_id

    def _receive(self, timeout: float):
        try:
            item = self._messages.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            self._messages.put(None)  # every later read sees the close too
            self.check_alive()
            raise self.gone(f"cannot be reached: the connection dropped ({self._close_reason})")
        return item

    def _wait_ready(self) -> None:
        """kernel_info until the kernel answers (a new kernel may drop the first requests)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            msg_id = self._send("shell", "kernel_info_request", {})
            until = time.monotonic() + 2
            while time.monotonic() < until:
                item = self._receive(0.2)
                if item and item[0] == "shell" and (item[1].get("parent_header") or {}).get("msg_id") == msg_id:
                    return
            self.check_alive()
        raise self.gone(f"did not answer within {STARTUP_TIMEOUT:.0f} s of starting")

    # -- REST --
    def check_alive(self) -> None:
        try:
            r = gateway_request(self.url, "GET", f"/api/kernels/{self.kernel_id}", self.token)
        except PlaceError as e:
            raise self.gone(f"cannot be reached: {e}") from None
        if r.status_code == 404:
            raise self.gone("is gone: the gateway no longer has it (it was shut down or died)")
        if r.status_code == 200 and r.json().get("execution_state") == "dead":
            raise self.gone("died")

    def interrupt(self) -> None:
        gateway_request(self.url, "POST", f"/api/kernels/{self.kernel_id}/interrupt", self.token)

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None and not self._closed.is_set():
            try:
                self._loop.call_soon_threadsafe(ws.close)
            except RuntimeError:
                pass
        if getattr(self, "kernel_id", None):
            shutdown_gateway_kernel(self.url, self.kernel_id, self.token)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


def shutdown_gateway_kernel(url: str, kernel_id: str, token: str | None = None) -> None:
    """DELETE /api/kernels/<id>, quietly: the kernel may be gone already."""
    try:
        gateway_request(url, "DELETE", f"/api/kernels/{kernel_id}", token)
    except PlaceError:
        pass


def _reason(response) -> str:
    try:
        body = response.json()
        return body.get("message") or body.get("reason") or response.reason
    except ValueError:
        return response.text[:200] or response.reason
