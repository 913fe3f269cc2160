"""The in-process bus, for one server process or the workers of one `tidings serve --workers N`.

Inside the server it hands events straight to the hub. So that `tidings send` on the same machine
shows up live too, the server also listens on a Unix datagram socket (one per database, see
`default_socket_path`); the CLI drops a small `(user, seq)` datagram there after its commit. A
datagram that gets lost (no server running, buffer full) only means the stream catches up later.

With `--workers N`, worker k listens on `<socket>.<k>` instead, and every announcement also goes
to its siblings' sockets as the shared buses' wire messages (tidings.bus.wire: batches, each
notification inside, so a sibling delivers without a store query). Those datagrams are not
dropped when a sibling's queue is full: the sender waits (bounded) for room, over one connected
socket per sibling. The CLI sends to the plain socket and to every `<socket>.<k>` it finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import logging
import os
import socket
from collections.abc import Sequence

from tidings.bus import wire
from tidings.bus.base import Deliver, Tally
from tidings.events import Event, Published

__all__ = ["LocalBus", "join_workers"]

log = logging.getLogger("tidings.bus")

# Large enough for a wire batch; a Unix datagram may be this long with the default buffers.
MAX_DATAGRAM = 65536
# Room left for the JSON array around the entries of one batch.
WIRE_LIMIT = MAX_DATAGRAM - 64
# How long an announcement waits for a sibling whose queue is full before giving up on it.
SEND_TIMEOUT = 5.0

# (slot, count) of this process among `tidings serve --workers N`; set by tidings.workers.
_workers: tuple[int, int] | None = None


def join_workers(slot: int, count: int) -> None:
    """Make the local buses this process builds reach the other `count - 1` worker processes."""
    global _workers
    _workers = (slot, count)


class LocalBus:
    def __init__(self, socket_path: str) -> None:
        self.base_path = socket_path
        self.socket_path = socket_path
        self.siblings: list[str] = []
        if _workers is not None:
            slot, count = _workers
            self.socket_path = f"{socket_path}.{slot}"
            self.siblings = [f"{socket_path}.{k}" for k in range(count) if k != slot]
        self._deliver: Deliver | None = None
        self._decode = wire.Decoder()
        self._sock: socket.socket | None = None
        self._peers: dict[str, socket.socket] = {}
        # Per sibling: announcements held back (its queue was full) and not sent yet, and the
        # lock that sends them in order; while any is held, later ones queue behind it.
        self._held: dict[str, int] = {}
        self._order: dict[str, asyncio.Lock] = {}
        self.tally: Tally | None = None

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
            if raw[:1] == b"[":
                events = self._decode(raw)
                if self.tally is not None:
                    self.tally.count += sum(1 for e in events if hasattr(e, "user_id"))
                for event in events:
                    self._deliver(event)
                continue
            try:
                body = json.loads(raw)
                event = Published(user_id=str(body["u"]), seq=int(body["s"]))
            except (ValueError, KeyError, TypeError):
                continue
            self._deliver(event)

    async def announce(self, events: Sequence[Event]) -> None:
        if self._deliver is not None:
            # The siblings' copy leaves first, so they write their streams while this process
            # writes its own: a broadcast's socket writes are most of its time, and delivered
            # here first they kept the siblings waiting for all of this process's writes. What
            # a full sibling queue holds back is sent (waiting for room) after the local writes.
            held = self._to_siblings_now(events) if self.siblings else []
            for event in events:
                self._deliver(event)
            if held:
                await self._to_siblings(held)
            return
        self._send_datagrams(events)

    def _to_siblings_now(self, events: Sequence[Event]) -> list[tuple[str, list[bytes]]]:
        """Send each sibling what its queue takes now; return, per sibling, what it did not."""
        # The siblings run this very code: a publish to many users goes as one body and its
        # (user, seq) pairs, not the body again per user.
        messages = [m.encode() for m in wire.encode(events, WIRE_LIMIT, shared_bodies=True)]
        held: list[tuple[str, list[bytes]]] = []
        for path in self.siblings:
            sock = self._peer(path)
            if sock is None:
                continue  # not started yet (or restarting): it holds no streams
            rest: list[bytes] = []
            if self._held.get(path):
                rest = messages  # behind what is held already
            else:
                for i, raw in enumerate(messages):
                    try:
                        sock.send(raw)
                    except (BlockingIOError, InterruptedError):
                        rest = messages[i:]
                        break
                    except OSError as exc:
                        self._lost(path, sock, exc)
                        break
            if rest:
                self._held[path] = self._held.get(path, 0) + 1
                held.append((path, rest))
        return held

    def _lost(self, path: str, sock: socket.socket, exc: BaseException) -> None:
        # Gone, or stuck for seconds: its streams catch up on their next event.
        log.warning("local bus: sibling %s missed an announcement: %r", path, exc)
        self._peers.pop(path, None)
        sock.close()

    async def _to_siblings(self, held: list[tuple[str, list[bytes]]]) -> None:
        loop = asyncio.get_running_loop()
        for path, messages in held:
            try:
                # asyncio's lock is first come, first served: held announcements go in order.
                async with self._order.setdefault(path, asyncio.Lock()):
                    sock = self._peers.get(path)
                    if sock is None:
                        continue
                    try:
                        for raw in messages:
                            await asyncio.wait_for(loop.sock_sendall(sock, raw), SEND_TIMEOUT)
                    except (OSError, TimeoutError) as exc:
                        self._lost(path, sock, exc)
            finally:
                self._held[path] -= 1

    def _peer(self, path: str) -> socket.socket | None:
        sock = self._peers.get(path)
        if sock is not None:
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            # Connected, so a full queue on the sibling's side makes the sender wait for room.
            sock.connect(path)
        except OSError:
            sock.close()
            return None
        self._peers[path] = sock
        return sock

    def _send_datagrams(self, events: Sequence[Event]) -> None:
        published = [e for e in events if isinstance(e, Published)]
        if not published:
            return
        paths = self._server_paths()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for path in paths:
                for event in published:
                    raw = json.dumps({"u": event.user_id, "s": event.seq}).encode()
                    try:
                        sock.sendto(raw, path)
                    except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
                        break

    def _server_paths(self) -> list[str]:
        """The plain socket of a one-process server, and the sockets of every worker."""
        found = glob.glob(glob.escape(self.base_path) + ".*")
        return [self.base_path, *(p for p in found if p.rpartition(".")[2].isdigit())]

    def listening(self) -> bool:
        """True when a server, or a worker of one, is bound to its socket (a stale file left by
        a server that is gone refuses connections)."""
        for path in self._server_paths():
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                try:
                    sock.connect(path)
                except OSError:
                    continue
                return True
        return False

    async def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
        for sock in self._peers.values():
            sock.close()
        self._peers.clear()
        self._deliver = None

    def ready(self) -> bool:
        return True

    # Workers broadcast to each other: a handful of sibling processes on one machine, where
    # routing would cost more bookkeeping than the datagrams it saves.
    def join(self, user_id: str) -> asyncio.Future[None] | None:
        return None

    def leave(self, user_id: str) -> None:
        return None
