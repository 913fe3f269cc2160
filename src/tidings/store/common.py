"""What every store shares: the row shape, the data encoding, draft to notification, the schema
check, the idempotency fingerprint check and chunking. Each backend keeps only its own I/O."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from tidings.models import (
    COMPACT,
    Action,
    Actor,
    Counts,
    Draft,
    Due,
    Notification,
    Preferences,
    PushSubscription,
    Stored,
    one_line_json,
)
from tidings.store.base import IdempotencyConflict, StoreUnavailable

__all__ = [
    "COLUMNS",
    "FEATURES",
    "LEGACY_STEPS",
    "PUSH_COLUMNS",
    "SCHEMA_VERSION",
    "WOKEN",
    "OrderStamps",
    "Step",
    "by_key",
    "check_fingerprint",
    "check_schema",
    "chunks",
    "counts_of",
    "decode_actions",
    "decode_actor",
    "decode_data",
    "decode_draft",
    "decode_preferences",
    "delivery_key",
    "encode_actions",
    "encode_actor",
    "encode_data",
    "encode_draft",
    "encode_preferences",
    "features_of",
    "inbox_values",
    "made",
    "notification",
    "pending_steps",
    "push_subscription",
    "used_now",
]

T = TypeVar("T")

# Each feature's schema has a version of its own: a feature's next step is its next version
# here and a `(feature, version)` step in each backend's MIGRATIONS, and no other feature's
# number moves. Features are created in this order (a later one may alter an earlier one's
# tables), each from the version a database has up to the one here.
#   log 1: users, notifications, idempotency keys. log 2: keys carry the fingerprint of their
#     publish (NULL/absent for keys stored at 1, which replay as before); on MongoDB also the
#     one-per-key index (`once`).
#   inbox 1: category, actor, actions, group, expiry, seen and archived (NULL/absent on rows
#     stored before, which read as having none), and preferences.
#   scheduling 1: scheduled notifications (a table/collection of their own), and an index on
#     expires_ms for the expiry sweep.
#   push 1: Web Push subscriptions with their delivery cursor, and presence.
#   email 1: the email digest: users' addresses and cursors.
#   snooze 1: a notification's `snoozed_ms` (hidden until then) and the lease of the node
#     waking it (`snooze_lease`), with an index on the snoozed ones.
FEATURES: dict[str, int] = {
    "log": 2,
    "inbox": 1,
    "scheduling": 1,
    "push": 1,
    "email": 1,
    "snooze": 1,
}
Step = tuple[str, int]
# Up to schema 7 a database carried one number, each a step of one feature, in this order.
LEGACY_STEPS: dict[int, Step] = {
    1: ("log", 1),
    2: ("log", 2),
    3: ("inbox", 1),
    4: ("scheduling", 1),
    5: ("push", 1),
    6: ("email", 1),
    7: ("snooze", 1),
}
# The one number a database still carries: 8 says "the versions are per feature". A tidings
# from before (which knows at most 7) refuses it, as it would any newer schema.
SCHEMA_VERSION = 8

# The order of a notification row in every SQL store, and of `notification()`'s argument.
# `grp`, not `group`: a reserved word in SQL.
COLUMNS = (
    "user_id, seq, message, link, kind, data, created_ms, read_ms, "
    "category, actor, actions, grp, expires_ms, seen_ms, archived_ms, snoozed_ms"
)


# What waking a snoozed notification sets besides clearing `snoozed_ms`: it comes back unread
# and unseen, its lease dropped. SQL stores (MongoDB sets the same fields).
WOKEN = ", read_ms = NULL, seen_ms = NULL, snooze_lease = 0"


def encode_data(data: dict[str, Any]) -> str:
    """`data` is stored as JSON text everywhere: FerretDB refuses keys with `.` or a leading
    `$` and nested arrays, and a string carries any JSON object through every store unchanged."""
    return COMPACT.encode(data)


def decode_data(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


def encode_actor(actor: Actor | None) -> str | None:
    """The actor as JSON text (one column, one document field), or None."""
    return None if actor is None else encode_data(actor.to_json())


def decode_actor(text: str | None) -> Actor | None:
    if text is None:
        return None
    value = json.loads(text)
    return Actor(name=value["name"], avatar_url=value.get("avatar_url"))


def encode_actions(actions: Sequence[Action]) -> str | None:
    """The actions as JSON text; None for none, so rows without actions stay as schema 2 wrote
    them."""
    if not actions:
        return None
    return COMPACT.encode([a.to_json() for a in actions])


def decode_actions(text: str | None) -> tuple[Action, ...]:
    if not text:
        return ()
    return tuple(Action(label=a["label"], url=a["url"]) for a in json.loads(text))


class Row(Protocol):
    """What a driver row offers: values by position."""

    def __getitem__(self, index: int, /) -> Any: ...


def notification(row: Row) -> Notification:
    """A row in `COLUMNS` order (an sqlite3 tuple, an asyncpg Record, or a document's values)."""
    return Notification(
        user_id=row[0],
        seq=row[1],
        message=row[2],
        link=row[3],
        kind=row[4],
        data=decode_data(row[5]),
        created_ms=row[6],
        read_ms=row[7],
        category=row[8],
        actor=decode_actor(row[9]),
        actions=decode_actions(row[10]),
        group=row[11],
        expires_ms=row[12],
        seen_ms=row[13],
        archived_ms=row[14],
        snoozed_ms=row[15],
    )


def inbox_values(draft: Draft) -> tuple[Any, ...]:
    """What a publish stores in `category, actor, actions, grp, expires_ms`, in that order."""
    return (
        draft.category,
        encode_actor(draft.actor),
        encode_actions(draft.actions),
        draft.group,
        draft.expires_ms,
    )


def made(draft: Draft, seqs: Iterable[tuple[str, int]], stamp: int) -> tuple[Notification, ...]:
    """The notifications a publish of `draft` stored, given each user's new seq.

    They differ only in `user_id` and `seq`, so one is built and encoded, and the others are
    copies of its fields with their SSE line (`Notification.line`) spliced from the shared
    encoding: a 10,000-user publish builds 10,000 objects and lines at a fraction of the cost of
    10,000 frozen-dataclass constructions and JSON encodings (tests/contract/test_store.py checks
    the spliced line equals `dumps()`)."""
    if len(draft.user_ids) == 1:
        # One user: the template would cost more than it saves; the line is encoded on first use.
        return tuple(_one(draft, user_id, seq, stamp) for user_id, seq in seqs)
    template = _one(draft, "", 0, stamp)
    fields = dict(vars(template))
    text = template.dumps()
    head = '{"id":0,"user_id":""'
    # `to_json` starts with the id and the user id; if that ever changes, no splicing.
    tail = text[len(head) :] if text.startswith(head) else None
    new = object.__new__
    out: list[Notification] = []
    for user_id, seq in seqs:
        n = new(Notification)
        own = vars(n)
        own.update(fields)
        own["user_id"] = user_id
        own["seq"] = seq
        if tail is not None:
            own["line"] = f'{{"id":{seq},"user_id":{one_line_json(user_id)}{tail}'
        out.append(n)
    return tuple(out)


def _one(draft: Draft, user_id: str, seq: int, stamp: int) -> Notification:
    return Notification(
        user_id=user_id,
        seq=seq,
        message=draft.message,
        link=draft.link,
        kind=draft.kind,
        data=draft.data,
        created_ms=stamp,
        category=draft.category,
        actor=draft.actor,
        actions=draft.actions,
        group=draft.group,
        expires_ms=draft.expires_ms,
    )


def check_schema(backend: str, version: int) -> None:
    """Refuse a database a newer tidings has upgraded: this code would misread it."""
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"{backend}: database schema {version} is newer than this tidings ({SCHEMA_VERSION})"
        )


