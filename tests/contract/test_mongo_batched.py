"""The MongoDB store's batched catch-up reads (`after_many`, `position_many`; issue 22, item 4)
answer exactly as `after` and `position` do, user by user, on FerretDB: deleted, snoozed and
expired notifications absent, a range the batch cannot answer for certain read alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.conftest import fresh_database
from tidings.clock import Clock, now_ms
from tidings.models import Draft, Notification
from tidings.store import create_store
from tidings.store.mongo import MongoStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def mongo(tmp_path: Path) -> AsyncIterator[tuple[MongoStore, Clock]]:
    clock = Clock(now_ms())
    with fresh_database("mongodb", tmp_path, migrated=True) as url:
        store = create_store(url, clock=clock)
        assert isinstance(store, MongoStore)
        await store.open()
        try:
            yield store, clock
        finally:
            await store.close()


async def test_batched_reads_answer_as_the_single_ones(
    mongo: tuple[MongoStore, Clock],
) -> None:
    store, clock = mongo
    # A broadcast (over 100 users: their floors stay at 0), then a few to one user each.
    crowd = tuple(f"c{i}" for i in range(120))
    await store.add(Draft(user_ids=crowd, message="to all"))
    for i in range(8):
        await store.add(Draft(user_ids=("alice",), message=f"a{i + 1}"))
    for i in range(3):
        await store.add(Draft(user_ids=("bob",), message=f"b{i + 1}"))
    await store.add(Draft(user_ids=("bob",), message="soon gone", expires_ms=clock.now_ms() + 10))
    await store.add(Draft(user_ids=("bob",), message="b5"))
    assert await store.delete("alice", 3)
    assert await store.snooze("alice", [5], clock.now_ms() + 60_000) == [5]
    clock.advance(20)  # bob's 4 expired
    requests = [
        ("alice", 0, 100),
        ("alice", 2, 100),
        ("alice", 0, 3),  # a full range with a tombstone in it: read alone
        ("alice", 4, 2),  # a full range with a snoozed one in it: read alone
        ("alice", 8, 100),
        ("bob", 1, 100),
        ("c7", 0, 100),
        ("nobody", 0, 100),
        ("alice", 9, 100),  # ahead of the log
    ]
    alone: list[tuple[str, int, int]] = []
    after = store.after

    async def counted(user_id: str, seq: int, limit: int) -> list[Notification]:
        alone.append((user_id, seq, limit))
        return await after(user_id, seq, limit)

    store.after = counted  # type: ignore[method-assign]
    batched = await store.after_many(requests)
    # Only the two full ranges with a hidden notification in them were read alone.
    assert alone == [("alice", 0, 3), ("alice", 4, 2)]
    single = [await after(*r) for r in requests]
    assert batched == single
    assert [n.message for n in batched[0]] == ["a1", "a2", "a4", "a6", "a7", "a8"]
    assert [n.seq for n in batched[5]] == [2, 3, 5]
    users = ["alice", "bob", "c7", "nobody", "alice"]
    assert await store.position_many(users) == [await store.position(u) for u in users]
    assert [p.last_seq for p in await store.position_many(users)] == [8, 5, 1, 0, 8]
