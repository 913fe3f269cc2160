"""A complete answer leaves in one socket write (tidings.answers): the client's socket counts the
data segments it received (TCP_INFO), and on loopback with TCP_NODELAY (uvloop's default) each
server write is one segment. A stream's head leaves with its first frame (and what a reconnect
replays), then the stream writes each frame as it comes."""

from __future__ import annotations

import json
import socket
import struct
import sys

import pytest

from tests.conftest import ServerFactory
from tests.support import PUBLISHER_KEY, ThreadServer, make_token

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO is Linux's")

# struct tcp_info (linux/tcp.h): tcpi_data_segs_in, a __u32 at this offset (Linux ≥ 4.6).
DATA_SEGS_IN = 152


def _segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, DATA_SEGS_IN)[0])


def _read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP answer with a content-length: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(int(v) for k, _, v in (x.partition(": ") for x in lines) if k == "content-length")
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed before the whole body"
        body += chunk
    return head, body


def _publish(sock: socket.socket, user: str, message: str) -> tuple[bytes, bytes]:
    body = json.dumps({"user_id": user, "message": message}).encode()
    sock.sendall(
        b"POST /api/notifications HTTP/1.1\r\nHost: t\r\n"
        b"Authorization: Bearer " + PUBLISHER_KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    return _read_answer(sock)


@pytest.fixture
def served(make_server: ServerFactory) -> ThreadServer:
    server = make_server(thread=True)
    assert isinstance(server, ThreadServer)
    return server


def test_a_publish_is_answered_in_one_segment(served: ThreadServer) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        for i in range(3):  # each answer on a kept-alive connection, not only the first
            before = _segments_in(sock)
            head, body = _publish(sock, "ann", f"hello {i}")
            assert head.startswith(b"HTTP/1.1 201 "), head
            assert json.loads(body)["message"] == f"hello {i}"
            assert _segments_in(sock) - before == 1


def test_an_error_is_answered_in_one_segment_too(served: ThreadServer) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /api/notifications/nothing-here HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = _read_answer(sock)
        assert head.startswith(b"HTTP/1.1 404 "), head
        assert "error" in json.loads(body)
        assert _segments_in(sock) == 1


def test_a_stream_still_writes_each_frame_when_it_comes(served: ThreadServer) -> None:
    token = make_token("bea")
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as stream:
        stream.sendall(
            b"GET /notifications/stream HTTP/1.1\r\nHost: t\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
        )
        seen = b""
        while b"retry:" not in seen:  # the head, then the first frame: the stream is live
            chunk = stream.recv(65536)
            assert chunk
            seen += chunk
        assert _segments_in(stream) == 1, "the head and the first frame in one write"
        # Past its first frame the hub writes the stream's frames to the connection itself.
        assert served.streams_written_directly() == 1
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as publisher:
            _publish(publisher, "bea", "live")
        while b'"live"' not in seen:
            chunk = stream.recv(65536)
            assert chunk, "the stream ended before the notification"
            seen += chunk
        assert seen.startswith(b"HTTP/1.1 200 ")
        assert b"transfer-encoding: chunked" in seen
        assert seen.endswith(b"\r\n"), "each frame a whole chunk"
        assert _segments_in(stream) == 2, "the live frame in a write of its own"


def test_a_reconnect_gets_its_head_and_what_it_missed_in_one_segment(served: ThreadServer) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as publisher:
        for i in range(3):  # a new user's seqs: 1, 2, 3
            _publish(publisher, "cyd", f"missed {i}")
    token = make_token("cyd")
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as stream:
        stream.sendall(
            b"GET /notifications/stream HTTP/1.1\r\nHost: t\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Last-Event-ID: 1\r\n\r\n"
        )
        seen = b""
        while b'"missed 2"' not in seen:
            chunk = stream.recv(65536)
            assert chunk, f"the stream ended before its replay: {seen!r}"
            seen += chunk
        assert seen.startswith(b"HTTP/1.1 200 ")
        assert b'"missed 0"' not in seen
        assert b'"missed 1"' in seen
        assert _segments_in(stream) == 1, "head, retry and the replay in one write"
