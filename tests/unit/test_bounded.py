"""BoundedStore under a reconnect storm on a slow store (issue 22, item 4): catch-up reads may
hold at most half of the node's store slots, so a publish still gets through; on a store that
batches them, they wait in order and go many to a read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from tests.unit.fakes import FakeStore
from tidings.metrics import Metrics
from tidings.models import Draft, Notification, Position, Stored
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


class SlowAdds(FakeStore):
    """A store whose publishes wait until released, each in the order they arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        self.started.append(draft.message)
        await self.release.wait()
        return await super().add(draft, idempotency_key)


async def test_a_freed_slot_goes_to_the_longest_waiter_and_none_is_lost() -> None:
    inner = SlowAdds()
    store = BoundedStore(inner, limit=2, queue_timeout=5)
    first = [asyncio.create_task(store.add(Draft(user_ids=("a",), message=m))) for m in "ab"]
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(store.add(Draft(user_ids=("a",), message=m))) for m in "cde"]
    await asyncio.sleep(0.05)
    assert inner.started == ["a", "b"]  # the others wait for a slot
    waiting[1].cancel()  # a caller that went away while waiting (its client disconnected)
    inner.release.set()
    await asyncio.gather(*first, waiting[0], waiting[2])
    # Served in arrival order, the cancelled one never, and every slot came back.
    assert inner.started == ["a", "b", "c", "e"]
    assert [n.seq for n in await inner.after("a", 0, 10)] == [1, 2, 3, 4]
    more = [store.add(Draft(user_ids=("b",), message="x")) for _ in range(2)]
    stored = await asyncio.wait_for(asyncio.gather(*more), 1)
    assert len(stored) == 2


async def test_a_wait_past_the_queue_timeout_is_refused_and_gives_its_slot_back() -> None:
    inner = SlowAdds()
    store = BoundedStore(inner, limit=1, queue_timeout=0.05)
    held = asyncio.create_task(store.add(Draft(user_ids=("a",), message="held")))
    await asyncio.sleep(0)
    with pytest.raises(StoreUnavailable, match="1 operations in progress"):
        await store.add(Draft(user_ids=("a",), message="late"))
    inner.release.set()
    await held
    # The one slot is free again: the next publish is let in at once.
    stored = await asyncio.wait_for(store.add(Draft(user_ids=("a",), message="next")), 1)
    assert stored.notifications[0].seq == 2


class BatchingStore(FakeStore):
    """A store that answers many users' catch-up reads in one read (`BatchedReads`), slowly:
    each batch waits for `release`, and the batches it was sent are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.batches: list[list[Any]] = []
        self.fail = False

    async def after_many(
        self, requests: Sequence[tuple[str, int, int]]
    ) -> list[list[Notification]]:
        self.batches.append(list(requests))
        await self.release.wait()
        if self.fail:
            raise StoreUnavailable("the fake store is down")
        return [await self.after(*r) for r in requests]

    async def position_many(self, user_ids: Sequence[str]) -> list[Position]:
        self.batches.append(list(user_ids))
        await self.release.wait()
        return [await self.position(u) for u in user_ids]


async def published(inner: FakeStore, users: int) -> None:
    for i in range(users):
        await inner.add(Draft(user_ids=(f"u{i}",), message=f"for u{i}"))


async def test_catch_up_reads_on_a_batching_store_wait_in_order_and_go_in_batches() -> None:
    inner = BatchingStore()
    await published(inner, 150)
    store = BoundedStore(inner, limit=8, queue_timeout=0.2)
    readers = [asyncio.create_task(store.after(f"u{i}", 0, 10)) for i in range(150)]
    positions = [asyncio.create_task(store.position(f"u{i}")) for i in range(3)]
    await asyncio.sleep(0.3)  # past the queue timeout: none is refused while it waits in line
    # The first call of each read went alone; the others queued behind it, in order.
    assert inner.batches == [[("u0", 0, 10)], ["u0"]]
    stored = await asyncio.wait_for(store.add(Draft(user_ids=("a",), message="hi")), 1)
    assert stored.notifications[0].seq == 1
    inner.release.set()
    found = await asyncio.gather(*readers)
    assert [[n.message for n in f] for f in found] == [[f"for u{i}"] for i in range(150)]
    assert [p.last_seq for p in await asyncio.gather(*positions)] == [1, 1, 1]
    after_batches = [b for b in inner.batches if isinstance(b[0], tuple)]
    assert [len(b) for b in after_batches] == [1, 100, 49]
    assert [r[0] for b in after_batches for r in b] == [f"u{i}" for i in range(150)]


async def test_a_batch_whose_first_caller_leaves_still_answers_the_others() -> None:
    inner = BatchingStore()
    await published(inner, 3)
    store = BoundedStore(inner, limit=8, queue_timeout=0.2)
    first = asyncio.create_task(store.after("u0", 0, 10))
    await asyncio.sleep(0)
    others = [asyncio.create_task(store.after(f"u{i}", 0, 10)) for i in (1, 2)]
    await asyncio.sleep(0.05)
    first.cancel()  # its client went away while its batch ran
    await asyncio.sleep(0.05)
    inner.release.set()
    found = await asyncio.wait_for(asyncio.gather(*others), 1)
    assert [[n.message for n in f] for f in found] == [["for u1"], ["for u2"]]
    assert first.cancelled()


async def test_a_failed_batch_fails_each_of_its_reads_and_a_full_queue_sheds_at_once() -> None:
    inner = BatchingStore()
    store = BoundedStore(inner, limit=8, queue_timeout=0.2, catch_up_queue=4)
    # One read goes at once; four wait in line, which is full.
    readers = [asyncio.create_task(store.after(f"u{i}", 0, 10)) for i in range(5)]
    await asyncio.sleep(0.05)
    with pytest.raises(StoreUnavailable, match="TIDINGS_STORE_CATCH_UP_QUEUE"):
        await asyncio.wait_for(store.after("late", 0, 10), 1)
    inner.fail = True
    inner.release.set()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results)
