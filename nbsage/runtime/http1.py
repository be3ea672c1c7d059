"""The model server's HTTP/1.1 layer: keep-alive framing with limits, so no client can hold it.

A small parser over `socketserver` threads rather than `http.server` or an asyncio stack: headers
are read once into a dict, a response is written with one `sendall`, Nagle is off, so the layer
adds tens of microseconds to a request. What it guards against, each with its limit:

- too many connections: past `max_connections` a new one is answered 503 (Retry-After) and closed
  at once, without a thread, so half-open connections cannot pile up threads;
- slow or idle clients: the request line and headers must arrive within `header_timeout` seconds
  of the connection opening (of the first byte, on a kept-alive one), and a kept-alive connection
  idle for `keep_alive_timeout` seconds is closed;
- slow bodies: the body must arrive before the request's deadline (`invocation_timeout` seconds
  after its headers), or the answer is 408;
- big bodies: a Content-Length over `max_payload` is answered 413 *before* the body is read, then
  the body is read and dropped (within the deadline) and the connection closed, so the client,
  still sending, reads the 413 rather than a reset; a chunked body is cut off the same way;
- broken framing (request line, headers, chunk sizes, chunk endings): 400 and close, one line in
  the log, no traceback.

The server class decides what a request means (`answer(method, path, body, headers, deadline)`);
this module only moves bytes.
"""
from __future__ import annotations

import json
import re
import socket
import socketserver
import sys
import threading
import time
import traceback

MAX_LINE = 65536
MAX_HEADERS = 200
MAX_DISCARD = 1 << 30  # bytes of a refused body read and dropped at most before closing

REASONS = {200: "OK", 100: "Continue", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout",
           411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
           424: "Failed Dependency", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 504: "Gateway Timeout",
           505: "HTTP Version Not Supported"}
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class BadRequest(Exception):
    """The request cannot be read (framing, size, time); answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str, discard: int | None = 0):
        super().__init__(message)
        self.status = status
        self.discard = discard  # bytes of body still to read and drop before closing; None: until EOF


def error_answer(status: int, kind: str, message: str, extra: dict | None = None):
    """(status, body, content type, extra headers): the multi-model-server error shape."""
    body = json.dumps({"code": status, "type": kind, "message": message}).encode("utf-8")
    return status, body, "application/json", extra


def busy_answer(message: str):
    """503 with Retry-After, as TorchServe answers when its queue is full."""
    return error_answer(503, "ServiceUnavailable", message, {"Retry-After": "1"})


def _response_head(status: int, body_length: int, content_type: str = "", extra: dict | None = None,
                   close: bool = False) -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"]
    if content_type:
        head.append(f"Content-Type: {content_type}\r\n")
    head.append(f"Content-Length: {body_length}\r\n")
    if extra:
        for key, value in extra.items():
            value = str(value)
            if "\r" in value or "\n" in value:
                continue  # never let a handler split the response
            head.append(f"{key}: {value}\r\n")
    if close:
        head.append("Connection: close\r\n")
    head.append("\r\n")
    return "".join(head).encode("latin-1")


class LimitedServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread per connection, at most `max_connections` of them; the rest get 503 and are closed."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, handler_class, *, max_connections: int, header_timeout: float,
                 keep_alive_timeout: float, invocation_timeout: float, max_payload: int):
        super().__init__(address, handler_class)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.invocation_timeout = invocation_timeout
        self.max_payload = max_payload
        self.open_connections = 0
        self._open_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            admitted = self.open_connections < self.max_connections
            if admitted:
                self.open_connections += 1
        if not admitted:
            status, body, ctype, extra = busy_answer(
                f"the server has {self.max_connections} open connections (NBSAGE_MAX_CONNECTIONS); retry")
            try:
                request.settimeout(0.5)
                request.sendall(_response_head(status, len(body), ctype, extra, close=True) + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._closed_one()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._closed_one()

    def _closed_one(self) -> None:
        with self._open_lock:
            self.open_connections -= 1

    def handle_error(self, request, client_address) -> None:
        """A bug of the server's own (a client's mistake is answered, never raised this far): its traceback."""
        print(f"nbsage model server: unexpected error on a connection from {client_address[0]}:",
              file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()

    def answer(self, method: str, path: str, body: bytes, headers: dict, deadline: float):
        """(status, body, content type, extra headers) for one request; the subclass's job."""
        raise NotImplementedError