def features_of(version: int, recorded: dict[str, int]) -> dict[str, int]:
    """What a database at schema `version` has, per feature: `recorded` from 8 on; before, what
    its single number's steps made."""
    if version >= SCHEMA_VERSION:
        return dict(recorded)
    have: dict[str, int] = {}
    for step in range(1, version + 1):
        feature, number = LEGACY_STEPS[step]
        have[feature] = max(have.get(feature, 0), number)
    return have


def pending_steps(backend: str, have: dict[str, int]) -> list[Step]:
    """The steps that bring `have` to `FEATURES`, in order. Refuse a database with a feature
    this tidings does not know, or at a newer version of one: it would misread it."""
    for feature, number in have.items():
        if number > FEATURES.get(feature, 0):
            raise StoreUnavailable(
                f"{backend}: the database's {feature!r} schema ({number}) is newer than this "
                f"tidings ({FEATURES.get(feature, 'none')})"
            )
    return [
        (feature, number)
        for feature, target in FEATURES.items()
        for number in range(have.get(feature, 0) + 1, target + 1)
    ]


def check_fingerprint(key: str, stored: str | None, draft: Draft) -> None:
    """A key reused with a different publish is a client bug, not a retry: refuse it.

    Keys stored before fingerprints existed (`None`) replay whatever the body, as they did.
    """
    if stored is not None and stored != draft.fingerprint():
        raise IdempotencyConflict(
            f"idempotency key {key!r} was used for a different publish; "
            "use a new key for a new notification"
        )


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def counts_of(rows: Iterable[tuple[str | None, int, int]]) -> Counts:
    """Counts from (category, unread, unseen) rows, one per category (None: no category)."""
    unread = unseen = 0
    categories: dict[str, tuple[int, int]] = {}
    for category, cat_unread, cat_unseen in rows:
        unread += cat_unread
        unseen += cat_unseen
        if category is not None and (cat_unread or cat_unseen):
            before = categories.get(category, (0, 0))
            categories[category] = (before[0] + cat_unread, before[1] + cat_unseen)
    return Counts(unread=unread, unseen=unseen, categories=categories)


