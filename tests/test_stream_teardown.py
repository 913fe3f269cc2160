"""A stream that ends leaves nothing for the cycle collector.

At 19,000 streams reopening every minute (bench/soak.py), each ended stream left ~90 objects in
reference cycles (~65 through its CancelledError's traceback and `TaskGroup.__aexit__`, ~24
through its connection's head guard and protocol), freed only by full collections that then
held the loop for seconds. Freed by reference counting, they never reach the old generation.
"""

from __future__ import annotations

import gc
import socket
import time

from tests.conftest import ServerFactory
from tests.raw_sse import stream_request
from tests.support import ThreadServer, make_token
from tidings.hub import Subscriber

STREAMS = 20


def _open_and_leave(port: int, user: str) -> None:
    """Open a stream as a browser does, read its first event (`retry:`), and go away."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(stream_request(port, make_token(user), last_event_id="0"))
        got = b""
        while b"\r\n\r\n" not in got or not got.split(b"\r\n\r\n", 1)[1].count(b"\n\n"):
            chunk = sock.recv(4096)
            assert chunk, f"the server closed the stream first: {got!r}"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got


def _left(prefix: str) -> list[Subscriber]:
    # `type(o) is`, not isinstance: isinstance asks a lazy proxy for its __class__, and one of
    # Django's (staticfiles storage, when its settings are configured elsewhere in this
    # process) then sets itself up and raises.
    found = [o for o in gc.get_objects() if type(o) is Subscriber]
    return [o for o in found if o.user_id.startswith(prefix)]


def test_an_ended_stream_leaves_no_reference_cycle(make_server: ServerFactory) -> None:
    # In this process (uvicorn in a thread), so its objects can be looked at.
    server = make_server(thread=True)
    assert isinstance(server, ThreadServer)
    prefix = f"teardown-{time.monotonic_ns()}-"
    gc.collect()
    gc.disable()  # only reference counting frees anything now
    try:
        for i in range(STREAMS):
            _open_and_leave(server.port, f"{prefix}{i}")
        # The server notices each client leave and ends its stream (on a loaded machine that
        # can take seconds: wait for it, as an event, not for a fixed time).
        deadline = time.monotonic() + 30
        while server.open_streams() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open_streams() == 0, f"{server.open_streams()} streams still open"
        # What ended them must not be kept alive by a cycle. A bounded wait (the ended streams'
        # tasks finish after the hub let them go): with the cycle they stay until a collection,
        # which is disabled.
        deadline = time.monotonic() + 10
        while _left(prefix) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _left(prefix)
        assert not left, f"{len(left)} of {STREAMS} ended streams are only held by a cycle"
        # Nor anything else of theirs (the connection's protocol, its transport): with either
        # cycle back, this finds dozens of objects per stream.
        in_cycles = gc.collect()
        assert in_cycles < STREAMS, f"{in_cycles} objects in cycles after {STREAMS} streams"
    finally:
        gc.enable()
    # Asked last: the test's HTTP client leaves cycles of its own.
    assert server.metric("tidings_streams_open") == 0
