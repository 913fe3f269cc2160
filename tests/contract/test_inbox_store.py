"""The inbox fields in the store contract: stored and read back alike on every store."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tidings.models import Action, Actor, Clock, Draft
from tidings.store import IdempotencyConflict, Store

pytestmark = pytest.mark.anyio

INBOX = Draft(
    user_ids=("alice", "bob"),
    message="Invoice 7 is due",
    category="billing ✓",
    actor=Actor(name='Ada "the" Lovelace', avatar_url="https://cdn.example/a.png"),
    actions=(Action("Pay", "https://shop.example/pay"), Action("Later", "/invoices/7")),
    group="invoice-7",
    expires_ms=1_900_000_000_123,
)


async def test_the_inbox_fields_round_trip_on_every_read(store: Store, clock: Clock) -> None:
    stored = await store.add(INBOX)
    assert [n.user_id for n in stored.notifications] == ["alice", "bob"]
    for made in stored.notifications:
        assert made.category == "billing ✓"
        assert made.actor == INBOX.actor
        assert made.actions == INBOX.actions
        assert (made.group, made.expires_ms) == ("invoice-7", 1_900_000_000_123)
        assert (made.seen_ms, made.archived_ms, made.read_ms) == (None, None, None)
    alice = stored.notifications[0]
    assert await store.after("alice", 0, 10) == [alice]
    assert await store.page("alice", limit=10, before=None, unread_only=False) == [alice]
    assert await store.page("alice", limit=10, before=None, unread_only=True) == [alice]


async def test_a_notification_without_inbox_fields_reads_back_without_them(store: Store) -> None:
    [made] = (await store.add(Draft(user_ids=("alice",), message="plain"))).notifications
    [read] = await store.after("alice", 0, 10)
    assert read == made
    assert (read.category, read.actor, read.actions, read.group) == (None, None, (), None)
    assert (read.expires_ms, read.seen_ms, read.archived_ms) == (None, None, None)


async def test_a_replay_returns_the_inbox_fields_and_a_changed_one_conflicts(
    store: Store,
) -> None:
    first = await store.add(INBOX, "key-1")
    again = await store.add(INBOX, "key-1")
    assert again.replayed
    assert again.notifications == first.notifications
    for changed in (
        Draft(user_ids=INBOX.user_ids, message=INBOX.message, category="billing ✓"),
        replace(INBOX, group="invoice-8"),
        replace(INBOX, actions=INBOX.actions[:1]),
        replace(INBOX, actor=Actor(name="Ada")),
        replace(INBOX, expires_ms=None),
    ):
        with pytest.raises(IdempotencyConflict):
            await store.add(changed, "key-1")