def encode_preferences(preferences: Preferences) -> tuple[str, str]:
    """(muted categories, channels) as JSON text: the two columns or fields of a store.

    The channels as `{"push": false}`: only the ones turned off, by name (an absent one is on, as
    it always was: rows written before, with every channel listed, read the same)."""
    channels = dict.fromkeys(sorted(preferences.channels_off), False)
    muted = json.dumps(
        list(preferences.muted_categories), ensure_ascii=False, separators=(",", ":")
    )
    return muted, encode_data(channels)


def decode_preferences(muted: str, channels: str) -> Preferences:
    ways = json.loads(channels)
    return Preferences.of(json.loads(muted), {name: bool(on) for name, on in ways.items()})


# --- scheduled notifications -----------------------------------------------------------------

# The states of a scheduled row. A row is kept after it is done (until retention prunes it), so
# a retried scheduling publish replays instead of scheduling again, and a cancel can say why
# nothing was pending.
PENDING = "pending"
DELIVERED = "delivered"
CANCELLED = "cancelled"


def encode_draft(draft: Draft) -> str:
    """What a scheduled row keeps of its publish (the user is the row's own), as JSON text."""
    body: dict[str, Any] = {"message": draft.message, "data": draft.data}
    for name, value in zip(
        ("link", "kind", "category", "actor", "actions", "group", "expires_ms"),
        (draft.link, draft.kind, *inbox_values(draft)),
        strict=True,
    ):
        if value is not None:
            body[name] = value
    return encode_data(body)


def decode_draft(text: str, user_id: str) -> Draft:
    body = json.loads(text)
    return Draft(
        user_ids=(user_id,),
        message=body["message"],
        link=body.get("link"),
        kind=body.get("kind"),
        data=body["data"],
        category=body.get("category"),
        actor=decode_actor(body.get("actor")),
        actions=decode_actions(body.get("actions")),
        group=body.get("group"),
        expires_ms=body.get("expires_ms"),
    )


