"""Web Push in the store contract: subscriptions, the delivery cursor and its lease, presence."""

from __future__ import annotations

import asyncio

import pytest

from tidings.clock import Clock
from tidings.models import Draft, PushSubscription
from tidings.store import Store

pytestmark = pytest.mark.anyio

# A real P-256 point and auth secret are checked by the route, not the store.
P256DH, AUTH = "BKey", "auth"


def sub(user: str, n: int = 1) -> PushSubscription:
    return PushSubscription(f"https://push.example/{user}/{n}", user, P256DH, AUTH)


async def test_subscriptions_are_per_user_idempotent_by_endpoint_and_capped(store: Store) -> None:
    assert await store.add_push_subscription(sub("alice", 1), 2) == "created"
    assert await store.add_push_subscription(sub("alice", 1), 2) == "updated"
    assert await store.add_push_subscription(sub("alice", 2), 2) == "created"
    assert await store.add_push_subscription(sub("alice", 3), 2) == "full"
    assert await store.add_push_subscription(sub("bob", 1), 2) == "created"
    listed = await store.push_subscriptions("alice")
    assert [s.endpoint for s in listed] == [sub("alice", 1).endpoint, sub("alice", 2).endpoint]
    assert await store.remove_push_subscription("bob", sub("alice", 1).endpoint) is False
    assert await store.remove_push_subscription("alice", sub("alice", 1).endpoint) is True
    assert await store.remove_push_subscription("alice", sub("alice", 1).endpoint) is False
    assert [s.endpoint for s in await store.push_subscriptions("alice")] == [
        sub("alice", 2).endpoint
    ]


async def test_a_new_subscription_starts_after_what_the_user_has_already(store: Store) -> None:
    await store.add(Draft(user_ids=("alice",), message="old"))
    await store.add(Draft(user_ids=("alice",), message="old too"))
    await store.add_push_subscription(sub("alice"), 5)
    [found] = await store.push_subscriptions("alice")
    assert found.done_seq == 2
    # An endpoint that moves to another user (a shared browser) starts at that user's log.
    await store.add_push_subscription(
        PushSubscription(sub("alice").endpoint, "bob", P256DH, AUTH), 5
    )
    assert await store.push_subscriptions("alice") == []
    [moved] = await store.push_subscriptions("bob")
    assert (moved.user_id, moved.done_seq) == ("bob", 0)


async def test_due_after_the_grace_only_and_only_past_done_seq(store: Store, clock: Clock) -> None:
    await store.add_push_subscription(sub("alice"), 5)
    await store.add_push_subscription(sub("bob"), 5)
    assert await store.push_due(clock.now_ms(), 10) == []
    created = clock.now_ms()
    await store.add(Draft(user_ids=("alice",), message="new"))
    # Created at `created`: not due with a cutoff before it, due with one at or after it.
    assert await store.push_due(created - 1, 10) == []
    [due] = await store.push_due(created, 10)
    assert (due.user_id, due.done_seq) == ("alice", 0)


async def test_one_claim_at_a_time_until_released_or_expired(store: Store, clock: Clock) -> None:
    await store.add_push_subscription(sub("alice"), 5)
    await store.add(Draft(user_ids=("alice",), message="new"))
    endpoint = sub("alice").endpoint
    claims = await asyncio.gather(
        *(store.claim_push(endpoint, f"node-{i}", 10_000) for i in range(5))
    )
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    owner = winners[0].lease_owner
    assert owner is not None
    # Leased: not due, and nobody else can claim or advance it.
    assert await store.push_due(clock.now_ms(), 10) == []
    assert await store.claim_push(endpoint, "other", 10_000) is None
    assert await store.advance_push(endpoint, "other", 1) is False
    assert await store.advance_push(endpoint, owner, 1) is True
    # done_seq is only ever raised.
    assert await store.advance_push(endpoint, owner, 0) is True
    [row] = await store.push_subscriptions("alice")
    assert row.done_seq == 1
    # The lease expires: another node takes over, and the first can no longer advance.
    clock.advance(10_001)
    taken = await store.claim_push(endpoint, "other", 10_000)
    assert taken is not None
    assert taken.done_seq == 1
    assert await store.advance_push(endpoint, owner, 5) is False
    # A release by the node that lost the lease changes nothing.
    await store.release_push(endpoint, owner, 9)
    [row] = await store.push_subscriptions("alice")
    assert (row.done_seq, row.lease_owner) == (1, "other")
    await store.release_push(endpoint, "other", 1, retry_ms=clock.now_ms() + 5000, failures=2)
    [row] = await store.push_subscriptions("alice")
    assert (row.lease_owner, row.retry_ms, row.failures) == (None, clock.now_ms() + 5000, 2)


async def test_waiting_to_retry_is_not_due_until_then(store: Store, clock: Clock) -> None:
    await store.add_push_subscription(sub("alice"), 5)
    await store.add(Draft(user_ids=("alice",), message="new"))
    endpoint = sub("alice").endpoint
    assert await store.claim_push(endpoint, "me", 10_000) is not None
    await store.release_push(endpoint, "me", 0, retry_ms=clock.now_ms() + 3000, failures=1)
    assert await store.push_due(clock.now_ms(), 10) == []
    clock.advance(3000)
    assert [s.endpoint for s in await store.push_due(clock.now_ms(), 10)] == [endpoint]


async def test_a_dropped_subscription_is_gone_for_its_user(store: Store) -> None:
    await store.add_push_subscription(sub("alice"), 5)
    await store.drop_push_subscription(sub("alice").endpoint)
    assert await store.push_subscriptions("alice") == []
    assert await store.claim_push(sub("alice").endpoint, "me", 1000) is None


async def test_presence_is_the_last_time_a_stream_is_known_open_on_any_node(
    store: Store,
) -> None:
    assert await store.presence("alice") == 0
    # Node a: alice and bob open a stream. Node b: alice too.
    await store.record_presence("a", 1000, ["alice", "bob"], [])
    await store.record_presence("b", 1100, ["alice"], [])
    assert await store.presence("alice") == 1100
    assert await store.presence("bob") == 1000
    # Reports with no change keep open streams current.
    await store.record_presence("a", 2000, [], [])
    assert await store.presence("bob") == 2000
    # bob's stream closes at 2500; node b's last report was 1100 (it died): alice's presence is
    # node a's report, where her stream is still open.
    await store.record_presence("a", 3000, [], [("bob", 2500)])
    assert await store.presence("bob") == 2500
    assert await store.presence("alice") == 3000
    # alice closes on node a too: only the closed stream and the dead node's report are left.
    await store.record_presence("a", 4000, [], [("alice", 3900)])
    assert await store.presence("alice") == 3900
    # And opens again: counted until node a's reports.
    await store.record_presence("a", 5000, ["alice"], [])
    assert await store.presence("alice") == 5000
    # A day later: the dead node b and bob's closed stream are forgotten, node a's open one not.
    await store.forget_presence(2600)
    assert await store.presence("bob") == 0
    assert await store.presence("alice") == 5000
    await store.forget_presence(6000)
    assert await store.presence("alice") == 0
