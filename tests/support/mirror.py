"""A real HTTP server on loopback serving a directory, which tests can make misbehave.

Faults are queued per path: each request for that path takes the next fault
(if any). Supported faults: an HTTP status (with optional Retry-After), a
truncated body, a body with one flipped byte, a redirect (to a path, possibly
looping), a reset connection (before the response, or after some bytes of
the body), a stall longer than the client's timeout, a slow drip (a body
sent at a set number of bytes per second).
Range requests are honoured, so resumed downloads can be tested.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    retry_after: str | None = None
    truncate: int | None = None  # send only this many bytes (but announce the full length)
    flip_byte: int | None = None
    redirect: str | None = None
    reset: bool = False
    stall: float | None = None
    reset_after: int | None = None  # send this many body bytes, then reset the connection
    drip: int | None = None  # send the body at this many bytes per second


def _reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP reset, not an orderly end."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


class MirrorServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.startswith("http://"):
                    # A client using this server as its HTTP proxy (http_proxy)
                    # asks for absolute URLs: any host maps to the same root.
                    path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
                server.requests.append((path, self.headers.get("Range")))
                queue = server.faults.get(path)
                fault = queue.popleft() if queue else Fault()
                if fault.reset:
                    _reset(self.connection)
                    return
                if fault.stall:
                    time.sleep(fault.stall)
                if fault.redirect:
                    self.send_response(302)
                    self.send_header("Location", fault.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault.status:
                    self.send_response(fault.status)
                    if fault.retry_after:
                        self.send_header("Retry-After", fault.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = (server.root / path.lstrip("/")).resolve()
                if not target.is_relative_to(server.root.resolve()):
                    self.send_error(403)
                    return
                if target.is_dir():
                    body = "\n".join(
                        f'<a href="{n}/">{n}/</a>' for n in sorted(os.listdir(target))
                    ).encode()
                    self._send(200, body, len(body))
                    return
                if not target.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                if fault.flip_byte is not None:
                    i = fault.flip_byte % len(data)
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
                rng = self.headers.get("Range")
                status = 200
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                announced = len(body)
                if fault.truncate is not None:
                    body = body[: fault.truncate]
                self._send(status, body, announced, start=start, total=len(data), fault=fault)
                if fault.truncate is not None:
                    self.close_connection = True

            def _send(
                self,
                status: int,
                body: bytes,
                length: int,
                *,
                start: int = 0,
                total: int = 0,
                fault: Fault | None = None,
            ) -> None:
                fault = fault or Fault()
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if fault.reset_after is not None:
                        self.wfile.write(body[: fault.reset_after])
                        self.wfile.flush()
                        _reset(self.connection)
                        self.close_connection = True
                    elif fault.drip:
                        step = max(1, fault.drip // 10)
                        for i in range(0, len(body), step):
                            self.wfile.write(body[i : i + step])
                            self.wfile.flush()
                            time.sleep(step / fault.drip)
                    else:
                        self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def fault(self, path: str, *faults: Fault) -> None:
        self.faults[path].extend(faults)

    def __enter__(self) -> MirrorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def serve(root: Path) -> Iterator[MirrorServer]:
    with MirrorServer(root) as server:
        yield server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
