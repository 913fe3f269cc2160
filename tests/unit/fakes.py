"""In-memory stand-ins for the store, the bus and an SSE client, for the unit tier.

They honour the contracts in `tidings.store.base` and `tidings.bus.base` (the real backends are
held to those by `tests/contract`), so the hub and the stream run here exactly as in a server,
without a socket or a database file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Message, Scope

from tests.raw_sse import RawEvent, parse_events
from tidings.bus.base import Bus, Deliver, Tally
from tidings.bus.shared import SharedBus
from tidings.models import (
    Clock,
    Counts,
    Draft,
    Due,
    EmailClaim,
    Event,
    Notification,
    Position,
    Preferences,
    PushSubscription,
    Scheduled,
    Snooze,
    Stored,
    UserRecord,
)
from tidings.store.base import Store, StoreUnavailable, Subscribed
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

__all__ = [
    "Broker",
    "BrokerBus",
    "FakeBus",
    "FakeClient",
    "FakeStore",
]


class FakeStore:
    """The store contract in dicts. `down = True` makes every call raise `StoreUnavailable`."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.rows: dict[str, list[Notification]] = {}
        self.last: dict[str, int] = {}
        self.pruned: dict[str, int] = {}
        self.keys: dict[str, Stored] = {}
        self.prefs: dict[str, Preferences] = {}
        # (key, user_id) -> [the row's Due, its fingerprint, its state, lease_until]
        self.scheduled: dict[tuple[str, str], list[Any]] = {}
        self.emails: dict[str, _Cursor] = {}
        # (user_id, seq) -> the lease of a snoozed notification being woken.
        self.snooze_leases: dict[tuple[str, int], int] = {}
        self.push: dict[str, PushSubscription] = {}
        # (user, node) -> closed_ms (None: open); node -> its last report.
        self.streams: dict[tuple[str, str], int | None] = {}
        self.nodes: dict[str, int] = {}
        self.down = False
        # Set each time a call fails because the store is down.
        self.failed = asyncio.Event()

    def _check(self) -> None:
        if self.down:
            self.failed.set()
            raise StoreUnavailable("the fake store is down")

    async def open(self) -> None:
        self._check()

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        self._check()

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        self._check()
        if idempotency_key is not None and idempotency_key in self.keys:
            return dataclasses.replace(self.keys[idempotency_key], replayed=True)
        seqs = []
        for user_id in draft.user_ids:
            self.last[user_id] = self.last.get(user_id, 0) + 1
            seqs.append((user_id, self.last[user_id]))
        # The stores' own draft-to-notification step, so the fake stores what they store.
        stored = made(draft, seqs, self.clock.now_ms())
        for n in stored:
            self.rows.setdefault(n.user_id, []).append(n)
        result = Stored(stored)
        if idempotency_key is not None:
            self.keys[idempotency_key] = result
        return result

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        self._check()
        # As the stores do: an expired notification is not listed (nor replayed).
        now = self.clock.now_ms()
        live = [
            n
            for n in self.rows.get(user_id, [])
            if (n.expires_ms is None or n.expires_ms > now) and n.snoozed_ms is None
        ]
        return [n for n in live if n.seq > seq][:limit]

    async def position(self, user_id: str) -> Position:
        self._check()
        return Position(self.last.get(user_id, 0), self.pruned.get(user_id, 0))

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
        self._check()
        rows = [
            n
            for n in reversed(self.rows.get(user_id, []))
            if (before is None or n.seq < before)
            and (n.snoozed_ms is not None) == snoozed
            and not (unread_only and n.read_ms is not None)
            and (category is None or n.category == category)
            and (n.archived_ms is not None) == archived
        ]
        return rows[:limit]

    async def unread_count(self, user_id: str) -> int:
        self._check()
        return (await self.counts(user_id)).unread

    async def counts(self, user_id: str) -> Counts:
        self._check()
        rows = [
            (n.category, int(n.read_ms is None), int(n.seen_ms is None))
            for n in self.rows.get(user_id, [])
            if n.archived_ms is None and n.snoozed_ms is None
        ]
        return counts_of(rows)

    async def group_heads(
        self, user_id: str, groups: Sequence[str], *, category: str | None, archived: bool
    ) -> dict[str, tuple[int, int]]:
        self._check()
        heads: dict[str, tuple[int, int]] = {}
        for n in self.rows.get(user_id, []):
            if (
                n.group is not None
                and n.group in groups
                and n.read_ms is None
                and n.snoozed_ms is None
                and (category is None or n.category == category)
                and (n.archived_ms is not None) == archived
            ):
                head, count = heads.get(n.group, (0, 0))
                heads[n.group] = (max(head, n.seq), count + 1)
        return heads

    async def preferences(self, user_id: str) -> Preferences:
        self._check()
        return self.prefs.get(user_id, Preferences())

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        self._check()
        self.prefs[user_id] = preferences

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        self._check()
        return {
            u for u in user_ids if category in self.prefs.get(u, Preferences()).muted_categories
        }

    async def mark_seen(self, user_id: str, up_to: int) -> list[int]:
        self._check()
        changed: list[int] = []
        rows = self.rows.get(user_id, [])
        for index, n in enumerate(rows):
            if n.seq <= up_to and n.seen_ms is None and n.snoozed_ms is None:
                rows[index] = dataclasses.replace(n, seen_ms=self.clock.now_ms())
                changed.append(n.seq)
        return changed

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> list[int]:
        self._check()
        changed: list[int] = []
        rows = self.rows.get(user_id, [])
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
        self._check()
        changed: list[int] = []
        rows = self.rows.get(user_id, [])
        for index, n in enumerate(rows):
            wanted = (ids is not None and n.seq in ids) or (
                up_to is not None and n.seq <= up_to and n.snoozed_ms is None
            )
            if wanted and n.read_ms is None:
                rows[index] = dataclasses.replace(n, read_ms=self.clock.now_ms())
                changed.append(n.seq)
        return changed

    async def delete(self, user_id: str, seq: int) -> bool:
        self._check()
        rows = self.rows.get(user_id, [])
        kept = [n for n in rows if n.seq != seq]
        self.rows[user_id] = kept
        return len(kept) != len(rows)

    async def prune(self, older_than_ms: int, batch: int) -> int:
        self._check()
        count = 0
        for user_id, rows in self.rows.items():
            gone = [n for n in rows if n.created_ms < older_than_ms][: batch - count]
            if gone:
                self.pruned[user_id] = max(self.pruned.get(user_id, 0), gone[-1].seq)
                self.rows[user_id] = [n for n in rows if n not in gone]
                count += len(gone)
        return count

    # --- scheduled notifications (deliver_at) and expiry ------------------------------------

    async def schedule(self, draft: Draft, key: str) -> Scheduled | None:
        self._check()
        assert draft.deliver_ms is not None
        rows = [row for (k, _), row in self.scheduled.items() if k == key]
        if rows:
            check_fingerprint(key, rows[0][1], draft)
            return Scheduled(key, draft.deliver_ms, draft.user_ids, replayed=True)
        if draft.deliver_ms <= self.clock.now_ms():
            return None
        if key in self.keys:
            raise used_now(key)
        for user_id in draft.user_ids:
            one = dataclasses.replace(draft, user_ids=(user_id,), deliver_ms=None)
            row = Due(key, user_id, draft.deliver_ms, one)
            self.scheduled[(key, user_id)] = [row, draft.fingerprint(), PENDING, 0, 0]
        return Scheduled(key, draft.deliver_ms, draft.user_ids)

    async def claim_due(self, lease_ms: int, limit: int) -> list[Due]:
        self._check()
        now = self.clock.now_ms()
        claimed: list[Due] = []
        for row in sorted(self.scheduled.values(), key=lambda r: r[0].deliver_ms):
            if len(claimed) < limit and row[2] == PENDING and row[0].deliver_ms <= now > row[3]:
                row[3] = now + lease_ms
                claimed.append(row[0])
        return claimed

    async def renew_due(self, rows: Sequence[Due], lease_ms: int) -> int:
        self._check()
        count = 0
        for due in rows:
            row = self.scheduled.get((due.key, due.user_id))
            if row is not None and row[2] == PENDING:
                row[3] = self.clock.now_ms() + lease_ms
                count += 1
        return count

    async def deliver(self, rows: Sequence[Due]) -> list[Stored]:
        self._check()
        delivered: list[Stored] = []
        for group in by_key(rows):
            users: list[str] = []
            for due in group:
                row = self.scheduled[(due.key, due.user_id)]
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
        self._check()
        rows = [row for (k, _), row in self.scheduled.items() if k == key]
        count = 0
        for row in rows:
            if row[2] == PENDING:
                row[2] = CANCELLED
                count += 1
        return count, tuple(sorted({row[2] for row in rows}))

    # --- snooze ---------------------------------------------------------------------------------

    async def snooze(self, user_id: str, ids: Sequence[int], until_ms: int) -> list[int]:
        self._check()
        changed: list[int] = []
        rows = self.rows.get(user_id, [])
        for index, n in enumerate(rows):
            if n.seq in ids:
                rows[index] = dataclasses.replace(n, snoozed_ms=until_ms)
                self.snooze_leases.pop((user_id, n.seq), None)
                changed.append(n.seq)
        return changed

    def _wake(self, user_id: str, seq: int, until_ms: int | None) -> Notification | None:
        rows = self.rows.get(user_id, [])
        for index, n in enumerate(rows):
            if n.seq == seq and n.snoozed_ms is not None and until_ms in (None, n.snoozed_ms):
                rows[index] = dataclasses.replace(n, snoozed_ms=None, read_ms=None, seen_ms=None)
                self.snooze_leases.pop((user_id, seq), None)
                return rows[index]
        return None

    async def unsnooze(self, user_id: str, ids: Sequence[int]) -> list[Notification]:
        self._check()
        woken = [self._wake(user_id, seq, None) for seq in sorted(set(ids))]
        return [n for n in woken if n is not None]

    async def claim_snoozed(self, lease_ms: int, limit: int) -> list[Snooze]:
        self._check()
        now = self.clock.now_ms()
        due = sorted(
            (n.snoozed_ms, n.seq, n.user_id)
            for rows in self.rows.values()
            for n in rows
            if n.snoozed_ms is not None and n.snoozed_ms <= now
        )
        claimed: list[Snooze] = []
        for until, seq, user_id in due:
            if len(claimed) < limit and self.snooze_leases.get((user_id, seq), 0) < now:
                self.snooze_leases[(user_id, seq)] = now + lease_ms
                claimed.append(Snooze(user_id, seq, until))
        return claimed

    async def renew_snoozed(self, claimed: Sequence[Snooze], lease_ms: int) -> int:
        self._check()
        count = 0
        for c in claimed:
            for n in self.rows.get(c.user_id, []):
                if n.seq == c.seq and n.snoozed_ms == c.until_ms:
                    self.snooze_leases[(c.user_id, c.seq)] = self.clock.now_ms() + lease_ms
                    count += 1
        return count

    async def wake_snoozed(self, claimed: Sequence[Snooze]) -> list[Notification]:
        self._check()
        woken = [self._wake(c.user_id, c.seq, c.until_ms) for c in claimed]
        return [n for n in woken if n is not None]

    async def next_snoozed(self) -> int | None:
        self._check()
        return min(
            (n.snoozed_ms for rows in self.rows.values() for n in rows if n.snoozed_ms),
            default=None,
        )

    async def next_due(self) -> int | None:
        self._check()
        pending = [r[0].deliver_ms for r in self.scheduled.values() if r[2] == PENDING]
        return min(pending, default=None)

    async def delivered_between(self, after_ms: int, upto_ms: int, limit: int) -> list[str]:
        self._check()
        found = {
            user_id: None
            for (_, user_id), row in self.scheduled.items()
            if row[2] == DELIVERED and after_ms < row[4] <= upto_ms
        }
        return list(found)[:limit]

    async def next_expiry(self, after_ms: int) -> int | None:
        self._check()
        times = [
            n.expires_ms
            for rows in self.rows.values()
            for n in rows
            if n.expires_ms is not None and n.expires_ms > after_ms
        ]
        return min(times, default=None)

    async def expired_between(
        self, after_ms: int, upto_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        self._check()
        found = [
            (n.user_id, n.seq)
            for rows in self.rows.values()
            for n in rows
            if n.expires_ms is not None and after_ms < n.expires_ms <= upto_ms
        ]
        return found[:limit]

    def forget(self, user_id: str, up_to: int) -> None:
        """What retention does: the user's notifications up to `up_to` are gone."""
        self.rows[user_id] = [n for n in self.rows.get(user_id, []) if n.seq > up_to]
        self.pruned[user_id] = up_to

    # -- the email digest ------------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        self._check()
        cursor = self.emails.get(user_id)
        return None if cursor is None else cursor.record

    async def set_user_email(self, user_id: str, email: str | None) -> UserRecord:
        self._check()
        record = UserRecord(user_id, email, self.clock.now_ms())
        last = self.last.get(user_id, 0)
        cursor = self.emails.get(user_id)
        if cursor is None:
            self.emails[user_id] = _Cursor(record, done_seq=last, claimed_seq=last)
        else:
            if cursor.record.email is None:
                cursor.done_seq = max(cursor.done_seq, last)
                cursor.claimed_seq = max(cursor.claimed_seq, last)
            cursor.record = record
        return record

    async def email_due(self, after_ms: int, limit: int) -> list[str]:
        self._check()
        now = self.clock.now_ms()
        due = [
            u
            for u, c in sorted(self.emails.items(), key=lambda item: item[1].next_ms)
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
            for n in self.rows.get(user_id, [])
            if n.seq > cursor.done_seq and n.created_ms <= cutoff
        ]
        return max(seqs, default=0)

    async def claim_email(
        self, user_id: str, owner: str, after_ms: int, lease_ms: int
    ) -> EmailClaim | None:
        self._check()
        now = self.clock.now_ms()
        cursor = self.emails.get(user_id)
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
        self._check()
        cursor = self.emails.get(claim.user_id)
        if cursor is None or cursor.owner != claim.owner:
            return False
        cursor.done_seq = cursor.claimed_seq = max(cursor.done_seq, claim.claimed_seq)
        cursor.owner, cursor.lease_until, cursor.next_ms, cursor.attempts = None, 0, next_ms, 0
        return True

    async def release_email(self, claim: EmailClaim, next_ms: int, *, keep_claim: bool) -> bool:
        self._check()
        cursor = self.emails.get(claim.user_id)
        if cursor is None or cursor.owner != claim.owner:
            return False
        if not keep_claim:
            cursor.claimed_seq = cursor.done_seq
        cursor.owner, cursor.lease_until, cursor.next_ms = None, 0, next_ms
        cursor.attempts += 1
        return True

    # --- Web Push (issue 11) ------------------------------------------------------------------

    async def add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        self._check()
        found = self.push.get(sub.endpoint)
        if found is not None and found.user_id == sub.user_id:
            self.push[sub.endpoint] = dataclasses.replace(found, p256dh=sub.p256dh, auth=sub.auth)
            return "updated"
        if sum(s.user_id == sub.user_id for s in self.push.values()) >= limit:
            return "full"
        self.push[sub.endpoint] = dataclasses.replace(
            sub, created_ms=self.clock.now_ms(), done_seq=self.last.get(sub.user_id, 0)
        )
        return "created" if found is None else "updated"

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        self._check()
        found = self.push.get(endpoint)
        if found is None or found.user_id != user_id:
            return False
        del self.push[endpoint]
        return True

    async def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        self._check()
        return [s for s in self.push.values() if s.user_id == user_id]

    async def drop_push_subscription(self, endpoint: str) -> None:
        self._check()
        self.push.pop(endpoint, None)

    async def push_due(self, cutoff_ms: int, limit: int) -> list[PushSubscription]:
        self._check()
        now = self.clock.now_ms()
        return [
            s
            for s in self.push.values()
            if s.lease_until <= now
            and s.retry_ms <= now
            and any(
                n.seq > s.done_seq and n.created_ms <= cutoff_ms
                for n in self.rows.get(s.user_id, [])
            )
        ][:limit]

    async def claim_push(self, endpoint: str, owner: str, lease_ms: int) -> PushSubscription | None:
        self._check()
        found = self.push.get(endpoint)
        now = self.clock.now_ms()
        if found is None or found.lease_until > now:
            return None
        claimed = dataclasses.replace(found, lease_owner=owner, lease_until=now + lease_ms)
        self.push[endpoint] = claimed
        return claimed

    async def advance_push(self, endpoint: str, owner: str, done_seq: int) -> bool:
        self._check()
        found = self.push.get(endpoint)
        if found is None or found.lease_owner != owner or found.lease_until <= self.clock.now_ms():
            return False
        self.push[endpoint] = dataclasses.replace(found, done_seq=max(found.done_seq, done_seq))
        return True

    async def release_push(
        self, endpoint: str, owner: str, done_seq: int, *, retry_ms: int = 0, failures: int = 0
    ) -> None:
        self._check()
        found = self.push.get(endpoint)
        if (
            found is not None
            and found.lease_owner == owner
            and found.lease_until > self.clock.now_ms()
        ):
            self.push[endpoint] = dataclasses.replace(
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
        self._check()
        self.nodes[node] = max(alive_ms, self.nodes.get(node, 0))
        for user_id in opened:
            self.streams[(user_id, node)] = None
        for user_id, ms in closed:
            self.streams[(user_id, node)] = ms

    async def presence(self, user_id: str) -> int:
        self._check()
        times = [
            self.nodes.get(node, 0) if closed is None else closed
            for (user, node), closed in self.streams.items()
            if user == user_id
        ]
        return max(times, default=0)

    async def forget_presence(self, before_ms: int) -> None:
        self._check()
        dead = {n for n, ms in self.nodes.items() if ms < before_ms}
        self.streams = {
            (u, n): c
            for (u, n), c in self.streams.items()
            if n not in dead and (c is None or c >= before_ms)
        }
        self.nodes = {n: ms for n, ms in self.nodes.items() if n not in dead}


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


class FakeBus:
    """One process's bus: announce hands events straight to the hub, like the local bus.

    `hold = True` keeps announced events in `held` instead (a bus that is slow or lost them);
    `release` hands them on, in any order the test picks.
    """

    def __init__(self) -> None:
        self.deliver: Deliver | None = None
        self.hold = False
        self.held: list[Event] = []
        self.tally: Tally | None = None

    async def start(self, deliver: Deliver) -> None:
        self.deliver = deliver

    async def announce(self, events: Sequence[Event]) -> None:
        if self.hold:
            self.held.extend(events)
            return
        for event in events:
            self.send(event)

    def send(self, event: Event) -> None:
        assert self.deliver is not None, "start the bus first"
        self.deliver(event)

    def release(self, events: Sequence[Event] | None = None) -> None:
        for event in self.held if events is None else events:
            self.send(event)
        self.held = []

    async def close(self) -> None:
        self.deliver = None

    def ready(self) -> bool:
        return True

    def join(self, user_id: str) -> asyncio.Future[None] | None:
        return None

    def leave(self, user_id: str) -> None:
        return None


@dataclass
class FakeClient:
    """The ASGI side of one HTTP request: what the endpoint sent, and a way to hang up."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    query: bytes = b""
    method: str = "GET"
    messages: list[Message] = field(default_factory=list)
    stalled: asyncio.Event | None = None
    _hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def scope(self) -> Scope:
        return {
            "type": "http",
            "method": self.method,
            "path": "/notifications/stream",
            "headers": self.headers,
            "query_string": self.query,
        }

    async def receive(self) -> Message:
        await self._hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.stalled is not None:
            await self.stalled.wait()  # a client that stopped reading: the write never ends
        self.messages.append(message)
        self._changed.set()

    def stop_reading(self) -> None:
        self.stalled = asyncio.Event()

    def hang_up(self) -> None:
        self._hung_up.set()

    def wake(self) -> None:
        """Let `wait_until` look again (the endpoint returned without sending)."""
        self._changed.set()

    @property
    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return int(starts[0]["status"]) if starts else None

    @property
    def response_headers(self) -> dict[bytes, bytes]:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return dict(starts[0]["headers"]) if starts else {}

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] != "http.response.start"
        )

    @property
    def finished(self) -> bool:
        """The endpoint ended the response itself (its last body message has no more_body)."""
        bodies = [m for m in self.messages if m["type"] == "http.response.body"]
        return bool(bodies) and not bodies[-1].get("more_body", False)

    def blocks(self) -> list[RawEvent]:
        """Every block sent, pings and `retry:`-only blocks included."""
        return parse_events(self.body)

    def events(self) -> list[RawEvent]:
        """The events a page's EventSource dispatches to its listeners (no pings)."""
        return [e for e in self.blocks() if e.data and e.event != "ping"]

    def notifications(self) -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in self.events() if e.event == "new-notification"]

    async def wait_until(self, done: Callable[[], bool], timeout: float = 2.0) -> None:
        """Wait until `done()` holds after something was sent; fail after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()


class Broker:
    """What Redis or PostgreSQL is to the shared buses: one channel, and an off switch."""

    def __init__(self) -> None:
        self.up = True
        # Publishing fails while subscriptions stay up (a full buffer, a failover).
        self.refuse_publish = False
        self.listeners: list[asyncio.Queue[str | None]] = []
        self.published: list[str] = []

    def publish(self, messages: Sequence[str]) -> None:
        if not self.up or self.refuse_publish:
            raise ConnectionError("the broker refused the message")
        self.published.extend(messages)
        for queue in self.listeners:
            for message in messages:
                queue.put_nowait(message)

    def inject(self, raw: str) -> None:
        """A message from some other writer on the channel."""
        for queue in self.listeners:
            queue.put_nowait(raw)

    def go_down(self) -> None:
        """Every subscription drops, and nothing connects until `come_back`."""
        self.up = False
        for queue in self.listeners:
            queue.put_nowait(None)

    def come_back(self) -> None:
        self.up = True


class BrokerBus(SharedBus):
    """A `SharedBus` over a `Broker`: the reconnect and resync logic, without a network.

    The real buses wake every second (`TICK`); this one every `tick`, 10 ms unless told.
    """

    def __init__(self, broker: Broker, *, limit: int = 7900, tick: float = 0.01) -> None:
        super().__init__("test")
        self.broker = broker
        self.limit = limit
        self.tick = tick

    def name(self) -> str:
        return "broker"

    async def _listen(self) -> None:
        if not self.broker.up:
            raise ConnectionError("cannot connect")
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.broker.listeners.append(queue)
        try:
            self._subscribed()
            while True:
                try:
                    async with asyncio.timeout(self.tick):
                        raw = await queue.get()
                except TimeoutError:
                    raw = ""
                if raw is None:
                    raise ConnectionError("connection lost")
                if raw:
                    self._received(raw)
                await self._tick()
        finally:
            self.broker.listeners.remove(queue)

    async def _publish(self, messages: Sequence[str]) -> None:
        self.broker.publish(messages)

    async def _close_publisher(self) -> None:
        pass


def _contracts(store: FakeStore, bus: FakeBus, shared: BrokerBus) -> tuple[Store, Bus, Bus]:
    """mypy checks here that the fakes satisfy the protocols the service uses."""
    return store, bus, shared
