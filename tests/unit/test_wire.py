"""The bytes between nodes: every event survives the trip, batches fit, bad input is skipped."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import pytest

from tidings.bus.wire import DEFAULT_LIMIT, decode, encode, encode_per_user, resync_message
from tidings.events import (
    ArchiveChanged,
    Deleted,
    Event,
    Published,
    ReadChanged,
    Resync,
    ScheduleHint,
    SeenChanged,
    Snoozed,
    Unsnoozed,
    UserResync,
)
from tidings.models import Action, Actor, Notification


def notification(
    user: str = "ann", seq: int = 1, message: str = "hello", **kw: object
) -> Notification:
    fields: dict[str, object] = {
        "link": "/inbox/1",
        "kind": "comment",
        "data": {"by": "bob", "n": [1, 2]},
        "created_ms": 1_700_000_000_123,
        "read_ms": None,
        **kw,
    }
    return Notification(user_id=user, seq=seq, message=message, **fields)  # type: ignore[arg-type]


def round_trip(events: list[Event], limit: int = DEFAULT_LIMIT) -> list[Event]:
    return [event for message in encode(events, limit) for event in decode(message)]


EVERY_KIND: list[Event] = [
    Published("ann", 7, notification(seq=7)),
    Published("ann", 8),
    Published("bob", 1, notification("bob", 1, "ünïcødé ✓ \u2028", link=None, kind=None, data={})),
    Published("cy", 2, notification("cy", 2, read_ms=1_700_000_000_999)),
    Published(
        "dee",
        3,
        notification(
            "dee",
            3,
            category="billing ✓",
            actor=Actor("Ada", "https://cdn.example/a.png"),
            actions=(Action("Pay", "/pay"), Action("Later", "https://x.example/l")),
            group="invoice-7",
            expires_ms=1_900_000_000_000,
            seen_ms=1_700_000_000_500,
            archived_ms=1_700_000_000_600,
        ),
    ),
    Published("eve", 4, notification("eve", 4, actor=Actor("Bo"))),
    ReadChanged("ann", unread=3, ids=(1, 2, 5)),
    ReadChanged("ann", unread=0, up_to=8),
    Deleted("bob", seq=1, unread=0),
    SeenChanged("ann", up_to=8, unseen=2),
    ArchiveChanged("ann", ids=(1, 3), archived=True, unread=1, unseen=0),
    ArchiveChanged("ann", ids=(3,), archived=False, unread=2, unseen=1),
    Resync(),
    UserResync("ann ✓"),
    ScheduleHint(1_900_000_000_000),
]


def assert_same_lines(sent: Sequence[Event], got: Sequence[Event]) -> None:
    """Each received notification's SSE line is what the sender's would have written."""
    for before, after in zip(sent, got, strict=True):
        if isinstance(before, Published):
            assert isinstance(after, Published)
            assert after.notification is not None
            assert before.notification is not None
            assert after.notification.line == before.notification.dumps()


def test_every_kind_of_event_arrives_as_it_was_sent() -> None:
    assert round_trip(EVERY_KIND) == EVERY_KIND


def test_a_batch_is_one_message_when_it_fits() -> None:
    messages = encode(EVERY_KIND)
    assert len(messages) == 1
    assert len(json.loads(messages[0])) == len(EVERY_KIND)


def test_many_events_are_split_into_messages_within_the_limit_and_keep_their_order() -> None:
    events: list[Event] = [
        Published(f"user-{i}", i + 1, notification(f"user-{i}", i + 1)) for i in range(300)
    ]
    messages = encode(events, limit=2000)
    assert len(messages) > 1
    assert all(len(m.encode()) <= 2000 for m in messages)
    assert round_trip(events, limit=2000) == events


def test_a_notification_too_large_to_carry_travels_as_user_and_seq() -> None:
    big = Published("ann", 3, notification(seq=3, message="x" * 9000))
    small = Published("ann", 4, notification(seq=4))
    messages = encode([big, small])
    assert all(len(m.encode()) <= DEFAULT_LIMIT for m in messages)
    # The receiving stream reads the large one from the store; the small one keeps its body.
    assert round_trip([big, small]) == [Published("ann", 3), small]


def test_a_notification_whose_inbox_fields_do_not_fit_travels_as_user_and_seq() -> None:
    big = Published("ann", 3, notification(seq=3, group="g" * 5000, category="c" * 3000))
    [message] = encode([big])
    assert len(message.encode()) <= DEFAULT_LIMIT
    assert json.loads(message) == [{"t": "p", "u": "ann", "s": 3}]


def test_the_size_limit_counts_bytes_not_characters() -> None:
    # 3000 characters are well under the limit; at 3 bytes each in UTF-8 they are over it.
    event = Published("ann", 1, notification(message="€" * 3000))
    assert round_trip([event]) == [Published("ann", 1)]


def test_a_long_list_of_read_ids_is_split_into_events_that_add_up() -> None:
    ids = tuple(range(1, 1201))
    events = round_trip([ReadChanged("ann", unread=4, ids=ids)])
    assert len(events) > 1
    assert all(isinstance(e, ReadChanged) and e.unread == 4 for e in events)
    assert tuple(i for e in events if isinstance(e, ReadChanged) for i in e.ids or ()) == ids


def test_a_read_change_with_no_ids_still_tells_the_new_unread_count() -> None:
    assert round_trip([ReadChanged("ann", unread=2, ids=())]) == [ReadChanged("ann", 2, ids=())]


def test_a_per_user_resync_reads_as_a_full_resync_on_a_node_that_does_not_know_it() -> None:
    # What an older node does with it: any "x" entry is a resync of every stream.
    (raw,) = encode([UserResync("ann")])
    assert json.loads(raw) == [{"t": "x", "u": "ann"}]
    assert decode(raw) == [UserResync("ann")]


def test_nothing_to_send_is_no_message() -> None:
    assert encode([]) == []


def test_the_resync_message_asks_for_a_resync() -> None:
    assert decode(resync_message()) == [Resync()]
    assert decode(resync_message().encode()) == [Resync()]


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", "not json", "{", '{"t":"x"}', "42", "null", '"text"'],
    ids=["bytes", "text", "cut", "object", "number", "null", "string"],
)
def test_a_message_that_is_not_a_json_array_is_ignored(raw: str | bytes) -> None:
    assert decode(raw) == []


@pytest.mark.parametrize(
    "entry",
    [
        {},
        {"t": "p"},
        {"t": "p", "u": "ann"},
        {"t": "p", "u": "ann", "s": "seven"},
        {"t": "p", "u": "ann", "s": 1, "n": ["short"]},
        {"t": "p", "u": "ann", "s": 1, "n": ["m", None, None, ["not", "a", "dict"], 1, None]},
        {"t": "r", "u": "ann"},
        {"t": "r", "u": "ann", "c": 1, "i": ["one"]},
        {"t": "d", "u": "ann", "s": 1},
        {"t": "?", "u": "ann"},
        "text",
        None,
    ],
    ids=repr,
)
def test_a_malformed_entry_is_skipped_and_the_rest_of_the_message_delivered(
    entry: object, caplog: pytest.LogCaptureFixture
) -> None:
    good: list[Event] = [Published("ann", 1), Deleted("bob", 2, 0)]
    message = json.loads(encode(good)[0])
    raw = json.dumps([message[0], entry, message[1]])
    with caplog.at_level(logging.WARNING, logger="tidings.bus"):
        assert decode(raw) == good
    assert "malformed" in caplog.text


def test_a_notification_from_a_node_before_the_inbox_arrives_without_inbox_fields() -> None:
    raw = json.dumps([{"t": "p", "u": "ann", "s": 1, "n": ["hi", None, None, {}, 5, None]}])
    [event] = decode(raw)
    assert isinstance(event, Published)
    assert event.notification == Notification("ann", 1, "hi", None, None, {}, 5)


def test_the_inbox_fields_travel_beside_what_an_older_node_reads() -> None:
    n = notification(category="billing", group="g")
    [entry] = json.loads(encode([Published("ann", 1, n)])[0])
    # An older node unpacks "n" by its six values; the inbox rides in a key it ignores.
    assert len(entry["n"]) == 6
    assert entry["i"] == {"c": "billing", "g": "g"}


def test_a_long_list_of_archived_ids_is_split_into_events_that_add_up() -> None:
    ids = tuple(range(1, 1201))
    events = round_trip([ArchiveChanged("ann", ids=ids, archived=True, unread=4, unseen=2)])
    assert len(events) > 1
    assert all(
        isinstance(e, ArchiveChanged) and (e.archived, e.unread, e.unseen) == (True, 4, 2)
        for e in events
    )
    assert tuple(i for e in events if isinstance(e, ArchiveChanged) for i in e.ids) == ids


def test_snooze_events_survive_the_trip_and_a_wake_up_stays_one_event() -> None:
    snoozed = Snoozed("ann", (2, 3), 1_700_000_360_000, unread=1, unseen=0)
    woken = (
        notification(seq=2, category="chat", group="t", actor=Actor("Bo", None)),
        notification(seq=3, actions=(Action("Open", "/o"),)),
    )
    unsnoozed = Unsnoozed("ann", woken, unread=3, unseen=3)
    other = Unsnoozed("bob", (notification(user="bob"),), unread=1, unseen=1)
    assert round_trip([snoozed, unsnoozed, other]) == [snoozed, unsnoozed, other]


def test_a_woken_notification_too_large_for_a_message_travels_as_its_seq() -> None:
    big = notification(seq=2, data={"blob": "x" * 9000})
    small = notification(seq=3)
    [decoded] = round_trip([Unsnoozed("ann", (big, small), unread=2, unseen=2)])
    assert isinstance(decoded, Unsnoozed)
    assert decoded.notifications == (small,)
    assert (decoded.missing, decoded.unread, decoded.unseen) == ((2,), 2, 2)


def test_a_publish_to_many_users_shares_one_body_per_message_between_workers() -> None:
    data = {"by": "bob", "n": [1, 2]}
    body: dict[str, object] = {
        "data": data,
        "category": "billing",
        "actor": Actor("Ada", "https://cdn.example/a.png"),
        "actions": (Action("Pay", "/pay"),),
        "group": "g",
        "expires_ms": 1_900_000_000_000,
    }
    many: list[Event] = [
        Published(f"user-{i} ✓", i + 1, notification(f"user-{i} ✓", i + 1, "hello", **body))
        for i in range(3000)
    ]
    events = [Published("ann", 7, notification(seq=7)), *many, ReadChanged("ann", 1, up_to=7)]
    shared = encode(events, limit=60_000, shared_bodies=True)
    alone = encode(events, limit=60_000)
    assert all(len(m.encode()) <= 60_000 for m in shared)
    assert sum(len(m) for m in shared) * 4 < sum(len(m) for m in alone)
    got = [e for m in shared for e in decode(m)]
    assert got == events
    # What the streams write is what the sender's notifications would have written.
    assert_same_lines(events, got)


def test_shared_bodies_leave_single_and_already_read_notifications_as_they_were() -> None:
    assert round_trip_shared(EVERY_KIND) == EVERY_KIND
    read = [
        Published(f"u{i}", 1, notification(f"u{i}", 1, read_ms=1_700_000_000_999)) for i in range(3)
    ]
    assert round_trip_shared(read) == read
    assert all(entry["t"] == "p" for entry in json.loads(encode(read, shared_bodies=True)[0]))


def test_a_shared_body_too_large_for_a_message_travels_as_users_and_seqs() -> None:
    big = [Published(f"u{i}", 2, notification(f"u{i}", 2, message="x" * 9000)) for i in range(3)]
    assert round_trip_shared(big) == [Published(f"u{i}", 2) for i in range(3)]


def round_trip_shared(events: Sequence[Event], limit: int = DEFAULT_LIMIT) -> list[Event]:
    return [e for m in encode(events, limit, shared_bodies=True) for e in decode(m)]


def test_a_publish_to_many_users_on_a_per_user_bus_is_each_users_own_message() -> None:
    # A per-user bus (Redis, NATS) sends every user their own message; a broadcast's messages
    # differ only in the user and the seq, and are encoded once and spliced: they must be
    # exactly what encoding each user's events on its own gives, whatever the users are.
    body: dict[str, object] = {
        "data": {"by": "bob", "n": [1, 2]},
        "category": "billing",
        "actor": Actor("Ada", None),
        "group": "g",
    }
    per_user: dict[str, list[Event]] = {}
    for i, user in enumerate(["ann", 'o"dd\\one', "zoë ✓", "x" * 200, "bob"]):
        per_user[user] = [Published(user, i + 1, notification(user, i + 1, "hi\nall", **body))]
    per_user["cy"] = [ReadChanged("cy", 2, up_to=4)]
    per_user["dee"] = [Published("dee", 3, notification("dee", 3)), Deleted("dee", 2, 0)]
    per_user["eve"] = [Published("eve", 9, notification("eve", 9, "hi\nall", **body))]
    # Small enough that the 200-character user's message no longer carries the body.
    limit = len(encode([per_user["ann"][0]])[0]) + 100
    got = list(encode_per_user(per_user, limit))
    want = [(user, m) for user, events in per_user.items() for m in encode(events, limit)]
    assert got == want
    assert '"n":' not in dict(got)["x" * 200]


def test_a_run_of_one_notification_messages_decodes_as_each_would_alone() -> None:
    # The receiving node decodes a broadcast's messages as copies of the first one's
    # notification; each must still be that message's own user, seq and SSE line, and a
    # message with another body (or another kind) in between must not be taken for a copy.
    shared = {"data": {"k": "é"}, "category": "c"}
    sent: list[Event] = [
        Published(f"user {i} ✓", 10 + i, notification(f"user {i} ✓", 10 + i, "hey", **shared))
        for i in range(5)
    ]
    sent.insert(2, Published("ann", 4, notification("ann", 4, "other")))
    sent.insert(4, ReadChanged("ann", 1, up_to=4))
    sent.append(Published("bob", 99, notification("bob", 99, "hey", **shared, read_ms=5)))
    sent.append(Published("cy", 100, notification("cy", 100, "hey", **shared)))
    for raw in (True, False):
        got = []
        for event in sent:
            (message,) = encode([event])
            got += decode(message.encode() if raw else message)
        assert got == sent
        assert_same_lines(sent, got)
