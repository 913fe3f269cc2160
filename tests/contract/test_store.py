"""One store contract, run unchanged against SQLite, PostgreSQL and a MongoDB-protocol server."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, cast

import pytest

from tests.contract.conftest import STORES
from tidings.clock import Clock
from tidings.models import Action, Actor, Draft, Notification, Stored
from tidings.store import IdempotencyConflict, Store, StoreUnavailable, create_store
from tidings.store.bounded import BoundedStore

pytestmark = pytest.mark.anyio

# Keys FerretDB refuses in a document, nested arrays, and text beyond ASCII: all must round-trip.
AWKWARD_DATA: dict[str, Any] = {
    "a.b": 1,
    "$dollar": "x",
    "nested": [[1, 2], [3, [4]]],
    "text": 'héllo ✓ \n"quoted"',
    "empty": {},
    "null": None,
    "float": 1.5,
}


async def add(store: Store, user: str | tuple[str, ...], message: str = "m", **kw: Any) -> int:
    users = (user,) if isinstance(user, str) else user
    stored = await store.add(Draft(user_ids=users, message=message, **kw))
    return stored.notifications[0].seq


async def add_many(store: Store, user: str, count: int) -> None:
    for i in range(count):
        await add(store, user, f"n{i + 1}")


def seqs(found: list[Notification]) -> list[int]:
    return [n.seq for n in found]


async def test_add_assigns_seqs_per_user_and_round_trips_every_field(
    store: Store, clock: Clock
) -> None:
    stored = await store.add(
        Draft(
            user_ids=("alice",),
            message="hello ✓",
            link="https://example.com/x?y=1",
            kind="comment",
            data=AWKWARD_DATA,
        )
    )
    assert not stored.replayed
    [made] = stored.notifications
    assert (made.user_id, made.seq, made.read_ms) == ("alice", 1, None)
    assert made.created_ms == clock.now_ms()
    [found] = await store.after("alice", 0, 10)
    assert found == made
    assert found.data == AWKWARD_DATA
    assert await add(store, "alice") == 2
    assert await add(store, "bob") == 1
    plain = await store.add(Draft(user_ids=("carol",), message="plain"))
    [got] = await store.after("carol", 0, 10)
    assert (got.link, got.kind, got.data) == (None, None, {})
    assert got == plain.notifications[0]


async def test_after_replays_exactly_the_seqs_after_the_resume_point(store: Store) -> None:
    await add_many(store, "alice", 7)
    assert seqs(await store.after("alice", 0, 100)) == [1, 2, 3, 4, 5, 6, 7]
    assert seqs(await store.after("alice", 4, 100)) == [5, 6, 7]
    assert seqs(await store.after("alice", 2, 3)) == [3, 4, 5]
    assert await store.after("alice", 7, 100) == []
    assert await store.after("nobody", 0, 100) == []
    position = await store.position("alice")
    assert (position.last_seq, position.pruned_upto) == (7, 0)
    empty = await store.position("nobody")
    assert (empty.last_seq, empty.pruned_upto) == (0, 0)


async def test_pages_are_newest_first_and_continue_before_a_seq(store: Store) -> None:
    await add_many(store, "alice", 25)
    first = await store.page("alice", limit=10, before=None, unread_only=False)
    assert seqs(first) == list(range(25, 15, -1))
    second = await store.page("alice", limit=10, before=16, unread_only=False)
    assert seqs(second) == list(range(15, 5, -1))
    last = await store.page("alice", limit=10, before=6, unread_only=False)
    assert seqs(last) == [5, 4, 3, 2, 1]
    assert await store.page("alice", limit=10, before=1, unread_only=False) == []
    assert [n.message for n in last] == ["n5", "n4", "n3", "n2", "n1"]


async def test_unread_filter_and_count(store: Store) -> None:
    await add_many(store, "alice", 6)
    assert await store.unread_count("alice") == 6
    assert await store.mark_read("alice", ids=[2, 4]) == [2, 4]
    assert await store.unread_count("alice") == 4
    unread = await store.page("alice", limit=10, before=None, unread_only=True)
    assert seqs(unread) == [6, 5, 3, 1]
    assert seqs(await store.page("alice", limit=2, before=5, unread_only=True)) == [3, 1]
    everything = await store.page("alice", limit=10, before=None, unread_only=False)
    read = {n.seq for n in everything if n.read_ms is not None}
    assert read == {2, 4}
    assert await store.unread_count("nobody") == 0


async def test_mark_read_by_ids_and_up_to_reports_only_what_changed(store: Store) -> None:
    await add_many(store, "alice", 5)
    await add_many(store, "bob", 5)
    assert await store.mark_read("alice", ids=[1, 3, 99]) == [1, 3]
    assert await store.mark_read("alice", ids=[1, 3]) == []
    assert await store.mark_read("alice", up_to=4) == [2, 4]
    assert await store.unread_count("alice") == 1
    # A notification that arrives after the client's "mark all read" stays unread.
    await add(store, "alice")
    assert await store.mark_read("alice", up_to=5) == [5]
    assert await store.unread_count("alice") == 1
    assert await store.mark_read("alice", ids=[]) == []
    assert await store.unread_count("bob") == 5


async def test_delete_removes_one_and_never_frees_its_seq(store: Store) -> None:
    await add_many(store, "alice", 3)
    assert await store.delete("alice", 2) is True
    assert await store.delete("alice", 2) is False
    assert await store.delete("alice", 42) is False
    assert seqs(await store.after("alice", 0, 10)) == [1, 3]
    # Deleting the newest must not let the next publish reuse its seq (a client holds it).
    assert await store.delete("alice", 3) is True
    assert await add(store, "alice") == 4
    assert (await store.position("alice")).last_seq == 4


async def test_users_are_isolated(store: Store) -> None:
    await add_many(store, "alice", 3)
    await add_many(store, "bob", 2)
    assert await store.mark_read("bob", ids=[1, 2, 3]) == [1, 2]
    assert await store.mark_read("bob", up_to=3) == []
    assert await store.unread_count("alice") == 3
    assert await store.delete("bob", 3) is False
    assert seqs(await store.after("alice", 0, 10)) == [1, 2, 3]
    assert {n.user_id for n in await store.after("bob", 0, 10)} == {"bob"}
    assert {
        n.user_id for n in await store.page("alice", limit=10, before=None, unread_only=False)
    } == {"alice"}
    # User ids are opaque: a prefix or a different case is another user.
    await add(store, "Alice")
    await add(store, "alice2")
    assert (await store.position("alice")).last_seq == 3


async def test_a_repeated_idempotency_key_returns_the_original_and_stores_nothing(
    store: Store,
) -> None:
    draft = Draft(user_ids=("alice", "bob"), message="once", data={"k": 1})
    first = await store.add(draft, "key-1")
    again = await store.add(draft, "key-1")
    assert not first.replayed
    assert again.replayed
    assert again.notifications == first.notifications
    assert (await store.position("alice")).last_seq == 1
    other = await store.add(Draft(user_ids=("alice",), message="other"), "key-2")
    assert other.notifications[0].seq == 2
    assert seqs(await store.after("alice", 0, 10)) == [1, 2]


async def test_a_many_user_publish_gives_each_user_the_next_seq_and_round_trips(
    store: Store, clock: Clock
) -> None:
    # Past the SQLite store's set-based path (BULK_MIN): users with a history and new ones,
    # in an order that is not sorted, every field set.
    await add_many(store, "u7", 3)
    await add(store, "u40", "first")
    users = tuple(f"u{i}" for i in reversed(range(80)))
    draft = Draft(
        user_ids=users,
        message="to many ✓",
        link="/m",
        kind="k",
        data=AWKWARD_DATA,
        category="news",
        actor=Actor(name="Ann \u2028", avatar_url="https://example.com/a.png"),
        actions=(Action(label="Open", url="/open"),),
        group="g1",
    )
    stored = await store.add(draft, "many-1")
    got = {n.user_id: n for n in stored.notifications}
    assert [n.user_id for n in stored.notifications] == list(users)
    assert (got["u7"].seq, got["u40"].seq, got["u0"].seq) == (4, 2, 1)
    for n in stored.notifications:
        # What the stream sends is the notification's own encoding.
        assert n.line == n.dumps()
        assert n.created_ms == clock.now_ms()
        [back] = await store.after(n.user_id, n.seq - 1, 10)
        assert back.dumps() == n.dumps()
    again = await store.add(draft, "many-1")
    assert again.replayed
    assert sorted((n.user_id, n.seq) for n in again.notifications) == sorted(
        (n.user_id, n.seq) for n in stored.notifications
    )
    assert (await store.position("u7")).last_seq == 4
    more = await store.add(Draft(user_ids=users, message="again"))
    assert {n.user_id: n.seq for n in more.notifications}["u7"] == 5


async def test_a_key_reused_with_a_different_body_is_refused_and_stores_nothing(
    store: Store,
) -> None:
    draft = Draft(user_ids=("alice", "bob"), message="once", link="/a", data={"k": 1})
    first = await store.add(draft, "key-1")
    different = [
        Draft(user_ids=("alice", "bob"), message="twice", link="/a", data={"k": 1}),
        Draft(user_ids=("alice",), message="once", link="/a", data={"k": 1}),
        Draft(user_ids=("alice", "bob"), message="once", link="/b", data={"k": 1}),
        Draft(user_ids=("alice", "bob"), message="once", link="/a", kind="x", data={"k": 1}),
        Draft(user_ids=("alice", "bob"), message="once", link="/a", data={"k": 2}),
    ]
    for other in different:
        with pytest.raises(IdempotencyConflict, match="key-1"):
            await store.add(other, "key-1")
    same = Draft(user_ids=("alice", "bob"), message="once", link="/a", data={"k": 1})
    again = await store.add(same, "key-1")
    assert again.replayed
    assert again.notifications == first.notifications
    for user in ("alice", "bob"):
        assert seqs(await store.after(user, 0, 10)) == [1]
        assert (await store.position(user)).last_seq == 1
    # The same body with its data keys in another order is the same publish.
    reordered = Draft(user_ids=("u",), message="m", data={"a": 1, "b": [1, {"c": 2, "d": 3}]})
    await store.add(reordered, "key-2")
    swapped = Draft(user_ids=("u",), message="m", data={"b": [1, {"d": 3, "c": 2}], "a": 1})
    assert (await store.add(swapped, "key-2")).replayed


async def test_concurrent_calls_with_one_idempotency_key_store_once(store: Store) -> None:
    draft = Draft(user_ids=("alice",), message="once")
    results = await asyncio.gather(*(store.add(draft, "same") for _ in range(5)))
    assert sum(not r.replayed for r in results) == 1
    assert {r.notifications[0].seq for r in results} == {1}
    assert seqs(await store.after("alice", 0, 10)) == [1]


async def test_prune_deletes_oldest_in_bounded_batches_and_records_pruned_upto(
    store: Store, clock: Clock
) -> None:
    await add_many(store, "alice", 5)
    await add_many(store, "bob", 2)
    clock.advance(10)
    cutoff = clock.now_ms()
    await add(store, "alice", "fresh")
    assert await store.prune(cutoff, 3) == 3
    assert seqs(await store.after("alice", 0, 10)) == [4, 5, 6]
    position = await store.position("alice")
    assert (position.last_seq, position.pruned_upto) == (6, 3)
    total = 0
    while (count := await store.prune(cutoff, 3)) > 0:
        total += count
    assert total == 4
    assert seqs(await store.after("alice", 0, 10)) == [6]
    assert (await store.position("alice")).pruned_upto == 5
    assert await store.after("bob", 0, 10) == []
    bob = await store.position("bob")
    assert (bob.last_seq, bob.pruned_upto) == (2, 2)
    # A pruned seq is never handed out again, even when it was the user's newest.
    assert await add(store, "bob") == 3


async def test_an_old_idempotency_key_is_pruned(store: Store, clock: Clock) -> None:
    await store.add(Draft(user_ids=("alice",), message="x"), "old-key")
    clock.advance(10)
    await store.prune(clock.now_ms(), 100)
    again = await store.add(Draft(user_ids=("alice",), message="x"), "old-key")
    assert not again.replayed
    assert again.notifications[0].seq == 2


@pytest.mark.slow
async def test_a_batch_to_10000_users_is_one_write_per_user(store: Store) -> None:
    users = tuple(f"u{i}" for i in range(10_000))
    began = time.monotonic()
    stored = await store.add(Draft(user_ids=users, message="broadcast"))
    elapsed = time.monotonic() - began
    assert [n.user_id for n in stored.notifications] == list(users)
    assert {n.seq for n in stored.notifications} == {1}
    again = await store.add(Draft(user_ids=(*users[:3], "newcomer"), message="second"))
    assert [n.seq for n in again.notifications] == [2, 2, 2, 1]
    assert seqs(await store.after("u9999", 0, 10)) == [1]
    assert (await store.position("u5000")).last_seq == 1
    assert elapsed < 120, f"a 10,000-user batch took {elapsed:.1f}s"


@pytest.mark.slow
# The databases only: the in-memory store is one process's by design.
@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_concurrent_publishers_in_several_processes_get_gapless_commit_ordered_seqs(
    store_url: str, store: Store
) -> None:
    workers, each = 4, 40
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.contract.publisher",
            store_url,
            "hot",
            f"other{w}",
            str(each),
        )
        for w in range(workers)
    ]
    # Watch while they write: a seq must never be visible before every smaller one.
    seen: list[int] = []
    waiting = [asyncio.create_task(p.wait()) for p in procs]
    try:
        async with asyncio.timeout(180):
            while True:
                done = all(t.done() for t in waiting)
                found = seqs(await store.after("hot", seen[-1] if seen else 0, 1000))
                expected = list(range(len(seen) + 1, len(seen) + 1 + len(found)))
                assert found == expected, f"saw {found} after {len(seen)}: a gap"
                seen.extend(found)
                if done:
                    break
                await asyncio.sleep(0.02)
    finally:
        for task in waiting:
            task.cancel()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert [p.returncode for p in procs] == [0] * workers
    assert seen == list(range(1, workers * each + 1))
    assert (await store.position("hot")).last_seq == workers * each
    for w in range(workers):
        assert seqs(await store.after(f"other{w}", 0, 100)) == list(range(1, each // 3 + 1))


async def test_a_deleted_seq_is_never_handed_out_again(store: Store) -> None:
    await add_many(store, "alice", 3)
    assert await store.delete("alice", 3) is True
    assert await add(store, "alice") == 4


async def test_a_deleted_notification_is_gone_from_every_read(store: Store, clock: Clock) -> None:
    await add(store, "alice", "one")
    keyed = await store.add(Draft(user_ids=("alice",), message="two"), "key-2")
    await add(store, "alice", "three")
    assert await store.delete("alice", 2) is True
    assert await store.delete("alice", 3) is True
    assert seqs(await store.after("alice", 0, 10)) == [1]
    assert seqs(await store.after("alice", 1, 10)) == []
    assert seqs(await store.page("alice", limit=10, before=None, unread_only=False)) == [1]
    assert seqs(await store.page("alice", limit=10, before=None, unread_only=True)) == [1]
    assert await store.unread_count("alice") == 1
    assert await store.mark_read("alice", ids=[2, 3]) == []
    assert await store.mark_read("alice", up_to=3) == [1]
    replay = await store.add(Draft(user_ids=("alice",), message="two"), "key-2")
    assert replay.replayed
    assert keyed.notifications[0].seq == 2
    assert replay.notifications == ()
    assert (await store.position("alice")).last_seq == 3
    # Pruning takes the deleted ones with the rest, and still never hands their seqs out.
    while await store.prune(clock.now_ms() + 1, 2) > 0:
        pass
    assert await store.after("alice", 0, 10) == []
    assert (await store.position("alice")).pruned_upto >= 1
    assert await add(store, "alice") == 4


@pytest.mark.slow
async def test_prune_alongside_multi_user_publishes_never_fails(store: Store, clock: Clock) -> None:
    users = [f"u{i:02d}" for i in range(16)]
    # Old notifications created round-robin in descending user order: a prune batch meets its
    # users in the reverse of the order a multi-user publish locks them.
    for _ in range(6):
        for user in reversed(users):
            await add(store, user, "old")
    clock.advance(10)
    cutoff = clock.now_ms()
    got: dict[str, list[int]] = {u: [] for u in users}

    async def publish(rounds: int) -> None:
        for i in range(rounds):
            stored = await store.add(Draft(user_ids=tuple(users), message=f"new {i}"))
            for n in stored.notifications:
                got[n.user_id].append(n.seq)

    async def prune() -> int:
        total = 0
        while (count := await store.prune(cutoff, 3)) > 0:
            total += count
        return total

    async with asyncio.timeout(120):
        results = await asyncio.gather(publish(15), publish(15), publish(15), prune(), prune())
    assert sum(results[3:]) == 6 * len(users)
    for user in users:
        assert sorted(got[user]) == list(range(7, 7 + 45)), user
        assert seqs(await store.after(user, 0, 100)) == list(range(7, 7 + 45))
        position = await store.position(user)
        assert (position.last_seq, position.pruned_upto) == (6 + 45, 6)


class Stalled:
    """A real store whose `after` waits for the test first: a query the database sits on."""

    # Not a batching store (store/bounded.py's `BatchedReads`, which MongoDB's is): there the
    # catch-up reads wait in line instead (tests/unit/test_bounded.py); this is about slots.
    after_many = None
    position_many = None

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        await self.release.wait()
        return await self.inner.after(user_id, seq, limit)

    async def unread_count(self, user_id: str) -> int:
        await self.release.wait()
        return await self.inner.unread_count(user_id)


async def test_past_the_concurrency_limit_work_is_refused_at_once_not_queued(
    store: Store,
) -> None:
    stalled = Stalled(store)
    bounded = BoundedStore(cast(Store, stalled), limit=2, queue_timeout=0.2)
    # A catch-up read (it may hold at most half the slots) and an ordinary one fill both.
    held: list[asyncio.Task[Any]] = [
        asyncio.create_task(bounded.after("alice", 0, 10)),
        asyncio.create_task(bounded.unread_count("alice")),
    ]
    await asyncio.sleep(0)  # let both take their slots
    began = time.monotonic()
    with pytest.raises(StoreUnavailable, match="busy"):
        await bounded.add(Draft(user_ids=("alice",), message="refused"))
    with pytest.raises(StoreUnavailable, match="busy"):
        await bounded.position("alice")
    # Readiness is not business: the database still answers, so /readyz must say so.
    await bounded.ping()
    assert time.monotonic() - began < 2
    assert await store.after("alice", 0, 10) == []
    stalled.release.set()
    assert await asyncio.gather(*held) == [[], 0]
    # The slots are free again.
    assert await add(bounded, "alice", "after") == 1
    assert seqs(await bounded.after("alice", 0, 10)) == [1]


# The databases only: two nodes are two stores on one database.
@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_two_nodes_publishing_keyed_and_plain_to_one_user_keep_seq_gapless_and_keys_once(
    store_url: str, store: Store, clock: Clock
) -> None:
    other = create_store(store_url, clock=clock)
    await other.open()
    try:
        nodes = (store, other)

        async def publish(i: int, node: int) -> tuple[str | None, Stored]:
            # Every third publish has a key, and each key is sent by both nodes (a client's
            # retry landing on another node while its first call is in flight).
            key = f"k{i // 3}" if i % 3 == 0 else None
            draft = Draft(user_ids=("hot",), message=f"m{i}" if key is None else key)
            for _ in range(100):
                try:
                    return key, await nodes[node].add(draft, key)
                except StoreUnavailable:
                    # A store may answer 503 while the key's first call is in flight (MongoDB);
                    # the client retries with the same key, as tidings.client does.
                    await asyncio.sleep(0.02)
            raise AssertionError(f"publish {i} was refused 100 times")

        first = [publish(i, i % 2) for i in range(60)]
        retries = [publish(i, (i + 1) % 2) for i in range(0, 60, 3)]
        results = await asyncio.gather(*first, *retries)
    finally:
        await other.close()
    by_key: dict[str, set[int]] = {}
    for key, stored in results:
        if key is not None:
            by_key.setdefault(key, set()).add(stored.notifications[0].seq)
    # Each key stored once: its first call and its retry answer the same notification.
    assert all(len(found) == 1 for found in by_key.values()), by_key
    stored_seqs = seqs(await store.after("hot", 0, 100))
    assert stored_seqs == list(range(1, 61))
    assert (await store.position("hot")).last_seq == 60
    kept = {n.seq: n.message for n in await store.after("hot", 0, 100)}
    for key, found in by_key.items():
        assert kept[found.pop()] == key
