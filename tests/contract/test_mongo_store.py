"""MongoDB store races that need a second writer between two steps of one publish.

The interleaving is forced by overriding one of the store's own steps; every read and write
still goes to the real server (MongoDB or FerretDB).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pymongo.errors import AutoReconnect

from tests.contract.conftest import fresh_database
from tidings.clock import Clock
from tidings.models import Draft, Notification, Stored
from tidings.store import StoreUnavailable
from tidings.store.factory import mongo_database
from tidings.store.mongo import IDEMPOTENCY_WAIT, Doc, MongoStore

pytestmark = pytest.mark.anyio

S = TypeVar("S", bound=MongoStore)


@pytest.fixture
def mongo_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("mongodb", tmp_path) as url:
        yield url


class Raced(MongoStore):
    """Runs `race` once, between reading the users' highest seq and inserting the next one."""

    race: Callable[[], Awaitable[None]] | None = None

    async def _taken(
        self, user_ids: Sequence[str], *, guess: bool = False, known: dict[str, int] | None = None
    ) -> dict[str, int]:
        taken = await super()._taken(user_ids, guess=guess, known=known)
        if self.race is not None:
            race, self.race = self.race, None
            await race()
        return taken


class LostReply(MongoStore):
    """The connection drops once: after the first document of an insert, or after the refs."""

    fail_insert = False
    fail_refs = False

    async def _insert_chunk(self, docs: Sequence[Doc]) -> list[str]:
        if self.fail_insert:
            self.fail_insert = False
            await super()._insert_chunk(docs[:1])
            raise AutoReconnect("connection lost")
        return await super()._insert_chunk(docs)

    async def _record_refs(self, key: str, owner: str, made: Sequence[Notification]) -> None:
        if self.fail_refs:
            self.fail_refs = False
            raise AutoReconnect("connection lost")
        await super()._record_refs(key, owner, made)


async def opened(store: S) -> S:
    await store.open()
    return store


async def test_a_seq_seen_and_deleted_meanwhile_is_not_reused(mongo_url: str) -> None:
    name = mongo_database(mongo_url)
    publisher = await opened(Raced(mongo_url, name))
    other = await opened(MongoStore(mongo_url, name))
    try:
        for i in range(4):
            await other.add(Draft(user_ids=("alice",), message=f"n{i + 1}"))

        async def store_and_delete_5() -> None:
            [five] = (await other.add(Draft(user_ids=("alice",), message="five"))).notifications
            assert five.seq == 5
            assert await other.delete("alice", 5) is True

        publisher.race = store_and_delete_5
        [made] = (await publisher.add(Draft(user_ids=("alice",), message="late"))).notifications
        assert made.seq == 6
        assert [n.seq for n in await other.after("alice", 4, 10)] == [6]
        assert (await other.position("alice")).last_seq == 6
    finally:
        await publisher.close()
        await other.close()


@pytest.mark.parametrize("where", ["insert", "refs"])
async def test_a_retry_after_a_failure_midway_stores_nothing_twice(
    mongo_url: str, where: str
) -> None:
    name = mongo_database(mongo_url)
    failing = await opened(LostReply(mongo_url, name))
    store = await opened(MongoStore(mongo_url, name))
    draft = Draft(user_ids=("alice", "bob"), message="once")
    try:
        failing.fail_insert = where == "insert"
        failing.fail_refs = where == "refs"
        with pytest.raises(StoreUnavailable):
            await failing.add(draft, "key")
        retried = await store.add(draft, "key")
        # Completed, not replayed: the caller announces what the failed attempt never did.
        assert not retried.replayed
        assert [(n.user_id, n.seq) for n in retried.notifications] == [("alice", 1), ("bob", 1)]
        for user in ("alice", "bob"):
            assert [n.seq for n in await store.after(user, 0, 10)] == [1]
        again = await failing.add(draft, "key")
        assert again.replayed
        assert again.notifications == retried.notifications
        assert (await store.add(Draft(user_ids=("alice",), message="next"))).notifications[
            0
        ].seq == 2
    finally:
        await failing.close()
        await store.close()


