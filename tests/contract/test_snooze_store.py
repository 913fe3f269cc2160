"""Snooze in the store contract, on every store: a snoozed notification leaves lists, counts and
the replay until it is woken; a due one is claimed with a lease and woken once, unread and
unseen, keeping its seq; a new snooze or an unsnooze meanwhile beats a stale claim. The store's
clock is set, never waited for."""

from __future__ import annotations

import pytest

from tidings.clock import Clock
from tidings.models import Draft
from tidings.store import Store

pytestmark = pytest.mark.anyio

LEASE = 30_000
HOUR = 3_600_000


async def publish(store: Store, user: str, count: int, **fields: object) -> list[int]:
    seqs = []
    for i in range(count):
        draft = Draft(user_ids=(user,), message=f"m{i}", **fields)  # type: ignore[arg-type]
        [n] = (await store.add(draft)).notifications
        seqs.append(n.seq)
    return seqs


async def test_a_snoozed_notification_is_hidden_until_woken_once_unread_and_unseen(
    store: Store, clock: Clock
) -> None:
    await publish(store, "alice", 3, group="thread-1", category="chat")
    await store.mark_read("alice", ids=[2])
    await store.mark_seen("alice", 3)
    await publish(store, "bob", 2)
    until = clock.now_ms() + HOUR
    # Only the caller's own; bob's seq 1 is not alice's.
    assert await store.snooze("alice", [2, 3, 99], until) == [2, 3]
    assert await store.snooze("bob", [], until) == []
    assert [n.seq for n in await store.after("alice", 0, 10)] == [1]
    listed = await store.page("alice", limit=10, before=None, unread_only=False)
    assert [n.seq for n in listed] == [1]
    snoozed = await store.page("alice", limit=10, before=None, unread_only=False, snoozed=True)
    assert [(n.seq, n.snoozed_ms) for n in snoozed] == [(3, until), (2, until)]
    assert snoozed[0].to_json()["snoozed_until"] is not None
    counts = await store.counts("alice")
    assert (counts.unread, counts.unseen, counts.categories) == (1, 0, {"chat": (1, 0)})
    assert await store.unread_count("alice") == 1
    heads = await store.group_heads("alice", ["thread-1"], category=None, archived=False)
    assert heads == {"thread-1": (1, 1)}
    # "Mark all read" leaves a snoozed one for when it comes back.
    assert await store.mark_read("alice", up_to=3) == [1]
    assert await store.mark_seen("alice", 3) == []
    assert [(n.user_id, n.seq) for n in await store.after("bob", 0, 10)] == [("bob", 1), ("bob", 2)]
    assert await store.next_snoozed() == until

    # Not due yet: nothing to claim.
    assert await store.claim_snoozed(LEASE, 10) == []
    clock.advance(HOUR)
    claimed = await store.claim_snoozed(LEASE, 10)
    assert [(c.user_id, c.seq, c.until_ms) for c in claimed] == [
        ("alice", 2, until),
        ("alice", 3, until),
    ]
    # Leased: another node finds nothing until the lease runs out.
    assert await store.claim_snoozed(LEASE, 10) == []
    woken = await store.wake_snoozed(claimed)
    assert [(n.seq, n.read_ms, n.seen_ms, n.snoozed_ms) for n in woken] == [
        (2, None, None, None),
        (3, None, None, None),
    ]
    assert (woken[0].message, woken[0].group) == ("m1", "thread-1")
    # Once: waking the same claim again (a node whose lease ran out) wakes nothing.
    assert await store.wake_snoozed(claimed) == []
    assert [n.seq for n in await store.after("alice", 0, 10)] == [1, 2, 3]
    counts = await store.counts("alice")
    assert (counts.unread, counts.unseen) == (2, 2)
    assert await store.next_snoozed() is None
    clock.advance(LEASE + 1)
    assert await store.claim_snoozed(LEASE, 10) == []
    assert (await store.position("alice")).last_seq == 3


