"""The inbox fields in the store contract: stored and read back alike on every store."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tidings.clock import Clock
from tidings.models import Action, Actor, Draft, Preferences
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


async def publish(store: Store, user: str, message: str, **fields: object) -> int:
    draft = Draft(user_ids=(user,), message=message, **fields)  # type: ignore[arg-type]
    return (await store.add(draft)).notifications[0].seq


async def test_seen_up_to_marks_only_those_at_or_below_it(store: Store, clock: Clock) -> None:
    for i in range(3):
        await publish(store, "alice", f"n{i}", category="billing" if i else None)
    assert (await store.counts("alice")).unseen == 3
    assert await store.mark_seen("alice", 2) == [1, 2]
    # Published after the bell was opened: a repeated up_to still leaves it unseen.
    await publish(store, "alice", "later")
    assert await store.mark_seen("alice", 2) == []
    assert await store.mark_seen("bob", 10) == []
    found = {n.seq: n for n in await store.after("alice", 0, 10)}
    assert [s for s, n in found.items() if n.seen_ms == clock.now_ms()] == [1, 2]
    assert [s for s, n in found.items() if n.seen_ms is None] == [3, 4]
    counts = await store.counts("alice")
    assert (counts.unread, counts.unseen) == (4, 2)
    assert counts.categories == {"billing": (2, 1)}


async def test_archived_ones_leave_the_list_and_the_counts_until_unarchived(
    store: Store, clock: Clock
) -> None:
    for i in range(4):
        await publish(store, "alice", f"n{i}", category="billing" if i % 2 else "mentions")
    await publish(store, "bob", "not alice's")
    assert await store.archive("alice", [2, 3, 9], True) == [2, 3]
    assert await store.archive("alice", [2], True) == []
    assert await store.archive("alice", [1], False) == []

    async def listed(**kw: object) -> list[int]:
        page = await store.page("alice", limit=10, before=None, unread_only=False, **kw)  # type: ignore[arg-type]
        return [n.seq for n in page]

    assert await listed() == [4, 1]
    archived = await store.page("alice", limit=10, before=None, unread_only=False, archived=True)
    assert [(n.seq, n.archived_ms) for n in archived] == [(3, clock.now_ms()), (2, clock.now_ms())]
    assert await listed(category="billing") == [4]
    assert await listed(category="billing", archived=True) == [2]
    assert await listed(category="nothing") == []
    assert await store.unread_count("alice") == 2
    counts = await store.counts("alice")
    assert (counts.unread, counts.unseen) == (2, 2)
    assert counts.categories == {"billing": (1, 1), "mentions": (1, 1)}
    # Someone else's seqs are not touched.
    assert await store.archive("bob", [2, 3], True) == []
    assert await store.archive("alice", [3, 2, 4], False) == [2, 3]
    assert await listed() == [4, 3, 2, 1]
    assert (await store.counts("alice")).categories == {"billing": (2, 2), "mentions": (2, 2)}


async def test_group_heads_are_the_newest_unread_of_each_group(store: Store) -> None:
    for i in range(5):
        await publish(store, "alice", f"c{i}", group="thread-1" if i != 2 else "thread-2")
    await publish(store, "alice", "billing", group="thread-1", category="billing")
    await store.mark_read("alice", ids=[6])
    heads = await store.group_heads(
        "alice", ["thread-1", "thread-2", "none"], category=None, archived=False
    )
    assert heads == {"thread-1": (5, 4), "thread-2": (3, 1)}
    await store.archive("alice", [5], True)
    assert await store.group_heads("alice", ["thread-1"], category=None, archived=False) == {
        "thread-1": (4, 3)
    }
    assert await store.group_heads("alice", ["thread-1"], category=None, archived=True) == {
        "thread-1": (5, 1)
    }
    assert await store.group_heads("alice", ["thread-1"], category="billing", archived=False) == {}


async def test_preferences_are_kept_per_user_and_tell_who_muted_a_category(store: Store) -> None:
    assert await store.preferences("alice") == Preferences()
    mine = Preferences(muted_categories=("billing", "ünï.$code"), channels_off=frozenset({"push"}))
    await store.set_preferences("alice", mine)
    await store.set_preferences("bob", Preferences(muted_categories=("mentions",)))
    await store.set_preferences("cy", Preferences(channels_off=frozenset({"email"})))
    assert await store.preferences("alice") == mine
    assert await store.preferences("cy") == Preferences(channels_off=frozenset({"email"}))
    users = ["alice", "bob", "cy", "nobody"]
    assert await store.muting(users, "billing") == {"alice"}
    assert await store.muting(users, "ünï.$code") == {"alice"}
    assert await store.muting(users, "mentions") == {"bob"}
    assert await store.muting(users, "other") == set()
    # Replaced whole, not merged.
    await store.set_preferences("alice", Preferences())
    assert await store.preferences("alice") == Preferences()
    assert await store.muting(users, "billing") == set()


async def test_past_its_expiry_a_notification_is_gone_from_lists_and_counts(
    store: Store, clock: Clock
) -> None:
    soon = clock.now_ms() + 1000
    await publish(store, "alice", "lasting", category="billing", group="g")
    await publish(store, "alice", "brief", category="billing", group="g", expires_ms=soon)

    async def listed() -> list[int]:
        return [n.seq for n in await store.page("alice", limit=10, before=None, unread_only=False)]

    assert await listed() == [2, 1]
    assert await store.group_heads("alice", ["g"], category=None, archived=False) == {"g": (2, 2)}
    clock.advance(1000)
    assert await listed() == [1]
    assert await store.unread_count("alice") == 1
    counts = await store.counts("alice")
    assert (counts.unread, counts.unseen, counts.categories) == (1, 1, {"billing": (1, 1)})
    assert await store.group_heads("alice", ["g"], category=None, archived=False) == {"g": (1, 1)}
