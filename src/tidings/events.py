"""What changed, told to open streams: the events the bus carries from the node that changed
something to every node's hub (`Event`), and `Expired`, which each node tells its own streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tidings.clock import iso_ms

if TYPE_CHECKING:
    from tidings.models import Notification

__all__ = [
    "ArchiveChanged",
    "Deleted",
    "Event",
    "Expired",
    "Published",
    "ReadChanged",
    "Resync",
    "ScheduleHint",
    "SeenChanged",
    "Snoozed",
    "Unsnoozed",
    "UserResync",
]


@dataclass(frozen=True, slots=True)
class Published:
    user_id: str
    seq: int
    # Present when the bus can carry it, so a node delivers without a store query.
    notification: Notification | None = None


@dataclass(frozen=True, slots=True)
class ReadChanged:
    user_id: str
    unread: int
    ids: tuple[int, ...] | None = None
    up_to: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"unread": self.unread}
        if self.up_to is not None:
            body["up_to"] = self.up_to
        else:
            body["ids"] = list(self.ids or ())
        return body


@dataclass(frozen=True, slots=True)
class Deleted:
    user_id: str
    seq: int
    unread: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.seq, "unread": self.unread}


@dataclass(frozen=True, slots=True)
class SeenChanged:
    """Everything up to `up_to` was seen (the bell was opened); `unseen` is what is left."""

    user_id: str
    up_to: int
    unseen: int

    def to_json(self) -> dict[str, Any]:
        return {"up_to": self.up_to, "unseen": self.unseen}


@dataclass(frozen=True, slots=True)
class ArchiveChanged:
    """`ids` were archived (or unarchived); the counts leave archived notifications out."""

    user_id: str
    ids: tuple[int, ...]
    archived: bool
    unread: int
    unseen: int

    @property
    def name(self) -> str:
        """The SSE event name."""
        return "notifications-archived" if self.archived else "notifications-unarchived"

    def to_json(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "unread": self.unread, "unseen": self.unseen}


@dataclass(frozen=True, slots=True)
class Resync:
    """The bus may have dropped messages (it reconnected): every stream checks the store."""


@dataclass(frozen=True, slots=True)
class UserResync:
    """The bus may have dropped this user's messages (the user's subscription just became live,
    or its shard reconnected, or an announcement failed): the user's streams check the store."""

    user_id: str


@dataclass(frozen=True, slots=True)
class ScheduleHint:
    """Something scheduled falls due at `deliver_ms`: every node's scheduler looks then (so an
    idle node sleeps until the next due time instead of polling the store)."""

    deliver_ms: int


@dataclass(frozen=True, slots=True)
class Snoozed:
    """`ids` were snoozed until `until_ms`: open bells drop them; the counts leave them out."""

    user_id: str
    ids: tuple[int, ...]
    until_ms: int
    unread: int
    unseen: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "until": iso_ms(self.until_ms),
            "unread": self.unread,
            "unseen": self.unseen,
        }


@dataclass(frozen=True, slots=True)
class Unsnoozed:
    """Snoozed notifications came back (due, or unsnoozed by the user), unread and unseen, with
    their own seqs: open bells put them back in place. Announced once, by the node that woke
    them."""

    user_id: str
    notifications: tuple[Notification, ...]
    unread: int
    unseen: int
    # Seqs of woken notifications the bus could not carry (too large for a message): the
    # receiving stream reads them from the store.
    missing: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "notifications": [n.to_json() for n in self.notifications],
            "unread": self.unread,
            "unseen": self.unseen,
        }


Event = (
    Published
    | ReadChanged
    | Deleted
    | SeenChanged
    | ArchiveChanged
    | Resync
    | UserResync
    | ScheduleHint
    | Snoozed
    | Unsnoozed
)


@dataclass(frozen=True, slots=True)
class Expired:
    """`ids` passed their `expires_at`: open bells drop them. Sent by each node to its own
    streams (every node looks for what expired among its streams' users), never over the bus."""

    user_id: str
    ids: tuple[int, ...]
    unread: int
    unseen: int

    def to_json(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "unread": self.unread, "unseen": self.unseen}
