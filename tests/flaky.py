"""A real flaky hop for retry tests: a TCP proxy on 127.0.0.1 that fails chosen connections.

Each accepted connection takes the next mode from a script (then `pass` for ever after):

- `pass`: a byte pipe to the upstream server in both directions;
- `503`: reads one HTTP request and answers 503 itself (the upstream never sees it);
- `drop`: forwards one HTTP request upstream, waits for the start of the answer (so the upstream
  has done the work), and closes the connection without passing the answer on — the case where a
  publish was stored but its client never learned it.

Every request read in the `503` and `drop` modes, and the first of each `pass` connection, is kept
in `requests` (raw bytes), so a test can compare what each attempt sent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable

READ_TIMEOUT = 10.0


class FlakyProxy:
    def __init__(self, upstream_port: int, modes: Iterable[str]) -> None:
        self.upstream_port = upstream_port
        self.modes = list(modes)
        self.requests: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        # shutdown() wakes the accept() blocked in the other thread; close() alone does not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> FlakyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                mode = self.modes.pop(0) if self.modes else "pass"
            thread = threading.Thread(target=self._serve, args=(conn, mode), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, mode: str) -> None:
        conn.settimeout(READ_TIMEOUT)
        with conn:
            try:
                request = read_request(conn)
                with self._lock:
                    self.requests.append(request)
                if mode == "503":
                    body = b'{"error":"store_unavailable","detail":"flaky proxy"}'
                    conn.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                        b"retry-after: 0\r\nconnection: close\r\n"
                        + f"content-length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    return
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 10)
                with upstream:
                    upstream.sendall(request)
                    if mode == "drop":
                        upstream.recv(65536)  # the answer has begun: the work is done
                        return
                    self._pipe(conn, upstream)
            except OSError:
                return

    @staticmethod
    def _pipe(conn: socket.socket, upstream: socket.socket) -> None:
        def copy(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=copy, args=(upstream, conn), daemon=True)
        back.start()
        copy(conn, upstream)
        back.join(READ_TIMEOUT)


def read_request(conn: socket.socket) -> bytes:
    """One HTTP/1.1 request with a Content-Length body (what httpx sends for JSON)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a request")
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a request body")
        body += chunk
    return head + b"\r\n\r\n" + body


def body_of(request: bytes) -> bytes:
    return request.partition(b"\r\n\r\n")[2]
