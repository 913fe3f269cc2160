"""Bounded request heads, with raw sockets against a real server: a head over
`TIDINGS_MAX_HEAD_BYTES` is answered 431 (or cut off) without buffering it, a head not sent within
`TIDINGS_HEAD_TIMEOUT` is closed, and a large head within the limit is served as before.

Both of uvicorn's parsers run: httptools (what `tidings serve` picks) and h11 (its fallback).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory, service_url
from tests.support import STARTUP_TIMEOUT, free_port, make_token, tidings_env, wait_for_200

HEAD_TIMEOUT = 1.0
MAX_HEAD = 64 * 1024  # the default, which the server below keeps
BIG_HEADER = 8 * 1024 * 1024

# `tidings serve` with uvicorn's h11 parser instead of httptools: the same app and server.
H11_SERVER = """
import os, sys
import uvicorn
from tidings.app import create_app
from tidings.heads import bound_heads
from tidings.server import DrainingServer
from tidings.settings import Settings

settings = Settings.from_env(os.environ)
app = create_app(settings)
config = uvicorn.Config(app, port=int(sys.argv[1]), lifespan="on")
bound_heads(config, settings)
config.http = "tidings.heads:BoundedH11Protocol"
DrainingServer(config, app.service).run()
"""


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp(f"heads-{request.param}")
    env = tidings_env(
        f"sqlite:///{folder / 'tidings.db'}", {"TIDINGS_HEAD_TIMEOUT": str(HEAD_TIMEOUT)}
    )
    port = free_port()
    if request.param == "httptools":
        command = [sys.executable, "-m", "tidings", "serve", "--port", str(port)]
    else:
        command = [sys.executable, "-c", H11_SERVER, str(port)]
    log_path = folder / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    running = Running(proc, port, log_path)
    try:
        wait_for_200(proc, f"{running.url}/healthz", STARTUP_TIMEOUT, running.log)
        yield running
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert "Traceback" not in running.log(), running.log()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def served_once(sock: socket.socket) -> None:
    """One request on a kept-alive connection, read to the end of its answer."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while not got.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got


def send_big_head(port: int, results: list[tuple[bytes, float]]) -> None:
    began = time.monotonic()
    with connect(port) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            sock.sendall(b"a" * BIG_HEADER + b"\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: what it answered, if anything, is below
        results.append((answer(sock), time.monotonic() - began))


def assert_431_or_closed(got: bytes) -> None:
    assert not got.startswith(b"HTTP/1.1 200"), got[:200]
    if got:
        assert got.startswith(b"HTTP/1.1 431 "), got[:200]


def test_an_8_mb_header_is_refused_quickly_without_buffering_it(server: Running) -> None:
    before = server.rss_mb()
    results: list[tuple[bytes, float]] = []
    clients = [
        threading.Thread(target=send_big_head, args=(server.port, results)) for _ in range(4)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join(30)
    assert len(results) == 4
    for got, took in results:
        assert_431_or_closed(got)
        assert took < 10, took
    # Buffered, four such heads took ~290 MB; refused at 64 KiB they take next to nothing.
    assert server.rss_mb() - before < 40, (before, server.rss_mb())
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("keep_alive", [False, True], ids=["first-head", "second-head"])
def test_a_head_over_the_limit_in_one_read_is_answered_431(
    server: Running, keep_alive: bool
) -> None:
    with connect(server.port) as sock:
        if keep_alive:  # a head after a served request on the same connection is bounded too
            served_once(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        got = answer(sock)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), got[:300]
    assert json.loads(body)["error"] == "headers_too_large"
    assert "TIDINGS_MAX_HEAD_BYTES" in json.loads(body)["detail"]


def test_a_large_cookie_within_the_limit_is_served(server: Running) -> None:
    # Near the limit, with a real request that needs its credential from the same head.
    cookie = "; ".join(f"c{i}={'v' * 1000}" for i in range(56))
    response = httpx.get(
        f"{server.url}/notifications/unread-count",
        headers={"authorization": f"Bearer {make_token('cookie-user')}", "cookie": cookie},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["unread"] == 0


def test_a_body_larger_than_the_head_limit_is_not_a_head(server: Running) -> None:
    body = json.dumps({"user_id": "u", "message": "x" * 3000, "data": {"a": "b" * 200_000}})
    response = httpx.post(
        f"{server.url}/api/notifications",
        content=body,
        headers={"authorization": "Bearer test-publisher-key", "content-type": "application/json"},
        timeout=10,
    )
    # Refused by the data limit (a 422 about `data`), not as a head.
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == "data"


def closed_after(sock: socket.socket, drip: bytes) -> float:
    """Send `drip` a byte at a time, every 0.2 s, until the server closes; return how long."""
    began = time.monotonic()
    sock.settimeout(0.2)
    for byte in drip:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(65536) == b"":
                return time.monotonic() - began
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - began
    raise AssertionError(f"still open after {time.monotonic() - began:.1f}s")


SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100


def test_a_head_sent_too_slowly_is_closed_within_the_timeout(server: Running) -> None:
    with connect(server.port) as sock:
        took = closed_after(sock, SLOW_HEAD)
    assert HEAD_TIMEOUT * 0.9 <= took < HEAD_TIMEOUT + 4, took


def test_a_connection_that_sends_nothing_is_closed_within_the_timeout(server: Running) -> None:
    with connect(server.port) as sock:
        began = time.monotonic()
        assert answer(sock) == b""
        took = time.monotonic() - began
    assert took < HEAD_TIMEOUT + 4, took


def test_a_slow_second_head_on_a_kept_alive_connection_is_closed(server: Running) -> None:
    with connect(server.port) as sock:
        served_once(sock)
        took = closed_after(sock, SLOW_HEAD)
    assert HEAD_TIMEOUT * 0.9 <= took < HEAD_TIMEOUT + 4, took


def test_an_open_stream_outlives_the_head_timeout(server: Running) -> None:
    # The timeout is for the head only: a stream idle for longer stays open and delivers.
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=10)) as client,
        client.stream(
            "GET",
            f"{server.url}/notifications/stream",
            headers={"authorization": f"Bearer {make_token('stream-user')}"},
        ) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        time.sleep(HEAD_TIMEOUT * 2.5)  # longer than the head timeout, on purpose
        published = httpx.post(
            f"{server.url}/api/notifications",
            json={"user_id": "stream-user", "message": "after the timeout"},
            headers={"authorization": "Bearer test-publisher-key"},
            timeout=10,
        )
        assert published.status_code == 201
        for line in lines:
            if line.startswith("data:") and "after the timeout" in line:
                break
        else:
            raise AssertionError("the stream ended before the notification arrived")


@pytest.mark.slow
def test_workers_bound_heads_too(make_server: ServerFactory) -> None:
    node = make_server(
        "--workers",
        "2",
        # a channel of its own: no other test's servers on the shared Redis hear this one
        TIDINGS_BUS_URL=f"{service_url('REDIS')}?channel=heads_{free_port()}",
        TIDINGS_HEAD_TIMEOUT="1",
    )
    results: list[tuple[bytes, float]] = []
    send_big_head(node.port, results)
    [(got, took)] = results
    assert_431_or_closed(got)
    assert took < 10
    with connect(node.port) as sock:
        assert closed_after(sock, SLOW_HEAD) < 5
