"""BoundedStore under a reconnect storm on a slow store (issue 22, item 4): catch-up reads may
hold at most half of the node's store slots, so a publish still gets through."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.fakes import FakeStore
from tidings.models import Draft, Notification, Position
from tidings.store import StoreUnavailable
from tidings.store.bounded import BoundedStore

pytestmark = pytest.mark.anyio


class SlowReads(FakeStore):
    """A store whose catch-up reads take as long as a loaded MongoDB-protocol server's."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        await self.release.wait()
        return await super().after(user_id, seq, limit)

    async def position(self, user_id: str) -> Position:
        await self.release.wait()
        return await super().position(user_id)


async def test_a_publish_gets_a_slot_while_reconnecting_streams_wait_on_a_slow_store() -> None:
    inner = SlowReads()
    store = BoundedStore(inner, limit=8, queue_timeout=0.2)
    # Far more reconnecting streams than slots, each reading what it missed.
    readers = [asyncio.create_task(store.after(f"u{i}", 0, 100)) for i in range(40)]
    positions = [asyncio.create_task(store.position(f"u{i}")) for i in range(40)]
    await asyncio.sleep(0.3)  # the readers past the cap have been refused by now
    try:
        stored = await asyncio.wait_for(store.add(Draft(user_ids=("a",), message="hi")), 1)
        assert stored.notifications[0].seq == 1
        assert await asyncio.wait_for(store.unread_count("a"), 1) == 1
    finally:
        inner.release.set()
        results = await asyncio.gather(*readers, *positions, return_exceptions=True)
    # The reads over their share were shed with the busy answer (503), not left to queue.
    refused = [r for r in results if isinstance(r, StoreUnavailable)]
    assert refused
    assert "catch-up reads" in str(refused[0])
    assert sum(not isinstance(r, BaseException) for r in results) <= 8