def due(key: str, user_id: str, deliver_ms: int, draft_text: str) -> Due:
    return Due(
        key=key, user_id=user_id, deliver_ms=deliver_ms, draft=decode_draft(draft_text, user_id)
    )


class OrderStamps:
    """The `created_ms` of scheduled rows: later than the one before, in this process.

    Rows due at the same instant are claimed by (`deliver_ms`, `created_ms`, `key`). Two
    schedules within one millisecond had the same stamp and went by key: "k10" before "k9"
    (`tests/contract/test_scheduled_store.py`). Each stamp is now at least the one before plus
    1 ms, so one process's schedules keep the order they were made in, but never more than
    `AHEAD_MS` ahead of the clock: a burst of more than 1,000 schedules a second holds there, its
    stamps then equal, and those go by key (never before what was scheduled earlier). Two
    processes, or concurrent schedules, have no order to keep. The stamp is only this order; a
    delivered notification is stamped when it is delivered."""

    AHEAD_MS = 1_000

    def __init__(self) -> None:
        self._last = -1

    def next(self, now: int) -> int:
        # Never before the last one, even when the clock steps back.
        stamp = max(self._last, min(max(now, self._last + 1), now + self.AHEAD_MS))
        self._last = stamp
        return stamp


def used_now(key: str) -> IdempotencyConflict:
    """A key an ordinary publish used, given to a scheduled one: a different publish."""
    return IdempotencyConflict(
        f"idempotency key {key!r} was used for a publish delivered at once; "
        "use a new key for a new notification"
    )


def delivery_key(key: str) -> str:
    """The key a store without transactions stores a scheduled publish's notifications under
    when they are due: each (key, user) is stored once, by whichever node gets there first,
    also when a node died after storing and before marking its rows. Not the publisher's key
    itself, which an ordinary publish may have used; the separator is a control character a
    publisher's key has no reason to contain."""
    return f"scheduled\x1f{key}"


def by_key(rows: Sequence[Due]) -> list[list[Due]]:
    """Claimed rows grouped by their scheduling key (one draft each), in claim order: each
    group is delivered as one publish to its users."""
    groups: dict[str, list[Due]] = {}
    for row in rows:
        groups.setdefault(row.key, []).append(row)
    return list(groups.values())


def by_skip(group: Sequence[Due]) -> tuple[dict[str, list[str]], list[str]]:
    """One key's claimed rows split: the users whose row is to be marked skipped, per reason
    ("muted"), and the users the notification is to be stored for."""
    skipped: dict[str, list[str]] = {}
    wanted: list[str] = []
    for row in group:
        if row.skip is None:
            wanted.append(row.user_id)
        else:
            skipped.setdefault(row.skip, []).append(row.user_id)
    return skipped, wanted


async def deliver_by_key(
    rows: Sequence[Due], deliver: Callable[[Sequence[Due]], Awaitable[Stored | None]]
) -> list[Stored]:
    """`Store.deliver` one key at a time: `deliver(group)` stores one key's rows (None: none of
    them was still pending); what was stored, in claim order."""
    delivered: list[Stored] = []
    for group in by_key(rows):
        stored = await deliver(group)
        if stored is not None:
            delivered.append(stored)
    return delivered


# --- Web Push (issue 11) --------------------------------------------------------------------------

# The order of a push subscription row in every SQL store, and of `push_subscription()`'s argument.
PUSH_COLUMNS = (
    "endpoint, user_id, p256dh, auth, created_ms, done_seq, lease_owner, lease_until, retry_ms, "
    "failures"
)


def push_subscription(row: Sequence[Any]) -> PushSubscription:
    return PushSubscription(
        endpoint=row[0],
        user_id=row[1],
        p256dh=row[2],
        auth=row[3],
        created_ms=int(row[4]),
        done_seq=int(row[5]),
        lease_owner=row[6],
        lease_until=int(row[7]),
        retry_ms=int(row[8]),
        failures=int(row[9]),
    )