async def test_a_lease_that_runs_out_leaves_the_snooze_to_another_node(
    store: Store, clock: Clock
) -> None:
    await publish(store, "alice", 2)
    until = clock.now_ms() + 1000
    await store.snooze("alice", [1, 2], until)
    clock.advance(1000)
    # Batches: the first claim takes one, a second node the other a little later.
    [first] = await store.claim_snoozed(LEASE, 1)
    clock.advance(LEASE // 2)
    [second] = await store.claim_snoozed(LEASE, 1)
    assert {first.seq, second.seq} == {1, 2}
    # The first node dies holding its lease; once it runs out, another node claims it.
    assert await store.claim_snoozed(LEASE, 10) == []
    clock.advance(LEASE // 2 + 1)
    [again] = await store.claim_snoozed(LEASE, 10)
    assert again == first
    assert [n.seq for n in await store.wake_snoozed([again, second])] == sorted(
        [first.seq, second.seq]
    )


async def test_a_renewed_snooze_lease_keeps_other_nodes_off(store: Store, clock: Clock) -> None:
    short = 3_000
    await publish(store, "alice", 2)
    until = clock.now_ms() + 1_000
    assert await store.snooze("alice", [1, 2], until) == [1, 2]
    clock.advance(1_000)
    claimed = await store.claim_snoozed(short, 10)
    assert len(claimed) == 2
    for _ in range(3):
        clock.advance(short - 1_000)
        assert await store.renew_snoozed(claimed, short) == 2
        assert await store.claim_snoozed(short, 10) == []
    # The user woke one meanwhile: it is not the claim's any more, and is not renewed.
    await store.unsnooze("alice", [1])
    assert await store.renew_snoozed(claimed, short) == 1
    # The node dies: one lease later the other is claimed again, and woken once.
    clock.advance(short + 1)
    [again] = await store.claim_snoozed(short, 10)
    assert (again.user_id, again.seq) == ("alice", 2)
    assert [n.seq for n in await store.wake_snoozed([again])] == [2]
    assert await store.renew_snoozed(claimed, short) == 0


async def test_a_new_snooze_or_an_unsnooze_beats_a_stale_claim(store: Store, clock: Clock) -> None:
    await publish(store, "alice", 2)
    until = clock.now_ms() + 1000
    await store.snooze("alice", [1, 2], until)
    clock.advance(1000)
    claimed = await store.claim_snoozed(LEASE, 10)
    assert len(claimed) == 2
    # Meanwhile the user snoozes 1 for longer and brings 2 back themselves.
    later = clock.now_ms() + HOUR
    assert await store.snooze("alice", [1], later) == [1]
    [back] = await store.unsnooze("alice", [2])
    assert (back.seq, back.read_ms, back.seen_ms, back.snoozed_ms) == (2, None, None, None)
    assert await store.unsnooze("alice", [2]) == []  # not snoozed any more
    # The stale claim wakes neither.
    assert await store.wake_snoozed(claimed) == []
    assert await store.next_snoozed() == later
    assert [n.seq for n in await store.after("alice", 0, 10)] == [2]
    # The new time is a new claim, not held by the old lease.
    clock.advance(HOUR)
    [fresh] = await store.claim_snoozed(LEASE, 10)
    assert fresh.user_id == "alice"
    assert (fresh.seq, fresh.until_ms) == (1, later)


async def test_unsnooze_is_only_for_the_callers_own(store: Store, clock: Clock) -> None:
    await publish(store, "alice", 1)
    await publish(store, "bob", 1)
    until = clock.now_ms() + HOUR
    await store.snooze("alice", [1], until)
    await store.snooze("bob", [1], until)
    [mine] = await store.unsnooze("alice", [1])
    assert mine.user_id == "alice"
    assert await store.after("bob", 0, 10) == []
    assert await store.next_snoozed() == until


async def test_a_deleted_snoozed_notification_never_wakes(store: Store, clock: Clock) -> None:
    await publish(store, "alice", 1)
    await store.snooze("alice", [1], clock.now_ms() + 1000)
    assert await store.delete("alice", 1)
    clock.advance(1000)
    claimed = await store.claim_snoozed(LEASE, 10)
    assert await store.wake_snoozed(claimed) == []
    assert await store.snooze("alice", [1], clock.now_ms() + 1000) == []
