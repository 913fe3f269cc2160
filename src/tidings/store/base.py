"""The store contract: the database is the event log, and every backend honours it alike.

The contract is split by concern, as centrifuge splits `Broker` from `PresenceManager`: the log
(`LogStore`), the user's inbox (`InboxStore`) and preferences (`PreferenceStore`), timed
delivery and expiry (`ScheduleStore`), snooze (`SnoozeStore`), users and the email digest
(`EmailStore`), Web Push subscriptions (`PushStore`) and presence (`PresenceStore`). `Store` is
all of them plus the connection's life: what a backend implements and the service holds. A
consumer is typed with the narrow protocols it uses (the digest with `LogStore`,
`PreferenceStore` and `EmailStore`, …), so what it may call is visible where it is declared.

`tests/contract` runs one suite against every backend (and `memory.py`); what a method's
docstring promises here is what that suite checks. Shared logic lives in `store/common.py`; a
backend holds only its I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from tidings.models import (
    Counts,
    Draft,
    Due,
    EmailClaim,
    Notification,
    Position,
    Preferences,
    PushSubscription,
    Scheduled,
    Snooze,
    Stored,
    UserRecord,
)

__all__ = [
    "EmailStore",
    "IdempotencyConflict",
    "InboxStore",
    "LogStore",
    "PreferenceStore",
    "PresenceStore",
    "PushStore",
    "ScheduleStore",
    "SnoozeStore",
    "Store",
    "StoreUnavailable",
    "Subscribed",
    "operations",
]

# What `add_push_subscription` did: stored a new one, updated one with that endpoint, or
# refused because the user has as many as allowed.
Subscribed = Literal["created", "updated", "full"]


class StoreUnavailable(RuntimeError):
    """The database cannot answer now (down, overloaded, or this node's limit on concurrent
    store work is reached). A publish that raised it may or may not have been stored; a retry
    with the same idempotency key is always safe. Answered 503 with `retry-after`."""


class IdempotencyConflict(ValueError):
    """An idempotency key was reused with a different publish. Nothing was stored; answered 409."""


class LogStore(Protocol):
    """The event log: per user, notifications numbered 1, 2, 3, … in commit order, read back in
    that order by streams, push and email. Retention prunes the oldest."""

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

    async def prune(self, older_than_ms: int, batch: int) -> int:
        """Delete at most `batch` notifications created before `older_than_ms` (and idempotency
        keys and finished scheduled rows as old), raising the users' `pruned_upto` in the
        same step; return the count."""


class InboxStore(Protocol):
    """The user's inbox over the log: the list and its counts, seen, read, archived, deleted."""

    async def page(
        self,
        user_id: str,
        *,
        limit: int,
        before: int | None,
        unread_only: bool,
        category: str | None = None,
        archived: bool = False,
        snoozed: bool = False,
    ) -> list[Notification]:
        """Newest first; `before` excludes that seq and everything newer. Only the archived
        ones with `archived`, else only the others; only `category`'s when it is given. Only
        the snoozed ones with `snoozed`, else only the others (as everywhere: `after`, the
        counts, `group_heads`, and `mark_read`/`mark_seen` with `up_to` leave snoozed ones
        out)."""

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

    async def delete(self, user_id: str, seq: int) -> bool:
        """Remove one of the user's notifications; False when it was not there."""


class PreferenceStore(Protocol):
    """Each user's preferences: the categories they muted, the channels that reach them when
    they are away. Read on every publish (muting) and by each channel."""

    async def preferences(self, user_id: str) -> Preferences:
        """The user's preferences; the defaults for a user who never set any."""

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        """Replace the user's preferences."""

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        """Those of `user_ids` who muted `category`."""


