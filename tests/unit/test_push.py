"""Web Push's pure parts: the payload's size bound, why a notification is skipped, presence."""

from __future__ import annotations

import json

import pytest

from tests.unit.conftest import unit_settings
from tests.unit.fakes import FakeStore
from tidings.channels import Node
from tidings.channels.presence import Presence
from tidings.channels.push.delivery import (
    MAX_PLAINTEXT,
    PushDelivery,
    payload_of,
    skip_reason,
    tag_of,
    title_of,
    topic_of,
)
from tidings.clock import Clock
from tidings.hub import Hub
from tidings.metrics import Metrics
from tidings.models import Action, Actor, Draft, Notification, Preferences, PushSubscription

pytestmark = pytest.mark.anyio

PUSH = {
    "vapid_private_key": "pUjdga06cA-UH1YhY_9waCGgCo3cT6VZsGdr5iEch8k",
    "vapid_subject": "mailto:ops@tidings.test",
}


def note(**fields: object) -> Notification:
    values: dict[str, object] = {
        "user_id": "ann",
        "seq": 7,
        "message": "hello",
        "link": None,
        "kind": None,
        "data": {},
        "created_ms": 1000,
    }
    values.update(fields)
    return Notification(**values)  # type: ignore[arg-type]


def test_a_payload_within_bounds_carries_every_visible_field() -> None:
    n = note(
        link="https://app.example/7",
        category="billing",
        actor=Actor("Ada", "https://cdn.example/a.png"),
        actions=(Action("Pay", "https://app.example/pay"),),
    )
    assert json.loads(payload_of(n)) == {
        "id": 7,
        "seq": 7,
        "message": "hello",
        "link": "https://app.example/7",
        "category": "billing",
        "actor": {"name": "Ada", "avatar_url": "https://cdn.example/a.png"},
        "actions": [{"label": "Pay", "url": "https://app.example/pay"}],
        "created_at": "1970-01-01T00:00:01.000Z",
        "tag": "tidings-7",
        # WebKit's declarative Web Push, for Safari to show without a service worker.
        "web_push": 8030,
        "notification": {
            "title": "Ada",
            "body": "hello",
            "navigate": "https://app.example/7",
            "tag": "tidings-7",
            "timestamp": 1000,
            "icon": "https://cdn.example/a.png",
            "actions": [{"action": "0", "title": "Pay", "navigate": "https://app.example/pay"}],
            "data": {"tidings": True, "id": 7},
        },
        "mutable": True,
    }


def test_a_group_push_stands_for_the_group_under_its_tag_and_topic() -> None:
    one = note(seq=8, group="thread-42", actor=Actor("Carol"), link="/threads/42")
    other = note(seq=9, group="thread-42", actor=Actor("Dan"), link="/threads/42")
    body = json.loads(payload_of(one, 5, "https://app.example/base/"))
    assert (body["group"], body["group_count"]) == ("thread-42", 5)
    assert body["tag"] == tag_of(other) != tag_of(note(seq=8))
    assert topic_of(one) == topic_of(other)
    assert len(topic_of(one)) <= 32
    assert topic_of(one) != topic_of(note(seq=8, group="thread-43"))
    shown = body["notification"]
    assert (shown["title"], shown["body"], shown["tag"]) == (
        "Carol and 4 others",
        "hello",
        body["tag"],
    )
    # A path is resolved against TIDINGS_PUBLIC_URL: `navigate` must be absolute.
    assert shown["navigate"] == "https://app.example/threads/42"
    assert title_of(None, "3 new comments", 2) == ("3 new comments", "1 more")
    assert title_of({"name": "Carol"}, "m", 2) == ("Carol and 1 other", "m")


def test_without_an_absolute_link_or_public_url_the_push_is_for_the_worker_alone() -> None:
    body = json.loads(payload_of(note(link="/threads/42")))
    assert "web_push" not in body
    assert body["tag"] == "tidings-7"
    with_base = json.loads(payload_of(note(link=None), public_url="https://app.example"))
    assert with_base["notification"]["navigate"] == "https://app.example"


def test_a_payload_too_large_sheds_actions_then_avatar_then_message_end() -> None:
    long_url = "https://app.example/" + "p" * 2000
    n = note(
        message="é" * 3000,  # 6000 bytes in UTF-8
        link="https://app.example/" + "l" * 1000,
        actor=Actor("Ada", long_url),
        actions=(Action("Pay", long_url), Action("Later", long_url)),
    )
    data = payload_of(n)
    assert len(data) <= MAX_PLAINTEXT
    body = json.loads(data)
    assert body["actions"] == []
    assert body["actor"] == {"name": "Ada", "avatar_url": None}
    assert body["link"] == n.link
    assert body["message"].endswith("…")
    assert body["message"].startswith("é" * 100)