class Paused(MongoStore):
    """Stops between owning an idempotency key and inserting, until the test lets it go: a node
    whose commands are slow (but within the driver's timeout)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claimed = asyncio.Event()
        self.resume = asyncio.Event()

    async def _claim_key(self, key: str, draft: Draft) -> tuple[str, Stored | None, bool]:
        claim = await super()._claim_key(key, draft)
        self.claimed.set()
        await self.resume.wait()
        return claim


@pytest.mark.parametrize("users", [("alice",), ("alice", "bob", "carol")])
async def test_a_key_taken_over_from_a_slow_node_is_stored_once(
    mongo_url: str, users: tuple[str, ...]
) -> None:
    name = mongo_database(mongo_url)
    slow = await opened(Paused(mongo_url, name, takeover_ms=200))
    # The retrying node's clock is past the takeover age: no sleeping for it to pass.
    later = Clock()
    fast = await opened(MongoStore(mongo_url, name, takeover_ms=200, clock=later))
    draft = Draft(user_ids=users, message="once")
    try:
        first = asyncio.create_task(slow.add(draft, "key"))
        await asyncio.wait_for(slow.claimed.wait(), 10)
        later.set(slow.clock.now_ms() + 1000)
        retried = await fast.add(draft, "key")
        slow.resume.set()
        late = await asyncio.wait_for(first, 10)
        # One notification per user, and both callers answer with it.
        assert [(n.user_id, n.seq) for n in retried.notifications] == [(u, 1) for u in users]
        assert late.notifications == retried.notifications
        for user in users:
            assert [n.seq for n in await fast.after(user, 0, 10)] == [1]
            assert (await fast.position(user)).last_seq == 1
        replay = await fast.add(draft, "key")
        assert replay.replayed
        assert replay.notifications == retried.notifications
    finally:
        slow.resume.set()
        await slow.close()
        await fast.close()


async def test_the_slow_node_inserting_first_still_stores_once(mongo_url: str) -> None:
    """The other order: the slow node's insert lands while the new owner is recovering."""
    name = mongo_database(mongo_url)
    slow = await opened(Paused(mongo_url, name, takeover_ms=200))
    later = Clock()
    fast = await opened(Raced(mongo_url, name, takeover_ms=200, clock=later))
    draft = Draft(user_ids=("alice", "bob"), message="once")
    try:
        first = asyncio.create_task(slow.add(draft, "key"))
        await asyncio.wait_for(slow.claimed.wait(), 10)
        later.set(slow.clock.now_ms() + 1000)

        async def slow_node_inserts() -> None:
            slow.resume.set()
            await asyncio.wait_for(asyncio.shield(first), 10)

        # Between the new owner reading the users' seqs and inserting, the slow node inserts.
        fast.race = slow_node_inserts
        retried = await fast.add(draft, "key")
        late = await first
        assert [(n.user_id, n.seq) for n in late.notifications] == [("alice", 1), ("bob", 1)]
        assert retried.notifications == late.notifications
        for user in ("alice", "bob"):
            assert [n.seq for n in await fast.after(user, 0, 10)] == [1]
    finally:
        slow.resume.set()
        await slow.close()
        await fast.close()


async def test_a_key_left_in_flight_by_a_crashed_node_completes_on_the_first_retry(
    mongo_url: str,
) -> None:
    """A retry of a key whose node crashed mid-publish is not told `503 still in progress`
    for a minute: it waits out the short takeover age and completes the publish itself."""
    name = mongo_database(mongo_url)
    crashed = await opened(Paused(mongo_url, name))
    store = await opened(MongoStore(mongo_url, name))
    draft = Draft(user_ids=("alice",), message="once")
    try:
        never_finishes = asyncio.create_task(crashed.add(draft, "key"))
        await asyncio.wait_for(crashed.claimed.wait(), 10)
        began = time.monotonic()
        retried = await store.add(draft, "key")
        elapsed = time.monotonic() - began
        assert not retried.replayed
        assert [(n.user_id, n.seq) for n in retried.notifications] == [("alice", 1)]
        assert elapsed < IDEMPOTENCY_WAIT + 2, f"the retry took {elapsed:.1f}s"
        crashed.resume.set()
        assert (await never_finishes).notifications == retried.notifications
        assert [n.seq for n in await store.after("alice", 0, 10)] == [1]
    finally:
        crashed.resume.set()
        await crashed.close()
        await store.close()


class DiesBeforeMarking(MongoStore):
    """The connection drops once after a delivery stored its notifications, before the rows
    are marked delivered: what a node that dies between the two steps leaves behind."""

    fail_mark = False

    async def _mark(self, key: str, users: Sequence[str], state: str, stamp: int) -> None:
        if self.fail_mark and state == "delivered":
            self.fail_mark = False
            raise AutoReconnect("connection lost")
        await super()._mark(key, users, state, stamp)


