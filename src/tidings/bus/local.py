"""The in-process bus, for one server process.

Inside the server it hands events straight to the hub. So that `tidings send` on the same machine
shows up live too, the server also listens on a Unix datagram socket (one per database, see
`default_socket_path`); the CLI drops a small `(user, seq)` datagram there after its commit. A
datagram that gets lost (no server running, buffer full) only means the stream catches up later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Sequence

from tidings.bus.base import Deliver
from tidings.models import Event, Published

__all__ = ["LocalBus"]

MAX_DATAGRAM = 4096


class LocalBus:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._deliver: Deliver | None = None
        self._sock: socket.socket | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(self.socket_path)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._sock is not None
        assert self._deliver is not None
        while True:
            try:
                raw = self._sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            try:
                body = json.loads(raw)
                event = Published(user_id=str(body["u"]), seq=int(body["s"]))
            except (ValueError, KeyError, TypeError):
                continue
            self._deliver(event)

    async def announce(self, events: Sequence[Event]) -> None:
        if self._deliver is not None:
            for event in events:
                self._deliver(event)
            return
        self._send_datagrams(events)

    def _send_datagrams(self, events: Sequence[Event]) -> None:
        published = [e for e in events if isinstance(e, Published)]
        if not published or not os.path.exists(self.socket_path):
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for event in published:
                raw = json.dumps({"u": event.user_id, "s": event.seq}).encode()
                try:
                    sock.sendto(raw, self.socket_path)
                except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
                    return

    async def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
        self._deliver = None

    def ready(self) -> bool:
        return True
