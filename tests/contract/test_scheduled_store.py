"""Scheduled notifications and expiry in the store contract, on every store: rows kept out of
sight until due, claimed with a lease, delivered once, cancelled, pruned; expired ones left out of
the replay. The store's clock is set, never waited for."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tidings.clock import Clock
from tidings.models import Draft, Due
from tidings.store import IdempotencyConflict, Store

pytestmark = pytest.mark.anyio

LEASE = 30_000


def later(clock: Clock, ms: int, **fields: object) -> Draft:
    fields.setdefault("user_ids", ("alice", "bob"))
    fields.setdefault("message", "reminder")
    return Draft(deliver_ms=clock.now_ms() + ms, **fields)  # type: ignore[arg-type]


async def claim_all(store: Store) -> list[Due]:
    return await store.claim_due(LEASE, 100)


async def test_a_scheduled_notification_is_invisible_until_delivered_with_the_next_seq(
    store: Store, clock: Clock
) -> None:
    [first] = (await store.add(Draft(user_ids=("alice",), message="now"))).notifications
    scheduled = await store.schedule(later(clock, 60_000, category="billing"), "k1")
    assert scheduled is not None
    assert (scheduled.key, scheduled.user_ids, scheduled.replayed) == (
        "k1",
        ("alice", "bob"),
        False,
    )
    assert scheduled.deliver_ms == clock.now_ms() + 60_000
    # Not listed, counted, replayed or given a seq before it is due; nothing to claim.
    assert await store.after("alice", 0, 10) == [first]
    assert (await store.counts("alice")).unread == 1
    assert (await store.position("alice")).last_seq == 1
    assert (await store.position("bob")).last_seq == 0
    assert await claim_all(store) == []
    clock.advance(60_000)
    due = await claim_all(store)
    assert sorted((d.key, d.user_id) for d in due) == [("k1", "alice"), ("k1", "bob")]
    assert {d.draft.user_ids for d in due} == {("alice",), ("bob",)}
    assert all(d.draft.category == "billing" and d.draft.deliver_ms is None for d in due)
    # One publish for the key: each user's next seq.
    [stored] = await store.deliver(due)
    assert sorted((n.user_id, n.seq) for n in stored.notifications) == [("alice", 2), ("bob", 1)]
    assert not stored.replayed
    [alice] = await store.after("alice", 1, 10)
    assert (alice.seq, alice.message, alice.category) == (2, "reminder", "billing")
    assert alice.created_ms == clock.now_ms()
    assert [n.seq for n in await store.after("bob", 0, 10)] == [1]
    # Delivered rows are done: not claimed again, not delivered twice.
    clock.advance(LEASE + 1)
    assert await claim_all(store) == []
    assert await store.deliver(due) == []
    assert len(await store.after("alice", 0, 10)) == 2


async def test_the_key_replays_the_schedule_and_refuses_another_one(
    store: Store, clock: Clock
) -> None:
    draft = later(clock, 60_000)
    assert await store.schedule(draft, "k1") is not None
    again = await store.schedule(draft, "k1")
    assert again is not None
    assert again.replayed
    assert again.user_ids == ("alice", "bob")
    with pytest.raises(IdempotencyConflict):
        await store.schedule(dataclasses.replace(draft, message="other"), "k1")
    with pytest.raises(IdempotencyConflict):
        await store.schedule(dataclasses.replace(draft, deliver_ms=again.deliver_ms + 1), "k1")
    assert len(await claim_all(store)) == 0
    clock.advance(60_000)
    await store.deliver(await claim_all(store))
    # Once delivered the key still replays (a retried publish must not schedule it again),
    # even now that its time has passed.
    replay = await store.schedule(draft, "k1")
    assert replay is not None
    assert replay.replayed
    assert await claim_all(store) == []
    # A key an ordinary publish used is another publish.
    await store.add(Draft(user_ids=("alice",), message="now"), "k-now")
    with pytest.raises(IdempotencyConflict, match="delivered at once"):
        await store.schedule(later(clock, 60_000, message="now"), "k-now")
    # An unknown key whose time is not in the future is not kept: the caller publishes it now.
    assert await store.schedule(later(clock, 0), "k2") is None
    assert await store.schedule(later(clock, -5_000), "k3") is None


async def test_cancel_stops_pending_rows_and_says_why_nothing_else_was(
    store: Store, clock: Clock
) -> None:
    await store.schedule(later(clock, 10_000), "gone")
    await store.schedule(later(clock, 10_000, message="kept"), "kept")
    assert await store.cancel_scheduled("gone") == (2, ("cancelled",))
    assert await store.cancel_scheduled("gone") == (0, ("cancelled",))
    assert await store.cancel_scheduled("unknown") == (0, ())
    clock.advance(10_000)
    due = await claim_all(store)
    assert {d.key for d in due} == {"kept"}
    await store.deliver(due)
    assert await store.cancel_scheduled("kept") == (0, ("delivered",))
    assert [n.message for n in await store.after("alice", 0, 10)] == ["kept"]


async def test_a_lease_keeps_other_nodes_off_until_it_runs_out_and_a_repeat_stores_once(
    store: Store, clock: Clock
) -> None:
    await store.schedule(later(clock, 1_000, user_ids=("alice",)), "k1")
    clock.advance(1_000)
    [row] = await store.claim_due(LEASE, 10)
    # Another node looking meanwhile finds nothing to claim.
    assert await store.claim_due(LEASE, 10) == []
    # The first node died holding the lease: once it runs out, the row is claimed again.
    clock.advance(LEASE + 1)
    [again] = await store.claim_due(LEASE, 10)
    assert (again.key, again.user_id) == (row.key, row.user_id)
    [stored] = await store.deliver([again])
    assert [n.seq for n in stored.notifications] == [1]
    # The first node comes back and delivers what it claimed: nothing more is stored.
    await store.deliver([row])
    assert [n.seq for n in await store.after("alice", 0, 10)] == [1]


async def test_a_renewed_lease_keeps_other_nodes_off_and_a_dead_node_loses_it_after_one_lease(
    store: Store, clock: Clock
) -> None:
    short = 3_000
    await store.schedule(later(clock, 1_000, user_ids=("alice", "bob")), "k1")
    await store.schedule(later(clock, 1_000, user_ids=("carol",)), "k2")
    clock.advance(1_000)
    claimed = await store.claim_due(short, 10)
    assert len(claimed) == 3
    # A live node delivering them renews the lease before it runs out, again and again: no
    # other node claims them meanwhile, however long the delivery takes.
    for _ in range(4):
        clock.advance(short - 1_000)
        assert await store.renew_due(claimed, short) == 3
        assert await store.claim_due(short, 10) == []
    # One row was delivered meanwhile: renewing leaves it as it is.
    [alice] = [r for r in claimed if r.user_id == "alice"]
    await store.deliver([alice])
    assert await store.renew_due(claimed, short) == 2
    # The node dies: one lease later another node claims what is still pending.
    clock.advance(short + 1)
    again = await store.claim_due(short, 10)
    assert sorted((r.key, r.user_id) for r in again) == [("k1", "bob"), ("k2", "carol")]
    await store.deliver(again)
    assert await store.renew_due(claimed, short) == 0
    assert [n.seq for n in await store.after("alice", 0, 10)] == [1]
    assert [n.seq for n in await store.after("bob", 0, 10)] == [1]


async def test_two_nodes_delivering_the_same_rows_at_once_store_them_once(
    store: Store, clock: Clock
) -> None:
    users = tuple(f"u{i}" for i in range(20))
    await store.schedule(later(clock, 1_000, user_ids=users), "k1")
    await store.schedule(later(clock, 1_000, user_ids=users, message="second"), "k2")
    clock.advance(1_000)
    rows = await claim_all(store)
    assert len(rows) == 40
    # Both at once, as two nodes whose leases overlapped would. With transactions one finds
    # the rows no longer pending; without, the delivery key fences each user's document.
    await asyncio.gather(store.deliver(rows), store.deliver(rows))
    for user in users:
        found = await store.after(user, 0, 10)
        assert [(n.seq, n.message) for n in found] == [(1, "reminder"), (2, "second")]
    assert await claim_all(store) == []


async def test_a_skipped_row_stores_nothing_and_is_done(store: Store, clock: Clock) -> None:
    await store.schedule(later(clock, 1_000, user_ids=("alice",)), "k1")
    clock.advance(1_000)
    [row] = await claim_all(store)
    assert await store.deliver([dataclasses.replace(row, skip="muted")]) == []
    assert await store.after("alice", 0, 10) == []
    clock.advance(LEASE + 1)
    assert await claim_all(store) == []
    assert await store.cancel_scheduled("k1") == (0, ("muted",))


async def test_claims_come_oldest_due_first_and_in_batches(store: Store, clock: Clock) -> None:
    for i in (3, 1, 2):
        await store.schedule(later(clock, i * 1_000, user_ids=("alice",), message=f"m{i}"), f"k{i}")
    clock.advance(5_000)
    first = await store.claim_due(LEASE, 2)
    assert [d.draft.message for d in first] == ["m1", "m2"]
    assert [d.draft.message for d in await store.claim_due(LEASE, 2)] == ["m3"]


async def test_rows_due_at_once_are_claimed_in_the_order_they_were_scheduled(
    store: Store, clock: Clock
) -> None:
    # Twelve schedules in one millisecond (the clock is set, not running), all due at the same
    # instant, claimed in batches of 5: the order they were made in, not their keys' ("k10"
    # sorts before "k2"). A fast machine schedules several in one millisecond.
    due_ms = clock.now_ms() + 1_000
    for i in range(12):
        draft = Draft(user_ids=("alice",), message=f"m{i}", deliver_ms=due_ms)
        assert await store.schedule(draft, f"k{i}") is not None
    clock.advance(1_000)
    claimed: list[str] = []
    while batch := await store.claim_due(LEASE, 5):
        assert len(batch) <= 5
        claimed += [d.draft.message for d in batch]
        assert await store.deliver(batch)
    assert claimed == [f"m{i}" for i in range(12)]
    assert [n.message for n in await store.after("alice", 0, 20)] == claimed


async def test_pruning_removes_done_rows_and_keeps_pending_ones(store: Store, clock: Clock) -> None:
    await store.schedule(later(clock, 1_000, user_ids=("alice",)), "done")
    await store.schedule(later(clock, 9_000_000, user_ids=("alice",)), "pending")
    clock.advance(1_000)
    await store.deliver(await claim_all(store))
    clock.advance(1_000)
    await store.prune(clock.now_ms(), 100)
    # The done row is gone (its key unknown now); the pending one is still there to cancel.
    assert await store.cancel_scheduled("done") == (0, ())
    assert await store.cancel_scheduled("pending") == (1, ("cancelled",))


async def test_expired_notifications_leave_the_replay_and_are_found_by_the_sweep(
    store: Store, clock: Clock
) -> None:
    start = clock.now_ms()
    await store.add(Draft(user_ids=("alice",), message="short", expires_ms=start + 1_000))
    await store.add(Draft(user_ids=("alice",), message="long", expires_ms=start + 60_000))
    await store.add(Draft(user_ids=("alice",), message="forever"))
    assert [n.seq for n in await store.after("alice", 0, 10)] == [1, 2, 3]
    assert await store.expired_between(start, start + 999, 10) == []
    clock.advance(1_000)
    assert await store.expired_between(start, clock.now_ms(), 10) == [("alice", 1)]
    assert [n.seq for n in await store.after("alice", 0, 10)] == [2, 3]
    clock.advance(60_000)
    assert await store.expired_between(start + 1_000, clock.now_ms(), 10) == [("alice", 2)]
    assert [n.seq for n in await store.after("alice", 0, 10)] == [3]
    # A deleted notification is not announced as expired.
    await store.delete("alice", 3)
    assert await store.expired_between(0, clock.now_ms() + 10**9, 10) == [
        ("alice", 1),
        ("alice", 2),
    ]


async def test_delivered_rows_are_found_by_when_they_were_delivered(
    store: Store, clock: Clock
) -> None:
    # What the re-announcing sweep reads (issue 22, item 1): delivered rows by their done time,
    # not pending, muted or cancelled ones.
    start = clock.now_ms()
    await store.schedule(later(clock, 1_000), "sent")
    await store.schedule(later(clock, 1_000, user_ids=("carol",), category="promo"), "muted")
    await store.schedule(later(clock, 1_000, user_ids=("dave",)), "cancelled")
    await store.schedule(later(clock, 60_000, user_ids=("erin",)), "later")
    await store.cancel_scheduled("cancelled")
    clock.advance(1_000)
    due = await claim_all(store)
    await store.deliver(
        [dataclasses.replace(d, skip="muted") if d.key == "muted" else d for d in due]
    )
    done = clock.now_ms()
    assert sorted(await store.delivered_between(start, done, 10)) == ["alice", "bob"]
    assert await store.delivered_between(done, done + 10_000, 10) == []
    assert len(await store.delivered_between(start, done, 1)) == 1