class ScheduleStore(Protocol):
    """Timed delivery (`deliver_at`) and expiry: scheduled rows, invisible until a node claims
    them with a lease and delivers them through the log's ordinary add; and the expiry times the
    sweep tells streams about."""

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

    async def renew_due(self, rows: Sequence[Due], lease_ms: int) -> int:
        """Extend the lease of those of the claimed `rows` still pending to `lease_ms` from now:
        a live node that is still delivering them keeps the other nodes off, so the lease can be
        short and a dead node's rows are taken over soon. Rows a delivery is committing right
        now may be left as they are. Return how many were renewed."""

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

    async def delivered_between(self, after_ms: int, upto_ms: int, limit: int) -> list[str]:
        """The users (each once, at most `limit`) of scheduled rows marked delivered at a time
        after `after_ms` and at or before `upto_ms`: what a node re-announces to its own streams,
        in case the node that delivered them died before announcing them."""

    async def next_expiry(self, after_ms: int) -> int | None:
        """The earliest `expires_at` after `after_ms` among live notifications; None if none."""

    async def expired_between(
        self, after_ms: int, upto_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        """(user_id, seq) of the live notifications whose `expires_at` is after `after_ms` and
        at or before `upto_ms`, at most `limit`."""


class SnoozeStore(Protocol):
    """Snooze (design v3). A snoozed notification (`snoozed_ms` set) is hidden from lists,
    counts, `after` (so from streams, push and email) until it is woken: by the user
    (`unsnooze`), or when due by one node (`claim_snoozed` leases it as `claim_due` does,
    `wake_snoozed` wakes it once)."""

    async def snooze(self, user_id: str, ids: Sequence[int], until_ms: int) -> list[int]:
        """Snooze the user's own notifications among `ids` until `until_ms` (again: a new
        time); return the seqs changed, ascending. Someone else's and deleted ones are not."""

    async def unsnooze(self, user_id: str, ids: Sequence[int]) -> list[Notification]:
        """Wake the user's own snoozed notifications among `ids` now, unread and unseen;
        return them as woken, ascending. Of concurrent wakers exactly one gets each."""

    async def claim_snoozed(self, lease_ms: int, limit: int) -> list[Snooze]:
        """Lease up to `limit` snoozed notifications whose time has come and whose lease (if
        any) ran out, for `lease_ms`: no other node claims them meanwhile. Earliest first."""

    async def renew_snoozed(self, claimed: Sequence[Snooze], lease_ms: int) -> int:
        """Extend the lease of those of the claimed snoozes still snoozed until the claimed time
        to `lease_ms` from now (as `renew_due`); return how many were renewed."""

    async def wake_snoozed(self, claimed: Sequence[Snooze]) -> list[Notification]:
        """Wake the claimed notifications still snoozed until the claimed time (not one the
        user snoozed again or woke meanwhile), unread and unseen; return those woken. Once
        per snooze however often it is called."""

    async def next_snoozed(self) -> int | None:
        """The earliest `snoozed_ms` of the snoozed notifications (claimed or not); None when
        none is."""


class EmailStore(Protocol):
    """Users and the email digest (tidings.channels.email). Each user with an address has a cursor:
    `done_seq` (everything up to it is dealt with), `claimed_seq` (the end of the digest a node
    is sending or tried to send), a lease (owner, until) and `next_ms` (no digest before it: the
    window after a sent one, or the backoff after a failure). "Now" is the store's clock."""

    async def user(self, user_id: str) -> UserRecord | None:
        """The user's record; None when no publisher ever set one."""

    async def set_user_email(self, user_id: str, email: str | None) -> UserRecord:
        """Set (or with None remove) the user's address. When the user had no address before,
        their digests start after their newest seq now: what was published before is never
        emailed. Changing one address for another keeps the cursor."""

    async def email_due(self, after_ms: int, limit: int) -> list[str]:
        """At most `limit` users whose digest is due: an address, no live lease, `next_ms`
        reached, and a notification after `done_seq` created at least `after_ms` ago (or an
        unfinished claim to send again)."""

    async def claim_email(
        self, user_id: str, owner: str, after_ms: int, lease_ms: int
    ) -> EmailClaim | None:
        """Take the lease on the user's next digest, atomically: of concurrent callers (on any
        node) at most one gets a claim until it finishes, releases or the lease runs out.
        The digest ends at the newest seq created at least `after_ms` ago, or where an
        unfinished claim ended (a node died holding it: the same digest goes out again).
        None when it is not due or someone else holds it."""

    async def finish_email(self, claim: EmailClaim, next_ms: int) -> bool:
        """The digest is dealt with: `done_seq` moves to its end, the lease is dropped, and no
        digest before `next_ms`. False (nothing changed) when the claim was lost meanwhile."""

    async def release_email(self, claim: EmailClaim, next_ms: int, *, keep_claim: bool) -> bool:
        """Sending failed: the lease is dropped, `done_seq` stays, the next try is at `next_ms`
        and counts one attempt more. `keep_claim`: the server may have accepted the message, so
        the next try sends the very same digest (same Message-ID) instead of a larger one.
        False when the claim was lost meanwhile."""


class PushStore(Protocol):
    """Web Push subscriptions (issue 11), the store as outbox: each has a `done_seq` cursor into
    its user's log and a lease a node takes while it pushes."""

    async def add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        """Store `sub` for `sub.user_id`, keyed by its endpoint. A new one (or one that moves to
        another user: a shared browser) starts at the user's current last seq, so only newer
        notifications are pushed to it; the same user's endpoint again only updates the keys.
        "full" (nothing stored) when the user already has `limit` others."""

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        """Delete the user's subscription with that endpoint; False when they have none."""

    async def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        """The user's subscriptions, oldest first."""

    async def drop_push_subscription(self, endpoint: str) -> None:
        """Delete the subscription (its push service answered 404 or 410), whoever holds it."""

    async def push_due(self, cutoff_ms: int, limit: int) -> list[PushSubscription]:
        """At most `limit` subscriptions not leased now, not waiting to retry, whose user has a
        notification newer than their `done_seq` created at or before `cutoff_ms`."""

    async def claim_push(self, endpoint: str, owner: str, lease_ms: int) -> PushSubscription | None:
        """Compare-and-set: lease the subscription to `owner` for `lease_ms` from now if no
        lease is running; the row as claimed, or None (another holds it, or it is gone)."""

    async def advance_push(self, endpoint: str, owner: str, done_seq: int) -> bool:
        """Raise `done_seq` (never lower it) while `owner` still holds the lease, keeping the
        lease; False when the lease was lost (expired and taken), and nothing changed."""

    async def release_push(
        self, endpoint: str, owner: str, done_seq: int, *, retry_ms: int = 0, failures: int = 0
    ) -> None:
        """Raise `done_seq`, set the retry time and failure count, and end `owner`'s lease (a
        no-op when `owner` no longer holds a running lease: one that lapsed may be another's)."""


class PresenceStore(Protocol):
    """Which users have a stream open on any node, and until when: what tells a channel for
    users who are away that a user is away."""

    async def record_presence(
        self, node: str, alive_ms: int, opened: Sequence[str], closed: Sequence[tuple[str, int]]
    ) -> None:
        """Node `node` is alive at `alive_ms`; `opened` users have a stream open on it (from now
        until told otherwise, for as long as the node keeps reporting), and each of `closed` had
        its last stream on it close at that time. Only changes are sent; the node's report
        itself, once per interval, keeps its open users current."""

    async def presence(self, user_id: str) -> int:
        """The last time the user is known to have had a stream open on any node (0: never): a
        stream open now counts until its node last reported, a closed one until it closed."""

    async def forget_presence(self, before_ms: int) -> None:
        """Drop what is known only before `before_ms`: streams closed before it, and nodes (with
        their streams) that last reported before it."""


class Store(
    LogStore,
    InboxStore,
    PreferenceStore,
    ScheduleStore,
    SnoozeStore,
    EmailStore,
    PushStore,
    PresenceStore,
    Protocol,
):
    """Every concern, and the connection's life: what a backend implements."""

    async def open(self) -> None:
        """Connect, and create or upgrade the schema in place (idempotent; several nodes may
        open at once). Raise `StoreUnavailable` for a database a newer tidings has upgraded."""

    async def close(self) -> None:
        """Release connections; a call waiting on the store fails with `StoreUnavailable`."""

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the database cannot answer."""


def operations() -> tuple[str, ...]:
    """The name of every method of `Store` (its concerns' and its own): what a wrapper that
    treats each operation alike (`store/wrapping.py`) wraps."""
    names: dict[str, None] = {}
    for protocol in reversed(Store.__mro__):
        if protocol.__module__ == __name__:
            names.update(dict.fromkeys(n for n, v in vars(protocol).items() if callable(v)))
    return tuple(n for n in names if not n.startswith("_"))