@pytest.mark.parametrize(
    ("fields", "prefs", "present", "reason"),
    [
        ({}, Preferences(), 0, None),
        ({"seen_ms": 1}, Preferences(), 0, "seen"),
        ({"read_ms": 1}, Preferences(), 0, "read"),
        ({"archived_ms": 1}, Preferences(), 0, "archived"),
        ({"expires_ms": 2000}, Preferences(), 0, "expired"),
        ({"expires_ms": 2001}, Preferences(), 0, None),
        ({}, Preferences(channels_off=frozenset({"push"})), 0, "unsubscribed"),
        ({"category": "news"}, Preferences(muted_categories=("news",)), 0, "muted"),
        ({"category": "billing"}, Preferences(muted_categories=("news",)), 0, None),
        ({}, Preferences(), 1000, "present"),  # a stream was open when it was created
        ({}, Preferences(), 999, None),  # the last stream closed just before
    ],
)
def test_why_a_notification_is_not_pushed(
    fields: dict[str, object], prefs: Preferences, present: int, reason: str | None
) -> None:
    assert skip_reason(note(**fields), prefs, present, now_ms=2000) == reason


async def test_presence_reports_changes_and_the_moment_the_last_stream_closed() -> None:
    settings = unit_settings(**PUSH)
    clock = Clock(5000)
    store = FakeStore()
    hub = Hub(settings, Metrics())
    presence = Presence(settings, store, hub, clock)
    hub.on_leave = presence.leave  # what run() sets
    node = presence.node
    ann, bob = hub.new_subscriber("ann"), hub.new_subscriber("bob")
    assert hub.add(ann, None)
    assert hub.add(bob, None)
    await presence.write()
    assert store.db.streams == {("ann", node): None, ("bob", node): None}
    clock.set(6000)
    hub.remove(bob)  # bob's last stream closes at 6000
    clock.set(9000)
    await presence.write()
    assert store.db.streams == {("ann", node): None, ("bob", node): 6000}
    assert (await store.presence("ann"), await store.presence("bob")) == (9000, 6000)
    # A report without changes only says the node is alive.
    clock.set(9500)
    await presence.write()
    assert (await store.presence("ann"), await store.presence("bob")) == (9500, 6000)
    # A failed report keeps the departures (and the openings) for the next one.
    cy = hub.new_subscriber("cy")
    assert hub.add(cy, None)
    hub.remove(cy)
    dee = hub.new_subscriber("dee")
    assert hub.add(dee, None)
    store.down = True
    with pytest.raises(Exception, match="down"):
        await presence.write()
    store.down = False
    clock.set(10_000)
    await presence.write()
    assert store.db.streams[("cy", node)] == 9500
    assert store.db.streams[("dee", node)] is None
    assert await store.presence("dee") == 10_000


def test_a_payload_fits_even_with_limits_raised_far_past_the_defaults() -> None:
    n = note(message="m" * 10, link="https://app.example/" + "l" * 9000)
    body = json.loads(payload_of(n))
    assert (body["message"], body["link"]) == ("…", None)


async def test_a_pass_over_notifications_that_all_expired_moves_the_cursor_past_them() -> None:
    # The store lists no expired notification: a pass that finds only those must still be done
    # with them, or the subscription would be due (and claimed, a write) on every pass.
    settings = unit_settings(**PUSH, push_grace=1.0)
    clock = Clock(10_000)
    store = FakeStore(clock)
    channel = PushDelivery(Node(settings, store, Hub(settings, Metrics()), clock, Metrics()))
    endpoint = "https://push.example/ann"
    assert await store.add_push_subscription(PushSubscription(endpoint, "ann", "k", "a"), 5)
    for _ in range(3):
        await store.add(Draft(user_ids=("ann",), message="soon gone", expires_ms=12_000))
    clock.set(20_000)
    assert [s.endpoint for s in await store.push_due(19_000, 10)] == [endpoint]
    await channel.deliver(endpoint)
    [sub] = await store.push_subscriptions("ann")
    assert sub.done_seq == 3
    assert await store.push_due(19_000, 10) == []