async def test_a_delivery_stored_but_not_marked_is_stored_once_by_the_next_node(
    mongo_url: str,
) -> None:
    clock = Clock(time.time_ns() // 1_000_000)
    store = await opened(DiesBeforeMarking(mongo_url, mongo_database(mongo_url), clock=clock))
    try:
        users = ("alice", "bob")
        draft = Draft(user_ids=users, message="later", deliver_ms=clock.now_ms() + 1_000)
        await store.schedule(draft, "k1")
        clock.advance(1_000)
        rows = await store.claim_due(30_000, 10)
        store.fail_mark = True
        with pytest.raises(StoreUnavailable):
            await store.deliver(rows)
        # Stored, not marked: the rows are still pending, claimed again once the lease ran out.
        assert [n.seq for n in await store.after("alice", 0, 10)] == [1]
        clock.advance(30_001)
        again = await store.claim_due(30_000, 10)
        assert sorted(r.user_id for r in again) == ["alice", "bob"]
        [stored] = await store.deliver(again)
        assert sorted((n.user_id, n.seq) for n in stored.notifications) == [
            ("alice", 1),
            ("bob", 1),
        ]
        for user in users:
            assert [n.seq for n in await store.after(user, 0, 10)] == [1]
        assert await store.claim_due(30_000, 10) == []
        assert await store.cancel_scheduled("k1") == (0, ("delivered",))
    finally:
        await store.close()


async def test_a_retry_completing_a_schedule_keeps_the_first_calls_place_in_the_order(
    mongo_url: str,
) -> None:
    """A first call that stopped after some users' rows: the retry adds the others with the first
    call's stamp, so a key scheduled in between, due at the same instant, comes after it."""
    clock = Clock(time.time_ns() // 1_000_000)
    store = await opened(MongoStore(mongo_url, mongo_database(mongo_url), clock=clock))
    try:
        due = clock.now_ms() + 1_000
        first = Draft(user_ids=("alice", "bob"), message="first", deliver_ms=due)
        await store.schedule(first, "k-first")
        # What a first call that stopped midway leaves: bob's row missing.
        await store._scheduled.delete_one({"key": "k-first", "user_id": "bob"})
        clock.advance(5)
        await store.schedule(Draft(user_ids=("bob",), message="between", deliver_ms=due), "k-a")
        clock.advance(5)
        retried = await store.schedule(first, "k-first")
        assert retried is not None
        assert not retried.replayed
        clock.advance(1_000)
        claimed = await store.claim_due(30_000, 10)
        assert [d.draft.message for d in claimed if d.user_id == "bob"] == ["first", "between"]
    finally:
        await store.close()


PUBLISHES_BESIDE_PRUNES = 200


async def test_two_nodes_publishing_and_pruning_one_user_leave_no_unannounced_hole(
    mongo_url: str,
) -> None:
    """One node publishes to a user while another prunes that user's oldest notifications.

    On FerretDB v1 an update rewrites the whole user document from what it read, so a
    publisher's floor hint could write back a `pruned_upto` the pruner had just raised, in
    another process, where no lock of the store reaches: the notifications pruned meanwhile
    would then be a hole that `position` does not announce. On MongoDB each update is atomic.
    """
    name = mongo_database(mongo_url)
    publisher = await opened(MongoStore(mongo_url, name))
    pruner = await opened(MongoStore(mongo_url, name))
    try:
        for i in range(5):
            await publisher.add(Draft(user_ids=("alice",), message=f"n{i}"))

        async def publish() -> None:
            # Bounded: unbounded, a fast publisher grew the collection faster than FerretDB's
            # prunes and reads of it could keep up on a busy machine (100,000 rows in minutes).
            for _ in range(PUBLISHES_BESIDE_PRUNES):
                await publisher.add(Draft(user_ids=("alice",), message="more"))

        async def pruned_upto_and_lowest() -> tuple[int, int]:
            pruned = (await pruner.position("alice")).pruned_upto
            [lowest] = await pruner.after("alice", 0, 1)
            return pruned, lowest.seq

        task = asyncio.create_task(publish())
        try:
            for _ in range(20):
                assert await pruner.prune(Clock().now_ms() + 60_000, 1) == 1
                # At or below pruned_upto may be gone; everything above it must be there.
                pruned, lowest = await pruned_upto_and_lowest()
                assert lowest == pruned + 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pruned, lowest = await pruned_upto_and_lowest()
        assert lowest == pruned + 1
    finally:
        await publisher.close()
        await pruner.close()


async def test_a_prune_takes_over_the_turn_of_a_node_that_died_holding_it(mongo_url: str) -> None:
    """FerretDB: the turn to raise `pruned_upto` is leased, so a node that died holding it
    (its turn never marked done) stops the others' pruning only until the lease runs out."""
    name = mongo_database(mongo_url)
    store = await opened(MongoStore(mongo_url, name))
    try:
        if not store._ferret:
            pytest.skip("MongoDB raises pruned_upto atomically: no turns")
        for i in range(3):
            await store.add(Draft(user_ids=("alice",), message=f"n{i}"))
        turns = store._db["turns"]
        # The dead node's turn: taken, never done, its lease over a moment ago.
        await turns.insert_one({"_id": 7, "until_ms": int(time.time() * 1000) - 1})
        async with asyncio.timeout(10):  # without a takeover it would wait for ever
            assert await store.prune(Clock().now_ms() + 60_000, 1) == 1
        assert (await store.position("alice")).pruned_upto == 1
        assert await turns.find_one({"_id": 8}) == {
            "_id": 8,
            "until_ms": pytest.approx(int(time.time() * 1000) + 30_000, abs=10_000),
            "done": True,
        }
    finally:
        await store.close()
