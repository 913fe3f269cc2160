"""The values that travel between layers: frozen dataclasses, never driver rows or dicts."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tidings.clock import iso_ms

__all__ = [
    "Action",
    "Actor",
    "Counts",
    "Draft",
    "Due",
    "EmailClaim",
    "Notification",
    "Position",
    "Preferences",
    "PushSubscription",
    "Scheduled",
    "Snooze",
    "Stored",
    "UserRecord",
]


# JSON escapes CR and LF itself; these three are line breaks to some line splitters (Python's
# str.splitlines, for one) though not to SSE, so a client reading lines that way would see the
# JSON cut in two.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"})


# One encoder for every call: `json.dumps` with options builds a JSONEncoder per call, a third
# of a small notification's encoding (once per publish on the loop's thread, and again per row).
COMPACT: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def one_line_json(value: object) -> str:
    """Compact JSON with every character any line splitter could break on escaped."""
    text = COMPACT.encode(value)
    if text.isascii():
        return text
    return text.translate(_LINE_BREAKS)


def _iso_or_none(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused a notification; the bell shows the avatar."""

    name: str
    avatar_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "avatar_url": self.avatar_url}


@dataclass(frozen=True, slots=True)
class Action:
    """A button of a notification: a label and where it leads (the rules of `link`)."""

    label: str
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "url": self.url}


# The fields of schema 1 and 2: a fingerprint covers them always, the inbox fields only when set,
# so a key stored before the inbox existed still matches a retry of the same body.
_FIRST_FIELDS = ("user_ids", "message", "link", "kind", "data")


@dataclass(frozen=True, slots=True)
class Draft:
    """What a publisher asks to store, already validated; the store assigns seq and time."""

    user_ids: tuple[str, ...]
    message: str
    link: str | None = None
    kind: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    category: str | None = None
    actor: Actor | None = None
    actions: tuple[Action, ...] = ()
    group: str | None = None
    expires_ms: int | None = None
    # When to deliver (scheduled); None: now. Not stored with the notification, but part of the
    # fingerprint, so a key reused for another time is a conflict.
    deliver_ms: int | None = None
    # The users the publisher named, when some of them are skipped (they muted the category):
    # the fingerprint is of what was asked, so a retry after a preference change still replays.
    audience: tuple[str, ...] | None = None

    def fingerprint(self) -> str:
        """A digest of the canonical publish (every field, keys sorted), stored with an
        idempotency key so a reuse of the key with a different body can be told apart."""
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "audience":
                continue
            value = getattr(self, f.name)
            if f.name == "user_ids" and self.audience is not None:
                value = self.audience
            if f.name not in _FIRST_FIELDS and value in (None, ()):
                continue
            if isinstance(value, Actor):
                value = value.to_json()
            elif f.name == "actions":
                value = [a.to_json() for a in value]
            fields[f.name] = value
        text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# Not slotted: `dumps` caches its line on the instance (the publish answer and the SSE frame of