class Connection(socketserver.StreamRequestHandler):
    """One client connection: requests are answered in order until either side closes it."""

    disable_nagle_algorithm = True
    rbufsize = 65536
    wbufsize = 0
    server: LimitedServer

    def setup(self) -> None:
        self.timeout = self.server.header_timeout
        super().setup()

    def handle(self) -> None:
        first = True
        try:
            while self._one_request(first):
                first = False
        except (ConnectionError, socket.timeout, TimeoutError, OSError):
            pass

    def send(self, status: int, body: bytes = b"", content_type: str = "", extra: dict | None = None,
             close: bool = False) -> None:
        data = _response_head(status, len(body), content_type, extra, close)
        self.connection.settimeout(self.server.invocation_timeout)  # a client that never reads cannot hold us
        if len(body) < 65536:
            self.connection.sendall(data + body)
        else:
            self.connection.sendall(data)
            self.connection.sendall(body)

    # ---- reading, each read against a deadline ------------------------------------------------
    def _until(self, deadline: float, status: int, what: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BadRequest(status, what)
        self.connection.settimeout(left)

    def _readline(self, deadline: float, status: int, what: str) -> bytes:
        self._until(deadline, status, what)
        try:
            return self.rfile.readline(MAX_LINE + 1)
        except (socket.timeout, TimeoutError):
            raise BadRequest(status, what) from None

    def _read(self, size: int, deadline: float, what: str) -> bytes:
        parts, left = [], size
        while left > 0:
            self._until(deadline, 408, what)
            try:
                chunk = self.rfile.read1(min(left, 1 << 20))
            except (socket.timeout, TimeoutError):
                raise BadRequest(408, what) from None
            if not chunk:
                raise ConnectionResetError("client closed the connection mid-body")
            parts.append(chunk)
            left -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_headers(self, deadline: float) -> dict:
        headers: dict[str, str] = {}
        last = None
        slow = f"the request headers did not arrive within {self.server.header_timeout:g} s"
        for _ in range(MAX_HEADERS + 1):
            line = self._readline(deadline, 408, slow)
            if not line:
                raise ConnectionResetError("client closed the connection mid-request")
            if len(line) > MAX_LINE:
                raise BadRequest(431, "a header line is longer than 64 KiB")
            if line in (b"\r\n", b"\n"):
                return headers
            text = line.decode("latin-1")
            if text[0] in " \t" and last is not None:  # obsolete line folding
                headers[last] += " " + text.strip()
                continue
            name, sep, value = text.partition(":")
            if not sep:
                raise BadRequest(400, f"malformed header line {text.strip()[:200]!r}")
            last = name.strip().lower()
            value = value.strip()
            headers[last] = f"{headers[last]}, {value}" if last in headers else value
        raise BadRequest(431, f"more than {MAX_HEADERS} header lines")

    def _read_chunked(self, limit: int, deadline: float, slow: str) -> bytes:
        """A chunked body (RFC 9112 7.1); BadRequest when it is malformed, late or over `limit`."""
        parts, total = [], 0
        while True:
            line = self._readline(deadline, 408, slow)
            if not line:
                raise ConnectionResetError("client closed the connection mid-body")
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise BadRequest(400, f"malformed chunked body: chunk size line {line[:40]!r} is not hexadecimal",
                                 discard=None)
            size = int(size_text, 16)
            if size == 0:
                for _ in range(MAX_HEADERS + 1):  # trailers are ignored
                    if self._readline(deadline, 408, slow) in (b"\r\n", b"\n", b""):
                        return b"".join(parts)
                raise BadRequest(431, f"more than {MAX_HEADERS} trailer lines")
            total += size
            if total > limit:
                raise BadRequest(413, "the chunked request body", discard=None)
            parts.append(self._read(size, deadline, slow))
            if self._readline(deadline, 408, slow) not in (b"\r\n", b"\n"):
                raise BadRequest(400, f"malformed chunked body: a chunk of {size} bytes is not followed by CRLF",
                                 discard=None)

    def _discard(self, size: int | None, deadline: float) -> None:
        """Read and drop what the client is still sending (up to `size`, or to EOF), within the deadline."""
        left = MAX_DISCARD if size is None else min(size, MAX_DISCARD)
        try:
            while left > 0 and time.monotonic() < deadline:
                self.connection.settimeout(max(0.01, min(1.0, deadline - time.monotonic())))
                chunk = self.rfile.read1(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
        except (OSError, ValueError):
            pass

    def refuse(self, exc: BadRequest, deadline: float, kind: str = "BadRequest") -> bool:
        """Answer a request that cannot be read, drop the rest of its body, close: False."""
        message = str(exc)
        if exc.status == 413:
            limit = self.server.max_payload
            message = (f"{message} is over the {limit:,}-byte ({limit / 1048576:g} MB) payload limit; "
                       "send fewer records per request (or use batch transform)")
            kind = "PayloadTooLarge"
        elif exc.status == 408:
            kind = "RequestTimeout"
        status, body, ctype, _ = error_answer(exc.status, kind, message)
        try:
            self.send(status, body, ctype, close=True)
        except OSError:
            return False
        if exc.discard != 0:  # a lingering close: our side is done, the client may still be sending
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                return False
            self._discard(exc.discard, deadline)
        print(f"nbsage model server: {self.client_address[0]} refused ({status}): {message}",
              file=sys.stderr, flush=True)
        return False

    # ---- one request ---------------------------------------------------------------------------
    def _one_request(self, first: bool) -> bool:
        """Answer one request; True when the connection stays open for the next one."""
        server = self.server
        self.connection.settimeout(server.header_timeout if first else server.keep_alive_timeout)
        line = self.rfile.readline(MAX_LINE + 1)  # a timeout here ends an idle connection quietly
        if not line:
            return False
        if line in (b"\r\n", b"\n"):
            return True  # tolerated blank line between requests (RFC 9112 2.2)
        deadline = time.monotonic() + server.header_timeout
        try:
            parts = line.decode("latin-1").split()
            if len(line) > MAX_LINE or len(parts) != 3 or not parts[2].startswith("HTTP/"):
                raise BadRequest(400, f"malformed request line {line[:200].decode('latin-1').strip()!r}")
            method, target, version = parts
            headers = self._read_headers(deadline)
        except BadRequest as exc:
            return self.refuse(exc, deadline)
        deadline = time.monotonic() + server.invocation_timeout
        connection = headers.get("connection", "").lower()
        keep_alive = ("close" not in connection) if version == "HTTP/1.1" else ("keep-alive" in connection)
        path = target.split("?", 1)[0]
        if path.startswith("http://") or path.startswith("https://"):  # absolute-form target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        try:
            body = self._read_body(headers, deadline)
        except BadRequest as exc:
            return self.refuse(exc, deadline)
        started = time.perf_counter()
        status, out, ctype, extra = server.answer(method, path, body, headers, deadline)
        if method == "HEAD":
            out = b""
        self.send(status, out, ctype, extra, close=not keep_alive)
        if getattr(server, "access_log", False):
            ms = (time.perf_counter() - started) * 1000
            print(f'{self.client_address[0]} "{method} {path}" {status} {len(out)} {ms:.2f}ms',
                  file=sys.stderr, flush=True)
        return keep_alive

    def _read_body(self, headers: dict, deadline: float) -> bytes:
        """The request body; oversized ones are refused on their declared length, before reading them."""
        limit = self.server.max_payload
        slow = f"the request body did not arrive within {self.server.invocation_timeout:g} s"
        expect_continue = "100-continue" in headers.get("expect", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            if expect_continue:
                self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            return self._read_chunked(limit, deadline, slow)
        length_text = headers.get("content-length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            raise BadRequest(400, f"Content-Length {length_text[:40]!r} is not a number") from None
        if length > limit:
            # answered before a byte of it is read; read and dropped after, unless it was never sent
            raise BadRequest(413, f"the request body ({length:,} bytes)", discard=0 if expect_continue else length)
        if not length:
            return b""
        if expect_continue:
            self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        return self._read(length, deadline, slow)
