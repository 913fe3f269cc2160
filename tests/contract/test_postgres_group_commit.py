"""PostgreSQL's group commit: one-user publishes arriving together share one statement.

What it must keep: each user's seqs gapless and in the order the publishes came, each
idempotency key stored once, and one publish's failure its own, even when its batch was shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.contract.conftest import fresh_database
from tidings.clock import Clock, now_ms
from tidings.models import Draft, Stored
from tidings.store import IdempotencyConflict, StoreUnavailable
from tidings.store.postgres import PostgresStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path, migrated=True) as found:
        yield found


@pytest.fixture
async def nodes(url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two nodes' stores on one database, each counting the batches it writes."""
    clock = Clock(now_ms())
    pair = (PostgresStore(url, clock=clock), PostgresStore(url, clock=clock))
    for store in pair:
        await store.open()
    try:
        yield pair
    finally:
        for store in pair:
            await store.close()


def counting_batches(store: PostgresStore) -> list[int]:
    """The sizes of the batches `store` writes in one statement (the real method, observed)."""
    sizes: list[int] = []
    real = store._add_batch

    async def observed(batch: list[object]) -> list[Stored] | None:
        sizes.append(len(batch))
        return await real(batch)  # type: ignore[arg-type]

    store._add_batch = observed  # type: ignore[assignment,method-assign]
    return sizes


async def test_concurrent_publishes_on_two_nodes_share_statements_and_keep_each_users_order(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    sizes = [counting_batches(store) for store in nodes]
    users = [f"u{i}" for i in range(5)]

    async def node_publishes(node: int) -> list[Stored]:
        # All at once: the first writes alone, the others queue and go in shared statements.
        return await asyncio.gather(
            *(
                nodes[node].add(Draft(user_ids=(users[i % 5],), message=f"n{node}-{i}"))
                for i in range(100)
            )
        )

    results = await asyncio.gather(node_publishes(0), node_publishes(1))
    assert all(sizes), f"no shared statement on a node: batch sizes {sizes}"
    for user in users:
        stored = await nodes[0].after(user, 0, 100)
        assert [n.seq for n in stored] == list(range(1, 41))
        for node in (0, 1):
            # One node's publishes to one user keep the order they came in.
            mine = [n.message for n in stored if n.message.startswith(f"n{node}-")]
            assert mine == sorted(mine, key=lambda m: int(m.split("-")[1]))
    # Each caller was answered with what was stored for it.
    by_message = {n.message: n for user in users for n in await nodes[1].after(user, 0, 100)}
    for answers in results:
        for answer in answers:
            (notification,) = answer.notifications
            assert by_message[notification.message] == notification


async def test_a_shared_batch_with_keys_used_before_or_twice_answers_each_publish_as_alone(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    store, _ = nodes
    sizes = counting_batches(store)
    earlier = await store.add(Draft(user_ids=("alice",), message="first"), "used")
    same = Draft(user_ids=("bob",), message="twice")
    outcomes = await asyncio.gather(
        store.add(Draft(user_ids=("alice",), message="plain 1")),
        store.add(Draft(user_ids=("alice",), message="first"), "used"),
        store.add(same, "twice"),
        store.add(same, "twice"),
        store.add(Draft(user_ids=("alice",), message="other body"), "used"),
        # A value PostgreSQL refuses (the HTTP layer refuses it first): this publish's failure.
        store.add(Draft(user_ids=("bob",), message="nul \x00")),
        store.add(Draft(user_ids=("alice",), message="plain 2")),
        return_exceptions=True,
    )
    assert max(sizes, default=0) > 1, f"the publishes were not batched: {sizes}"
    plain1, replay, bob1, bob2, conflict, refused, plain2 = outcomes
    assert isinstance(replay, Stored)
    assert replay.replayed
    assert replay.notifications == earlier.notifications
    assert isinstance(bob1, Stored)
    assert isinstance(bob2, Stored)
    assert bob1.notifications == bob2.notifications
    assert bob1.replayed != bob2.replayed
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(refused, asyncpg.PostgresError | StoreUnavailable | ValueError)
    assert [n.message for n in await store.after("alice", 0, 10)] == ["first", "plain 1", "plain 2"]
    assert [n.message for n in await store.after("bob", 0, 10)] == ["twice"]
    assert isinstance(plain1, Stored)
    assert isinstance(plain2, Stored)
