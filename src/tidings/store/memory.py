"""An in-memory store: the `Store` contract in dicts, for tests and trying tidings out.

`TIDINGS_DATABASE_URL=memory://` keeps everything in the server's memory: gone when it stops,
and invisible to another process (so not for `--workers N`, nor for `tidings send` beside a
server). It shares the backends' rules from `store/common.py` (what a publish stores, the
fingerprints, the counts), so it answers as they do; `tests/contract` checks it with them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tidings.clock import Clock
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
from tidings.store.base import Subscribed
from tidings.store.common import (
    CANCELLED,
    DELIVERED,
    PENDING,
    by_key,
    check_fingerprint,
    counts_of,
    made,
    used_now,
)

__all__ = ["Database", "MemoryStore", "drop"]


@dataclass
class Database:
    """One in-memory database: what a backend keeps in its tables."""

    rows: dict[str, list[Notification]] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    pruned: dict[str, int] = field(default_factory=dict)
    # idempotency key -> ((user_id, seq) it stored, the draft's fingerprint, created_ms)
    keys: dict[str, tuple[list[tuple[str, int]], str, int]] = field(default_factory=dict)
    prefs: dict[str, Preferences] = field(default_factory=dict)
    # (key, user_id) -> [the row's Due, its fingerprint, its state, lease_until, done_ms]
    scheduled: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    emails: dict[str, _Cursor] = field(default_factory=dict)
    # (user_id, seq) -> the lease of a snoozed notification being woken.
    snooze_leases: dict[tuple[str, int], int] = field(default_factory=dict)
    push: dict[str, PushSubscription] = field(default_factory=dict)
    # (user, node) -> closed_ms (None: open); node -> its last report.
    streams: dict[tuple[str, str], int | None] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)


# The named databases of this process (`memory://NAME`).
_DATABASES: dict[str, Database] = {}


def drop(name: str) -> None:
    """Forget the database `memory://NAME` (the next store on that name starts empty)."""
    _DATABASES.pop(name, None)


class MemoryStore:
    """The store contract in dicts, in this process: no durability, no other process sees it.

    `memory://NAME`: every store opened on the same name in this process shares one database
    (as two connections to one file would), until `drop(NAME)`; `memory://` alone is a database
    of its own. The unit tier runs the service on it; `tests/contract` holds it to the contract
    every backend keeps. Each operation runs without an await in between, so one event loop
    makes it atomic (two nodes in one process claim, lease and deliver as on a database).
    """

    def __init__(self, name: str = "", *, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.name = name
        self.db = _DATABASES.setdefault(name, Database()) if name else Database()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        now = self.clock.now_ms()
        if idempotency_key is not None and idempotency_key in self.db.keys:
            refs, fingerprint, _ = self.db.keys[idempotency_key]
            check_fingerprint(idempotency_key, fingerprint, draft)
            # What the first call stored and is still there (not deleted or pruned since).
            found = (self._find(user_id, seq) for user_id, seq in refs)
            return Stored(tuple(n for n in found if n is not None), replayed=True)
        seqs = []
        for user_id in draft.user_ids:
            self.db.last[user_id] = self.db.last.get(user_id, 0) + 1
            seqs.append((user_id, self.db.last[user_id]))
        # The backends' own draft-to-notification step, so this stores what they store.
        stored = made(draft, seqs, now)
        for n in stored:
            self.db.rows.setdefault(n.user_id, []).append(n)
        if idempotency_key is not None:
            self.db.keys[idempotency_key] = (seqs, draft.fingerprint(), now)
        return Stored(stored)

    def _find(self, user_id: str, seq: int) -> Notification | None:
        return next((n for n in self.db.rows.get(user_id, []) if n.seq == seq), None)

    def _live(self, user_id: str) -> list[Notification]:
        """The user's notifications every list, count and replay shows: not snoozed, not
        expired."""
        now = self.clock.now_ms()
        return [
            n
            for n in self.db.rows.get(user_id, [])
            if n.snoozed_ms is None and (n.expires_ms is None or n.expires_ms > now)
        ]

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        return [n for n in self._live(user_id) if n.seq > seq][:limit]

    async def position(self, user_id: str) -> Position:
        return Position(self.db.last.get(user_id, 0), self.db.pruned.get(user_id, 0))

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
        now = self.clock.now_ms()
        rows = [
            n
            for n in reversed(self.db.rows.get(user_id, []))
            if (before is None or n.seq < before)
            and (n.expires_ms is None or n.expires_ms > now)
            and (n.snoozed_ms is not None) == snoozed
            and not (unread_only and n.read_ms is not None)
            and (category is None or n.category == category)
            and (n.archived_ms is not None) == archived
        ]
        return rows[:limit]

    async def unread_count(self, user_id: str) -> int:
        return (await self.counts(user_id)).unread

    async def counts(self, user_id: str) -> Counts:
        rows = [
            (n.category, int(n.read_ms is None), int(n.seen_ms is None))
            for n in self._live(user_id)
            if n.archived_ms is None
        ]
        return counts_of(rows)

    async def group_heads(
        self, user_id: str, groups: Sequence[str], *, category: str | None, archived: bool
    ) -> dict[str, tuple[int, int]]:
        heads: dict[str, tuple[int, int]] = {}
        for n in self._live(user_id):
            if (
                n.group is not None
                and n.group in groups
                and n.read_ms is None
                and (category is None or n.category == category)
                and (n.archived_ms is not None) == archived
            ):
                head, count = heads.get(n.group, (0, 0))
                heads[n.group] = (max(head, n.seq), count + 1)
        return heads

    async def preferences(self, user_id: str) -> Preferences:
        return self.db.prefs.get(user_id, Preferences())

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        self.db.prefs[user_id] = preferences

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        return {
            u for u in user_ids if category in self.db.prefs.get(u, Preferences()).muted_categories
        }

    async def mark_seen(self, user_id: str, up_to: int) -> list[int]:
        changed: list[int] = []
        rows = self.db.rows.get(user_id, [])
        for index, n in enumerate(rows):
            if n.seq <= up_to and n.seen_ms is None and n.snoozed_ms is None:
                rows[index] = dataclasses.replace(n, seen_ms=self.clock.now_ms())
                changed.append(n.seq)
        return changed

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> list[int]:
        changed: list[int] = []
        rows = self.db.rows.get(user_id, [])
        for index, n in enumerate(rows):
            if n.seq in ids and (n.archived_ms is not None) != archived:
                rows[index] = dataclasses.replace(
                    n, archived_ms=self.clock.now_ms() if archived else None
                )
                changed.append(n.seq)
        return changed

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> list[int]:
        changed: list[int] = []
        rows = self.db.rows.get(user_id, [])
        for index, n in enumerate(rows):
            wanted = (ids is not None and n.seq in ids) or (
                up_to is not None and n.seq <= up_to and n.snoozed_ms is None
            )
            if wanted and n.read_ms is None:
                rows[index] = dataclasses.replace(n, read_ms=self.clock.now_ms())
                changed.append(n.seq)
        return changed

    async def delete(self, user_id: str, seq: int) -> bool:
        rows = self.db.rows.get(user_id, [])
        kept = [n for n in rows if n.seq != seq]
        self.db.rows[user_id] = kept
        return len(kept) != len(rows)

    async def prune(self, older_than_ms: int, batch: int) -> int:
        old = sorted(
            (n.created_ms, n.user_id, n.seq)
            for rows in self.db.rows.values()
            for n in rows
            if n.created_ms < older_than_ms
        )[:batch]
        gone = {(user_id, seq) for _, user_id, seq in old}
        for _, user_id, seq in old:
            self.db.pruned[user_id] = max(self.db.pruned.get(user_id, 0), seq)
        for user_id in {user_id for _, user_id, _ in old}:
            rows = self.db.rows[user_id]
            self.db.rows[user_id] = [n for n in rows if (user_id, n.seq) not in gone]
        # As old: idempotency keys, and scheduled rows that are done (pending ones stay).
        keys = [k for k, (_, _, made_ms) in self.db.keys.items() if made_ms < older_than_ms]
        for key in keys[:batch]:
            del self.db.keys[key]
        done = [
            k
            for k, row in self.db.scheduled.items()
            if row[2] != PENDING and row[4] < older_than_ms
        ]
        for row_key in done[:batch]:
            del self.db.scheduled[row_key]
        return len(old)

    # --- scheduled notifications (deliver_at) and expiry ------------------------------------

    async def schedule(self, draft: Draft, key: str) -> Scheduled | None:
        assert draft.deliver_ms is not None
        rows = [row for (k, _), row in self.db.scheduled.items() if k == key]
        if rows:
            check_fingerprint(key, rows[0][1], draft)
            return Scheduled(key, draft.deliver_ms, draft.user_ids, replayed=True)
        if draft.deliver_ms <= self.clock.now_ms():
            return None
        if key in self.db.keys:
            raise used_now(key)
        for user_id in draft.user_ids:
            one = dataclasses.replace(draft, user_ids=(user_id,), deliver_ms=None)
            row = Due(key, user_id, draft.deliver_ms, one)
            self.db.scheduled[(key, user_id)] = [row, draft.fingerprint(), PENDING, 0, 0]
        return Scheduled(key, draft.deliver_ms, draft.user_ids)

    async def claim_due(self, lease_ms: int, limit: int) -> list[Due]:
        now = self.clock.now_ms()
        claimed: list[Due] = []
        for row in sorted(self.db.scheduled.values(), key=lambda r: r[0].deliver_ms):
            if len(claimed) < limit and row[2] == PENDING and row[0].deliver_ms <= now > row[3]:
                row[3] = now + lease_ms
                claimed.append(row[0])
        return claimed

    async def renew_due(self, rows: Sequence[Due], lease_ms: int) -> int:
        count = 0
        for due in rows:
            row = self.db.scheduled.get((due.key, due.user_id))
            if row is not None and row[2] == PENDING:
                row[3] = self.clock.now_ms() + lease_ms
                count += 1
        return count

    async def deliver(self, rows: Sequence[Due]) -> list[Stored]:
        delivered: list[Stored] = []
        for group in by_key(rows):
            users: list[str] = []
            for due in group:
                row = self.db.scheduled[(due.key, due.user_id)]
                if row[2] == PENDING:
                    row[2] = due.skip or DELIVERED
                    row[4] = self.clock.now_ms()  # done_ms
                    if due.skip is None:
                        users.append(due.user_id)
            if users:
                draft = dataclasses.replace(group[0].draft, user_ids=tuple(users))
                delivered.append(await self.add(draft))
        return delivered

    async def cancel_scheduled(self, key: str) -> tuple[int, tuple[str, ...]]:
        rows = [row for (k, _), row in self.db.scheduled.items() if k == key]
        count = 0
        for row in rows:
            if row[2] == PENDING:
                row[2] = CANCELLED
                row[4] = self.clock.now_ms()  # done_ms
                count += 1
        return count, tuple(sorted({row[2] for row in rows}))

    # --- snooze ---------------------------------------------------------------------------------

    async def snooze(self, user_id: str, ids: Sequence[int], until_ms: int) -> list[int]:
        changed: list[int] = []
        rows = self.db.rows.get(user_id, [])
        for index, n in enumerate(rows):
            if n.seq in ids:
                rows[index] = dataclasses.replace(n, snoozed_ms=until_ms)
                self.db.snooze_leases.pop((user_id, n.seq), None)
                changed.append(n.seq)
        return changed

    def _wake(self, user_id: str, seq: int, until_ms: int | None) -> Notification | None:
        rows = self.db.rows.get(user_id, [])
        for index, n in enumerate(rows):
            if n.seq == seq and n.snoozed_ms is not None and until_ms in (None, n.snoozed_ms):
                rows[index] = dataclasses.replace(n, snoozed_ms=None, read_ms=None, seen_ms=None)
                self.db.snooze_leases.pop((user_id, seq), None)
                return rows[index]
        return None

    async def unsnooze(self, user_id: str, ids: Sequence[int]) -> list[Notification]:
        woken = [self._wake(user_id, seq, None) for seq in sorted(set(ids))]
        return [n for n in woken if n is not None]

    async def claim_snoozed(self, lease_ms: int, limit: int) -> list[Snooze]:
        now = self.clock.now_ms()
        due = sorted(
            (n.snoozed_ms, n.seq, n.user_id)
            for rows in self.db.rows.values()
            for n in rows
            if n.snoozed_ms is not None and n.snoozed_ms <= now
        )
        claimed: list[Snooze] = []
        for until, seq, user_id in due:
            if len(claimed) < limit and self.db.snooze_leases.get((user_id, seq), 0) < now:
                self.db.snooze_leases[(user_id, seq)] = now + lease_ms
                claimed.append(Snooze(user_id, seq, until))
        return claimed

    async def renew_snoozed(self, claimed: Sequence[Snooze], lease_ms: int) -> int:
        count = 0
        for c in claimed:
            for n in self.db.rows.get(c.user_id, []):
                if n.seq == c.seq and n.snoozed_ms == c.until_ms:
                    self.db.snooze_leases[(c.user_id, c.seq)] = self.clock.now_ms() + lease_ms
                    count += 1
        return count

    async def wake_snoozed(self, claimed: Sequence[Snooze]) -> list[Notification]:
        woken = [self._wake(c.user_id, c.seq, c.until_ms) for c in claimed]
        return [n for n in woken if n is not None]

    async def next_snoozed(self) -> int | None:
        return min(
            (n.snoozed_ms for rows in self.db.rows.values() for n in rows if n.snoozed_ms),
            default=None,
        )

    async def next_due(self) -> int | None:
        pending = [r[0].deliver_ms for r in self.db.scheduled.values() if r[2] == PENDING]
        return min(pending, default=None)

    async def delivered_between(self, after_ms: int, upto_ms: int, limit: int) -> list[str]:
        found = {
            user_id: None
            for (_, user_id), row in self.db.scheduled.items()
            if row[2] == DELIVERED and after_ms < row[4] <= upto_ms
        }
        return list(found)[:limit]

    async def next_expiry(self, after_ms: int) -> int | None:
        times = [
            n.expires_ms
            for rows in self.db.rows.values()
            for n in rows
            if n.expires_ms is not None and n.expires_ms > after_ms
        ]
        return min(times, default=None)

    async def expired_between(
        self, after_ms: int, upto_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        found = [
            (n.user_id, n.seq)
            for rows in self.db.rows.values()
            for n in rows
            if n.expires_ms is not None and after_ms < n.expires_ms <= upto_ms
        ]
        return found[:limit]

    def forget(self, user_id: str, up_to: int) -> None:
        """What retention does: the user's notifications up to `up_to` are gone."""
        self.db.rows[user_id] = [n for n in self.db.rows.get(user_id, []) if n.seq > up_to]
        self.db.pruned[user_id] = up_to

    # -- the email digest ------------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        cursor = self.db.emails.get(user_id)
        return None if cursor is None else cursor.record

    async def set_user_email(self, user_id: str, email: str | None) -> UserRecord:
        record = UserRecord(user_id, email, self.clock.now_ms())
        last = self.db.last.get(user_id, 0)
        cursor = self.db.emails.get(user_id)
        if cursor is None:
            self.db.emails[user_id] = _Cursor(record, done_seq=last, claimed_seq=last)
        else:
            if cursor.record.email is None:
                cursor.done_seq = max(cursor.done_seq, last)
                cursor.claimed_seq = max(cursor.claimed_seq, last)
            cursor.record = record
        return record

    async def email_due(self, after_ms: int, limit: int) -> list[str]:
        now = self.clock.now_ms()
        due = [
            u
            for u, c in sorted(self.db.emails.items(), key=lambda item: item[1].next_ms)
            if self._claimable(c, now)
            and (c.claimed_seq > c.done_seq or self._upto(u, c, now - after_ms))
        ]
        return due[:limit]

    def _claimable(self, cursor: _Cursor, now: int) -> bool:
        return (
            cursor.record.email is not None and cursor.lease_until <= now and cursor.next_ms <= now
        )

    def _upto(self, user_id: str, cursor: _Cursor, cutoff: int) -> int:
        seqs = [
            n.seq
            for n in self.db.rows.get(user_id, [])
            if n.seq > cursor.done_seq and n.created_ms <= cutoff
        ]
        return max(seqs, default=0)

    async def claim_email(
        self, user_id: str, owner: str, after_ms: int, lease_ms: int
    ) -> EmailClaim | None:
        now = self.clock.now_ms()
        cursor = self.db.emails.get(user_id)
        if cursor is None or not self._claimable(cursor, now) or cursor.record.email is None:
            return None
        upto = cursor.claimed_seq
        if upto <= cursor.done_seq:
            upto = self._upto(user_id, cursor, now - after_ms)
        if not upto:
            return None
        cursor.owner, cursor.lease_until, cursor.claimed_seq = owner, now + lease_ms, upto
        return EmailClaim(
            user_id, cursor.record.email, cursor.done_seq, upto, owner, cursor.attempts
        )

    async def finish_email(self, claim: EmailClaim, next_ms: int) -> bool:
        cursor = self.db.emails.get(claim.user_id)
        if cursor is None or cursor.owner != claim.owner:
            return False
        cursor.done_seq = cursor.claimed_seq = max(cursor.done_seq, claim.claimed_seq)
        cursor.owner, cursor.lease_until, cursor.next_ms, cursor.attempts = None, 0, next_ms, 0
        return True

    async def release_email(self, claim: EmailClaim, next_ms: int, *, keep_claim: bool) -> bool:
        cursor = self.db.emails.get(claim.user_id)
        if cursor is None or cursor.owner != claim.owner:
            return False
        if not keep_claim:
            cursor.claimed_seq = cursor.done_seq
        cursor.owner, cursor.lease_until, cursor.next_ms = None, 0, next_ms
        cursor.attempts += 1
        return True

    # --- Web Push (issue 11) ------------------------------------------------------------------

    async def add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        found = self.db.push.get(sub.endpoint)
        if found is not None and found.user_id == sub.user_id:
            self.db.push[sub.endpoint] = dataclasses.replace(
                found, p256dh=sub.p256dh, auth=sub.auth
            )
            return "updated"
        if sum(s.user_id == sub.user_id for s in self.db.push.values()) >= limit:
            return "full"
        self.db.push[sub.endpoint] = dataclasses.replace(
            sub, created_ms=self.clock.now_ms(), done_seq=self.db.last.get(sub.user_id, 0)
        )
        return "created" if found is None else "updated"

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        found = self.db.push.get(endpoint)
        if found is None or found.user_id != user_id:
            return False
        del self.db.push[endpoint]
        return True

    async def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        return [s for s in self.db.push.values() if s.user_id == user_id]

    async def drop_push_subscription(self, endpoint: str) -> None:
        self.db.push.pop(endpoint, None)

    async def push_due(self, cutoff_ms: int, limit: int) -> list[PushSubscription]:
        now = self.clock.now_ms()
        return [
            s
            for s in self.db.push.values()
            if s.lease_until <= now
            and s.retry_ms <= now
            and any(
                n.seq > s.done_seq and n.created_ms <= cutoff_ms
                for n in self.db.rows.get(s.user_id, [])
            )
        ][:limit]

    async def claim_push(self, endpoint: str, owner: str, lease_ms: int) -> PushSubscription | None:
        found = self.db.push.get(endpoint)
        now = self.clock.now_ms()
        if found is None or found.lease_until > now:
            return None
        claimed = dataclasses.replace(found, lease_owner=owner, lease_until=now + lease_ms)
        self.db.push[endpoint] = claimed
        return claimed

    async def advance_push(self, endpoint: str, owner: str, done_seq: int) -> bool:
        found = self.db.push.get(endpoint)
        if found is None or found.lease_owner != owner or found.lease_until <= self.clock.now_ms():
            return False
        self.db.push[endpoint] = dataclasses.replace(found, done_seq=max(found.done_seq, done_seq))
        return True

    async def release_push(
        self, endpoint: str, owner: str, done_seq: int, *, retry_ms: int = 0, failures: int = 0
    ) -> None:
        found = self.db.push.get(endpoint)
        if (
            found is not None
            and found.lease_owner == owner
            and found.lease_until > self.clock.now_ms()
        ):
            self.db.push[endpoint] = dataclasses.replace(
                found,
                done_seq=max(found.done_seq, done_seq),
                retry_ms=retry_ms,
                failures=failures,
                lease_owner=None,
                lease_until=0,
            )

    async def record_presence(
        self, node: str, alive_ms: int, opened: Sequence[str], closed: Sequence[tuple[str, int]]
    ) -> None:
        self.db.nodes[node] = max(alive_ms, self.db.nodes.get(node, 0))
        for user_id in opened:
            self.db.streams[(user_id, node)] = None
        for user_id, ms in closed:
            self.db.streams[(user_id, node)] = ms

    async def presence(self, user_id: str) -> int:
        times = [
            self.db.nodes.get(node, 0) if closed is None else closed
            for (user, node), closed in self.db.streams.items()
            if user == user_id
        ]
        return max(times, default=0)

    async def forget_presence(self, before_ms: int) -> None:
        dead = {n for n, ms in self.db.nodes.items() if ms < before_ms}
        self.db.streams = {
            (u, n): c
            for (u, n), c in self.db.streams.items()
            if n not in dead and (c is None or c >= before_ms)
        }
        self.db.nodes = {n: ms for n, ms in self.db.nodes.items() if n not in dead}


@dataclass
class _Cursor:
    """A user's address and digest cursor, as the stores keep them."""

    record: UserRecord
    done_seq: int = 0
    claimed_seq: int = 0
    owner: str | None = None
    lease_until: int = 0
    next_ms: int = 0
    attempts: int = 0
