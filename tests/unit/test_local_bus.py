"""The local bus between the workers of `tidings serve --workers N`, over real Unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from tidings.bus import wire
from tidings.bus.local import LocalBus
from tidings.events import Event, Published

pytestmark = pytest.mark.anyio


def _sibling_bus(tmp_path: Path) -> tuple[LocalBus, socket.socket]:
    """Worker 0's bus, and worker 1's socket, which the test reads (or leaves unread) itself."""
    base = str(tmp_path / "bus.sock")
    sibling = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sibling.bind(base + ".1")
    sibling.setblocking(False)
    bus = LocalBus(base)
    bus.socket_path = base + ".0"
    bus.siblings = [base + ".1"]
    return bus, sibling


async def _read_seqs(sibling: socket.socket, count: int) -> list[int]:
    decode = wire.Decoder()
    seqs: list[int] = []
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10):
        while len(seqs) < count:
            raw = await loop.sock_recv(sibling, 65536)
            seqs += [e.seq for e in decode(raw) if isinstance(e, Published)]
    return seqs


async def test_a_sibling_has_the_announcement_before_this_worker_delivers_it(
    tmp_path: Path,
) -> None:
    bus, sibling = _sibling_bus(tmp_path)
    waiting_at_delivery: list[bool] = []

    def deliver(event: Event) -> None:
        # The sibling's copy is already in its queue when this worker starts its own writes.
        try:
            waiting_at_delivery.append(bool(sibling.recv(65536, socket.MSG_PEEK)))
        except BlockingIOError:
            waiting_at_delivery.append(False)

    await bus.start(deliver)
    try:
        await bus.announce([Published(f"u{i}", 1) for i in range(500)])
        assert waiting_at_delivery == [True] * 500
        assert sorted(await _read_seqs(sibling, 500)) == [1] * 500
    finally:
        await bus.close()
        sibling.close()


async def test_a_full_sibling_queue_holds_back_neither_local_delivery_nor_the_order(
    tmp_path: Path,
) -> None:
    bus, sibling = _sibling_bus(tmp_path)
    delivered: list[int] = []
    await bus.start(lambda event: delivered.append(getattr(event, "seq", 0)))
    try:
        # One datagram per announcement, more than a Unix socket queues unread (10 by default):
        # the first go out at once, the rest wait for room, in the order they were announced.
        count = 60
        sends = [asyncio.create_task(bus.announce([Published("u", s)])) for s in range(1, 61)]
        await asyncio.sleep(0)
        assert delivered == list(range(1, count + 1))  # every local delivery at once
        assert not all(task.done() for task in sends)  # some wait for the sibling to read
        assert await _read_seqs(sibling, count) == list(range(1, count + 1))
        await asyncio.wait_for(asyncio.gather(*sends), 10)
    finally:
        await bus.close()
        sibling.close()


async def test_a_sibling_too_slow_to_keep_up_is_let_go_within_the_send_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tidings.bus.local.SEND_TIMEOUT", 0.5)
    bus, sibling = _sibling_bus(tmp_path)
    delivered: list[int] = []
    await bus.start(lambda event: delivered.append(getattr(event, "seq", 0)))
    loop = asyncio.get_running_loop()

    async def read_slowly() -> None:
        # Reads, so no single send ever stalls for the whole limit, but 20 datagrams a second
        # is far behind 200 announcements at once.
        with contextlib.suppress(OSError):
            while True:
                await loop.sock_recv(sibling, 65536)
                await asyncio.sleep(0.05)

    reader = asyncio.create_task(read_slowly())
    try:
        started = loop.time()
        sends = [asyncio.create_task(bus.announce([Published("u", s)])) for s in range(1, 201)]
        await asyncio.wait_for(asyncio.gather(*sends), 5)
        # Every announcement is bounded by the limit, not queued behind all earlier ones.
        assert loop.time() - started < 2.0
        assert delivered == list(range(1, 201))
        assert bus._held == {bus.siblings[0]: 0}
    finally:
        reader.cancel()
        await bus.close()
        sibling.close()


async def test_announcements_cancelled_while_held_leave_no_sibling_held(tmp_path: Path) -> None:
    base = str(tmp_path / "bus.sock")
    siblings = []
    for k in (1, 2):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(f"{base}.{k}")
        sock.setblocking(False)
        siblings.append(sock)
    bus = LocalBus(base)
    bus.socket_path = base + ".0"
    bus.siblings = [base + ".1", base + ".2"]
    await bus.start(lambda event: None)
    try:
        # Neither sibling reads: each announcement past the queues' room waits on the first
        # sibling with the second still to come when it is cancelled (as at a shutdown).
        sends = [asyncio.create_task(bus.announce([Published("u", s)])) for s in range(1, 41)]
        await asyncio.sleep(0.05)
        assert all(bus._held[path] > 0 for path in bus.siblings)
        for task in sends:
            task.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        assert bus._held == dict.fromkeys(bus.siblings, 0)
        # Once they read again, the next announcement goes straight out to both.
        for sock in siblings:
            while True:
                try:
                    sock.recv(65536)
                except BlockingIOError:
                    break
        await bus.announce([Published("u", 99)])
        for sock in siblings:
            assert await _read_seqs(sock, 1) == [99]
    finally:
        await bus.close()
        for sock in siblings:
            sock.close()
