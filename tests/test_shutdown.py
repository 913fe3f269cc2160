"""SIGTERM is routine: every open stream gets a jittered `retry:` and a clean end, in seconds."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.raw_sse import RawResponse, parse_response, stream_request
from tests.support import PUBLISHER_KEY, make_token

pytestmark = pytest.mark.anyio

STREAMS = 1000
USERS = 100  # ten streams each, under the default cap of twenty per user
OPENING_RETRY_MS = 3000
DRAIN_RETRY_MAX_MS = 5000


async def hold_stream(
    port: int, token: str, opening: asyncio.Semaphore, opened: list[int]
) -> RawResponse:
    """Open a stream, report it open once the first `retry:` arrived, then read to the end."""
    async with opening:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        writer.write(stream_request(port, token))
        raw = b""
        while b"retry:" not in raw:
            chunk = await asyncio.wait_for(reader.read(65536), 30)
            assert chunk, f"closed before the stream opened: {raw!r}"
            raw += chunk
    opened.append(1)
    try:
        while chunk := await reader.read(65536):
            raw += chunk
            # A finished chunked response; the server may keep the socket for a moment more.
            if raw.endswith(b"\r\n0\r\n\r\n"):
                break
    finally:
        writer.close()
    return parse_response(raw)


@pytest.mark.slow
async def test_sigterm_with_a_thousand_streams_ends_each_cleanly_and_exits_within_5s(
    make_server: ServerFactory,
) -> None:
    server = make_server()
    tokens = [make_token(f"user{i}") for i in range(USERS)]
    opening = asyncio.Semaphore(100)
    opened: list[int] = []
    streams = [
        asyncio.create_task(hold_stream(server.port, tokens[i % USERS], opening, opened))
        for i in range(STREAMS)
    ]
    deadline = time.monotonic() + 60
    while len(opened) < STREAMS:
        failed = [t for t in streams if t.done() and t.exception() is not None]
        assert not failed, failed[0].exception()
        assert time.monotonic() < deadline, f"only {len(opened)} streams opened"
        await asyncio.sleep(0.05)
    assert server.metric("tidings_streams_open") == STREAMS

    took = await asyncio.to_thread(server.stop)
    responses = await asyncio.wait_for(asyncio.gather(*streams), 10)

    assert took < 5.0, f"the server took {took:.1f}s to exit"
    drain_retries: list[int] = []
    for response in responses:
        assert response.status == 200
        assert response.complete, response.events
        assert response.retries[0] == OPENING_RETRY_MS
        assert len(response.retries) == 2, response.events
        drain_retries.append(response.retries[1])
        assert [e.event for e in response.events if e.event != "ping"] == ["message", "message"]
    # A thousand streams at TIDINGS_DRAIN_RECONNECTS_PER_S (5,000/s) need the narrowest spread:
    # every client is back within a second, not up to TIDINGS_DRAIN_RETRY_MAX_MS.
    assert all(500 <= r <= 1000 < DRAIN_RETRY_MAX_MS for r in drain_retries)
    # Jittered, so the clients do not all come back in the same instant.
    assert len(set(drain_retries)) > STREAMS // 10
    assert "Traceback" not in server.log()


@pytest.mark.slow
async def test_sigterm_does_not_wait_for_a_client_that_stopped_reading(
    make_server: ServerFactory,
) -> None:
    # A queue this large never overflows here: the stream stays, blocked in a write.
    server = make_server(stream_queue="5000", stream_queue_bytes=str(64 * 1024 * 1024))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(stream_request(server.port, make_token("stuck")))
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10
        ) as api:
            # Enough to fill the socket buffers (the kernel's grow to a few MB).
            async def big(i: int) -> None:
                response = await api.post(
                    "/api/notifications",
                    json={"user_id": "stuck", "message": f"big {i}", "data": {"x": "x" * 16_000}},
                )
                assert response.status_code == 201

            for start in range(0, 320, 10):
                await asyncio.gather(*(big(i) for i in range(start, start + 10)))
        await asyncio.sleep(0.5)
        assert server.metric("tidings_streams_open") == 1
        took = await asyncio.to_thread(server.stop)
    finally:
        sock.close()
    assert took < 5.0, f"the server took {took:.1f}s to exit"


def test_sigterm_after_a_clean_drain_exits_with_status_0(make_server: ServerFactory) -> None:
    # A supervisor (systemd, Kubernetes, runit) reads a death by signal (-15) as a crash.
    server = make_server()
    assert server.publish("sigterm-user", "before the stop").status_code == 201
    server.stop()
    assert server.proc is not None
    assert server.proc.returncode == 0, server.log()
    assert "Traceback" not in server.log()
