"""BoundedStore under a reconnect storm on a slow store (issue 22, item 4): catch-up reads may
hold at most half of the node's store slots, so a publish still gets through."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.fakes import FakeStore
from tidings.metrics import Metrics
from tidings.models import Draft, Notification, Position
from tidings.store import StoreUnavailable
from tidings.store.base import operations
from tidings.store.bounded import ADMISSION, BoundedStore
from tidings.store.instrumented import InstrumentedStore

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


def test_the_admission_table_names_only_store_operations() -> None:
    # A misspelt or removed name there would silently give that operation the default.
    assert set(ADMISSION) <= set(operations())


async def test_every_operation_is_bounded_and_counted_by_name() -> None:
    inner = FakeStore()
    metrics = Metrics()
    store = InstrumentedStore(BoundedStore(inner, limit=1, queue_timeout=0.05), metrics)
    for name in operations():
        assert callable(getattr(store, name)), name
    await store.add(Draft(user_ids=("a",), message="hi"))
    await store.unread_count("a")
    await store.open()
    value = metrics.registry.get_sample_value
    assert value("tidings_store_queries_total", {"op": "add"}) == 1
    assert value("tidings_store_queries_total", {"op": "unread_count"}) == 1
    assert value("tidings_store_queries_total", {"op": "open"}) is None