# a notification share one encoding).
@dataclass(frozen=True)
class Notification:
    user_id: str
    seq: int
    message: str
    link: str | None
    kind: str | None
    data: dict[str, Any]
    created_ms: int
    read_ms: int | None = None
    category: str | None = None
    actor: Actor | None = None
    actions: tuple[Action, ...] = ()
    group: str | None = None
    expires_ms: int | None = None
    seen_ms: int | None = None
    archived_ms: int | None = None
    # Snoozed: hidden from lists, counts, streams, push and email until then (design v3).
    snoozed_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.seq,
            "user_id": self.user_id,
            "message": self.message,
            "link": self.link,
            "kind": self.kind,
            "data": self.data,
            "category": self.category,
            "actor": None if self.actor is None else self.actor.to_json(),
            "actions": [a.to_json() for a in self.actions],
            "group": self.group,
            "created_at": iso_ms(self.created_ms),
            "expires_at": _iso_or_none(self.expires_ms),
            "read_at": _iso_or_none(self.read_ms),
            "seen_at": _iso_or_none(self.seen_ms),
            "archived_at": _iso_or_none(self.archived_ms),
            "snoozed_until": _iso_or_none(self.snoozed_ms),
        }

    @functools.cached_property
    def line(self) -> str:
        """`dumps()`, computed once per notification."""
        return self.dumps()

    def dumps(self) -> str:
        """One line of JSON, safe in an SSE `data:` line (see `one_line_json`)."""
        return one_line_json(self.to_json())


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of `Store.add`: the notifications, and whether they existed already."""

    notifications: tuple[Notification, ...]
    replayed: bool = False
    # (user_id, reason) of the users the publish did not store for: "muted".
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Preferences:
    """What a user chose: categories they do not want, and the ways they may be reached."""

    muted_categories: tuple[str, ...] = ()
    # The channels (by their name in tidings.channels.CHANNELS: "push", "email") the user turned
    # off. Every other one is on, so a channel added later is on for everyone until they say no.
    channels_off: frozenset[str] = frozenset()

    def allows(self, channel: str) -> bool:
        return channel not in self.channels_off

    def turned_off(self, channel: str) -> Preferences:
        return dataclasses.replace(self, channels_off=self.channels_off | {channel})

    @classmethod
    def of(cls, muted_categories: Iterable[str], channels: Mapping[str, bool]) -> Preferences:
        """From the API's and the stores' shape: `{"push": true, "email": false}`."""
        off = frozenset(name for name, on in channels.items() if not on)
        return cls(muted_categories=tuple(muted_categories), channels_off=off)

    def to_json(self, channels: Iterable[str]) -> dict[str, Any]:
        """The API's shape, with every one of `channels` (the registry's names) on or off."""
        return {
            "muted_categories": list(self.muted_categories),
            "channels": {name: self.allows(name) for name in channels},
        }


@dataclass(frozen=True, slots=True)
class Position:
    """Where a user's log stands: the newest seq, and up to which seq retention pruned."""

    last_seq: int = 0
    pruned_upto: int = 0


@dataclass(frozen=True, slots=True)
class Counts:
    """A user's badge numbers, archived notifications left out: in all, and per category."""

    unread: int = 0
    unseen: int = 0
    # category -> (unread, unseen); only categories with something unread or unseen.
    categories: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "unread": self.unread,
            "unseen": self.unseen,
            "categories": {
                c: {"unread": unread, "unseen": unseen}
                for c, (unread, unseen) in sorted(self.categories.items())
            },
        }


# Scheduled notifications (deliver_at) and expiry.


@dataclass(frozen=True, slots=True)
class Scheduled:
    """What a publish with a future `deliver_at` stored: nothing visible yet, no seq."""

    key: str
    deliver_ms: int
    user_ids: tuple[str, ...]
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.key,
            "deliver_at": iso_ms(self.deliver_ms),
            "user_ids": list(self.user_ids),
        }


@dataclass(frozen=True, slots=True)
class Due:
    """One user's scheduled notification, claimed by this node to deliver: `draft` is for that
    user alone. `skip` names why it is not to be stored after all ("muted")."""

    key: str
    user_id: str
    deliver_ms: int
    draft: Draft
    skip: str | None = None


@dataclass(frozen=True, slots=True)
class Snooze:
    """A snoozed notification whose time came, claimed by this node to wake it."""

    user_id: str
    seq: int
    until_ms: int


# The email digest (tidings.channels.email).


@dataclass(frozen=True, slots=True)
class UserRecord:
    """What a publisher told tidings about a user: the address digests go to (None: none)."""

    user_id: str
    email: str | None
    updated_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "email": self.email, "updated_at": iso_ms(self.updated_ms)}


@dataclass(frozen=True, slots=True)
class EmailClaim:
    """One node's lease on a user's next digest: the notifications after `done_seq` up to and
    including `claimed_seq` go out in one email to `email`, by the holder of `owner` only."""

    user_id: str
    email: str
    done_seq: int
    claimed_seq: int
    owner: str
    # Failed attempts at this digest so far (the backoff grows with it).
    attempts: int = 0
    # The store's own handle on the lease, when the owner alone does not name it (MongoDB).
    lease: str = ""


# --- Web Push (issue 11) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's PushSubscription, stored per user, and its delivery cursor.

    The notification log is the outbox: `done_seq` is the newest seq of the user that this
    subscription is finished with (pushed, or skipped for a reason). A node sends only under a
    lease on the row (`lease_owner` until `lease_until`), taken by compare-and-set.
    """

    endpoint: str
    user_id: str
    p256dh: str
    auth: str
    created_ms: int = 0
    done_seq: int = 0
    lease_owner: str | None = None
    lease_until: int = 0
    # After a 429, 5xx or network failure: not before this time, and how many in a row.
    retry_ms: int = 0
    failures: int = 0
