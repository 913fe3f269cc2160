"""A client that stops reading is cut off when its queue fills; nobody else waits for it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.raw_sse import parse_response, stream_request
from tests.support import PUBLISHER_KEY, make_token, open_stream, publish_sentinel

pytestmark = pytest.mark.anyio

# Big notifications fill the socket buffers and the queue after a few dozen.
PAYLOAD = {"blob": "x" * 12_000}
MAX_PUBLISHES = 2000


async def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sent, up to its close (a reset drops what was unread)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    chunks: list[bytes] = []
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await loop.sock_recv(sock, 1 << 20):
                chunks.append(chunk)
    return b"".join(chunks)


def stuck_client(port: int, token: str) -> socket.socket:
    """A client with a tiny receive buffer that never reads once it sent its request."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(stream_request(port, token))
    return sock


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of our end: 1 established, 7 closed (reset), 8 close-wait (FIN)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


@pytest.mark.slow
async def test_a_client_that_stops_reading_is_cut_off_and_others_keep_their_pace(
    make_server: ServerFactory,
) -> None:
    server = make_server(stream_queue="4", stream_queue_bytes="65536")
    slow_token = make_token("slow")
    async with (
        open_stream(server.url, make_token("brisk")) as brisk,
        httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10
        ) as api,
    ):
        # Two such clients: one reads once it was cut off, one never reads at all.
        sock = stuck_client(server.port, slow_token)
        never = stuck_client(server.port, slow_token)
        try:
            published = 0
            brisk_seq = 0
            worst = 0.0
            began = time.monotonic()
            while server.metric("tidings_stream_disconnects_total", 'reason="slow"') < 2:
                assert published < MAX_PUBLISHES, "the slow client was never cut off"
                assert time.monotonic() - began < 60, "the slow client was never cut off"
                for _ in range(5):
                    response = await api.post(
                        "/api/notifications",
                        json={"user_id": "slow", "message": f"big {published}", "data": PAYLOAD},
                    )
                    assert response.status_code == 201, response.text
                    published += 1
                # Meanwhile the other user's notifications keep arriving promptly.
                sent = time.monotonic()
                response = await api.post(
                    "/api/notifications", json={"user_id": "brisk", "message": "hi"}
                )
                brisk_seq += 1
                [got] = await brisk.notifications(1, timeout=5)
                assert got["id"] == brisk_seq
                worst = max(worst, time.monotonic() - sent)
            # Generous: a shared, loaded machine; the point is that nobody waits for `slow`.
            assert worst < 3.0
            assert server.metric("tidings_stream_disconnects_total", 'reason="slow"') == 2
            assert server.metric("tidings_stream_disconnects_total") == 2

            # One finally reads: what it got is a gapless prefix, then the end. (The server
            # may have given up on it already and reset it: then it got nothing.)
            raw = await read_all(sock, 20)
            seen: list[int] = []
            if raw:
                received = parse_response(raw)
                assert received.status == 200
                assert not received.complete  # cut off, not a finished response
                seen = received.ids
            assert seen == list(range(1, len(seen) + 1))
            assert len(seen) < published

            # The other never reads: the server lets go of it all the same, so a client that
            # stalls keeps no socket and no buffers on the server.
            deadline = time.monotonic() + 15
            while tcp_state(never) == 1:
                assert time.monotonic() < deadline, "the server kept the stuck connection"
                await asyncio.sleep(0.2)
        finally:
            sock.close()
            never.close()

        # It reconnects from there and replays exactly what it missed.
        async with open_stream(server.url, slow_token, last_event_id=str(len(seen))) as again:
            missed = await again.notifications(published - len(seen), timeout=30)
            assert [n["id"] for n in missed] == list(range(len(seen) + 1, published + 1))
            assert missed[-1]["data"] == PAYLOAD
            await publish_sentinel(server, "slow", again)

        # And the well-behaved stream was never interrupted.
        await api.post("/api/notifications", json={"user_id": "brisk", "message": "still here"})
        [got] = await brisk.notifications(1)
        assert (got["id"], got["message"]) == (brisk_seq + 1, "still here")
