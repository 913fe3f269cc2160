"""The store contract: the database is the event log, and every backend honours it alike.

`tests/contract` runs one suite against every backend; what a method's docstring promises here
is what that suite checks. Shared logic lives in `store/common.py`; a backend holds only its I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tidings.models import (
    Counts,
    Draft,
    Due,
    Notification,
    Position,
    Preferences,
    Scheduled,
    Stored,
)

__all__ = ["IdempotencyConflict", "Store", "StoreUnavailable"]


class StoreUnavailable(RuntimeError):
    """The database cannot answer now (down, overloaded, or this node's limit on concurrent
    store work is reached). A publish that raised it may or may not have been stored; a retry
    with the same idempotency key is always safe. Answered 503 with `retry-after`."""


class IdempotencyConflict(ValueError):
    """An idempotency key was reused with a different publish. Nothing was stored; answered 409."""


class Store(Protocol):
    async def open(self) -> None:
        """Connect, and create or upgrade the schema in place (idempotent; several nodes may
        open at once). Raise `StoreUnavailable` for a database a newer tidings has upgraded."""

    async def close(self) -> None:
        """Release connections; a call waiting on the store fails with `StoreUnavailable`."""

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the database cannot answer."""

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        """Store one notification per user in `draft.user_ids`, all or none.

        Each gets its user's next seq (never one handed out before, even if deleted or pruned),
        and commit order equals seq order per user, also with concurrent writers in other
        processes. A repeated `idempotency_key` with the same draft stores nothing and returns
        what the first call stored, `replayed`; with a different draft it raises
        `IdempotencyConflict`. A key whose first call failed midway is completed by the retry,
        never stored twice, and returned as a first publish (not `replayed`).
        """

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        """The user's notifications with a seq greater than `seq`, ascending, at most `limit`;
        deleted, pruned and expired ones are absent. A seq is never visible before a smaller
        one."""

    async def position(self, user_id: str) -> Position:
        """The newest seq handed out to the user, and up to which seq pruning removed (0, 0
        for a user never published to)."""

    async def page(
        self,
        user_id: str,
        *,
        limit: int,
        before: int | None,
        unread_only: bool,
        category: str | None = None,
        archived: bool = False,
    ) -> list[Notification]:
        """Newest first; `before` excludes that seq and everything newer. Only the archived
        ones with `archived`, else only the others; only `category`'s when it is given."""

    async def unread_count(self, user_id: str) -> int:
        """The user's notifications not marked read, not archived and not deleted."""

    async def counts(self, user_id: str) -> Counts:
        """Unread and unseen, in all and per category, of the user's notifications that are
        not archived (nor deleted)."""

    async def group_heads(
        self, user_id: str, groups: Sequence[str], *, category: str | None, archived: bool
    ) -> dict[str, tuple[int, int]]:
        """Per group, among the user's unread notifications in it (archived or not, as
        `archived` says; of `category` when given): the newest seq and how many there are.
        Groups with none are absent."""

    async def mark_seen(self, user_id: str, up_to: int) -> list[int]:
        """Mark the user's unseen notifications up to and including `up_to` seen (never a newer
        one, whenever it commits); return the seqs that changed, ascending."""

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> list[int]:
        """Archive (or unarchive) the user's own notifications among `ids`; return the seqs
        that changed, ascending. Someone else's, deleted ones and those already in that state
        are not changed."""

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> list[int]:
        """Mark the user's own unread notifications read; return the seqs that changed,
        ascending. Someone else's seqs, deleted and already read ones are not changed."""

    async def preferences(self, user_id: str) -> Preferences:
        """The user's preferences; the defaults for a user who never set any."""

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        """Replace the user's preferences."""

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        """Those of `user_ids` who muted `category`."""

    async def delete(self, user_id: str, seq: int) -> bool:
        """Remove one of the user's notifications; False when it was not there."""

    async def prune(self, older_than_ms: int, batch: int) -> int:
        """Delete at most `batch` notifications created before `older_than_ms` (and idempotency
        keys and finished scheduled rows as old), raising the users' `pruned_upto` in the
        same step; return the count."""

    # --- scheduled notifications (deliver_at) and expiry ------------------------------------

    async def schedule(self, draft: Draft, key: str) -> Scheduled | None:
        """Keep `draft` (its `deliver_ms` set) to deliver later: one pending row per user, under
        `key`. A key already scheduled with the same draft stores nothing and returns what it
        holds, `replayed` (also once delivered or cancelled); with another draft, or a key an
        ordinary publish used, it raises `IdempotencyConflict`. None, storing nothing, when the
        key is unknown and `deliver_ms` is not in the future: the caller publishes it now."""

    async def claim_due(self, lease_ms: int, limit: int) -> list[Due]:
        """Lease up to `limit` pending rows whose time has come and whose lease (if any) ran
        out, for `lease_ms`: no other node claims them meanwhile. Oldest due first, then in the
        order they were scheduled. A node that dies holding a lease leaves its rows to be
        claimed again when it runs out."""

    async def deliver(self, rows: Sequence[Due]) -> list[Stored]:
        """Store the notifications of claimed rows and mark the rows delivered (those with
        `skip` marked so, storing nothing): the rows of one key as one publish to their users,
        its users' next seqs. Once per row however often it is called (two nodes, a lease that
        ran out): where the store has transactions the mark is in the same one and only rows
        still pending are stored; otherwise the notifications are stored under
        `delivery_key(key)`, fenced per user, and the mark follows. What was stored (or found
        stored), per key."""

    async def cancel_scheduled(self, key: str) -> tuple[int, tuple[str, ...]]:
        """Cancel the key's pending rows (on a store without transactions, not one a node is
        delivering right now); return how many were cancelled, and the states of the key's
        rows afterwards (`delivered`, `cancelled`, `muted`; `pending` for one being delivered):
        with none cancelled, they say why. (0, ()) for an unknown key."""

    async def next_due(self) -> int | None:
        """The earliest `deliver_ms` of the pending rows (claimed or not); None when none is."""

    async def next_expiry(self, after_ms: int) -> int | None:
        """The earliest `expires_at` after `after_ms` among live notifications; None if none."""

    async def expired_between(
        self, after_ms: int, upto_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        """(user_id, seq) of the live notifications whose `expires_at` is after `after_ms` and
        at or before `upto_ms`, at most `limit`."""
