"""The local bus between the workers of `tidings serve --workers N`, over real Unix sockets."""

from __future__ import annotations

import asyncio
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
