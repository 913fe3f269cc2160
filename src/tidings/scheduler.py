"""Work every serving node does on a timer: deliver scheduled notifications when they are due,
and tell open streams which notifications expired.

Delivery. A publish with a future `deliver_at` leaves one row per user in the store's scheduled
table (`Store.schedule`), visible to nobody. When rows fall due, each node claims them with a
lease (`Store.claim_due`: no other node takes them until the lease runs out) and delivers each
key's rows as one publish through the normal add path (`Store.deliver`, which marks the rows
delivered in the same transaction where the store has them, and otherwise stores under a key
that admits one notification per user). So the seq is handed out at delivery (the log stays
gapless and ordered), a row is stored once however many nodes claim it, and a node that dies
holding a lease leaves its rows to another node once it runs out. The lease is short and
renewed while the node delivers (`renewing`): a slow delivery keeps its rows, a dead node's wait
one lease at most. Then the delivery is announced over the bus like any publish.

Expiry. When a notification's `expires_at` passes, each node looks (with a query only if it has
open streams) for the notifications whose `expires_at` passed since it last looked, and sends
`notifications-expired` to its own streams of those users. Per node and never over the bus:
every stream hears it once, from the node it is connected to, with no lease and no bus traffic.

The delivery loop also wakes snoozed notifications when due (`tidings.snooze.wake`), under the
same kind of lease, and sleeps until the earlier of the next scheduled row and the next snooze.

Announcing what a dead node delivered. A node that dies between committing a delivery and
announcing it (kill -9, or a bus that stalls the announcement until then) would leave the rows
delivered, claimed by no one and announced to no one: nothing else retries a scheduled publish.
So every node with open streams sweeps, each `TIDINGS_SCHEDULER_SWEEP`, the rows marked delivered
since its last sweep (`Store.delivered_between`, on the done_ms index) and tells its own streams
of those users the user's latest seq: a stream that has it already ignores it, one that lacks it
reads it from the store. Per node and never over the bus, like expiry; the windows overlap by
`SWEEP_OVERLAP` sweeps, because a row's done_ms is stamped before its transaction commits.

Neither loop polls: each sleeps until the next time it knows of (see `Scheduler`), and looks at
most once per `TIDINGS_SCHEDULER_INTERVAL`, so an idle node makes no query.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import NoReturn, Protocol, TypeVar

from tidings.clock import Clock
from tidings.events import Event, Expired, Published
from tidings.loops import forever
from tidings.metrics import Metrics
from tidings.models import Due
from tidings.settings import Settings
from tidings.store.base import (
    InboxStore,
    LogStore,
    PreferenceStore,
    ScheduleStore,
    SnoozeStore,
)

__all__ = ["Announce", "Scheduler", "Streams", "claim_in_batches"]


class SchedulerStore(ScheduleStore, SnoozeStore, LogStore, InboxStore, PreferenceStore, Protocol):
    """What the scheduler uses of the store: scheduled rows and expiry; when the next snooze
    is due; a user's position and counts to announce; who muted a category."""


log = logging.getLogger("tidings.scheduler")

T = TypeVar("T")

# The most expired notifications one sweep reads; past it, the rest leave the lists anyway and
# the bell corrects itself on its next reload.
EXPIRY_LIMIT = 10_000
# The most users one re-announcing sweep reads; past it, the rest catch up with their next event.
SWEEP_LIMIT = 10_000
# How many sweep intervals each sweep looks back over: a delivery stamped just before a sweep
# may commit just after it, and node clocks differ a little.
SWEEP_OVERLAP = 3
# "Not until a hint comes": later than any time a notification can carry.
NEVER = 2**62
# How often per lease a node renews the lease of what it is delivering: a renewal may be late
# by two thirds of a lease (a slow store) before another node could take the rows.
RENEWALS = 3


@contextlib.asynccontextmanager
async def renewing(renew: Callable[[], Awaitable[object]], lease_ms: int) -> AsyncIterator[None]:
    """Renew a lease `RENEWALS` times per lease while the body runs (claimed rows being
    delivered): a live node keeps them however long the work takes, so the lease can be short,
    and a dead node's rows wait for one lease at most, not for the longest delivery."""

    async def keep() -> None:
        while True:
            await asyncio.sleep(lease_ms / 1000 / RENEWALS)
            try:
                await renew()
            except Exception:
                # The next renewal may get through; if none does, the lease runs out and another
                # node takes the rows over, which the store makes safe (each row stored once).
                log.warning("renewing a scheduler lease failed", exc_info=True)

    task = asyncio.create_task(keep())
    try:
        yield
    finally:
        task.cancel()
        # `wait`, not `await task`: a cancellation of this task itself must still propagate.
        await asyncio.wait([task])


async def claim_in_batches(
    claim: Callable[[int, int], Awaitable[Sequence[T]]],
    renew: Callable[[Sequence[T], int], Awaitable[object]],
    work: Callable[[Sequence[T]], Awaitable[object]],
    settings: Settings,
) -> int:
    """Claim due rows a batch at a time (`claim(lease_ms, batch)`) and `work` on each batch under
    its lease, renewed meanwhile (`renew(rows, lease_ms)`), until a batch comes back short;
    return how many were claimed. The one shape of scheduled deliveries and snooze wakes."""
    lease_ms = int(settings.scheduler_lease * 1000)
    total = 0
    while True:
        claimed = await claim(lease_ms, settings.scheduler_batch)
        total += len(claimed)
        if claimed:
            async with renewing(functools.partial(renew, claimed, lease_ms), lease_ms):
                await work(claimed)
        if len(claimed) < settings.scheduler_batch:
            return total


# Tells every node (the bus), as `Service.announce` does: never raises.
Announce = Callable[[Sequence[Event]], Awaitable[None]]


class Streams(Protocol):
    """This node's open streams (the hub), as far as the scheduler tells them things."""

    def __len__(self) -> int: ...

    def has(self, user_id: str) -> bool: ...

    def deliver(self, event: Event | Expired) -> None: ...


class Scheduler:
    """Both loops sleep until the next thing they know of is due, so an idle node queries
    nothing: the store says when the next scheduled row is due and when the next notification
    expires, and what is scheduled or published later on any node arrives as a hint over the
    bus (`due_at`, `expires_at`). A `Resync` (the bus may have lost hints) makes both look again."""

    def __init__(
        self,
        settings: Settings,
        store: SchedulerStore,
        clock: Clock,
        metrics: Metrics,
        *,
        announce: Announce,
        streams: Streams,
        wake_snoozed: Callable[[], Awaitable[object]],
    ) -> None:
        """`announce` tells every node; `streams` are this node's; `wake_snoozed` claims and
        wakes the snoozes that are due (`tidings.snooze.wake.wake_due`)."""
        self.settings = settings
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.announce = announce
        self.streams = streams
        self._wake_snoozed = wake_snoozed
        # When each loop looks next (ms; 0: at once, NEVER: when a hint comes).
        self._due_at = 0
        self._due_wake = asyncio.Event()
        self._expiry_at = 0
        self._expiry_wake = asyncio.Event()

    def due_at(self, ms: int) -> None:
        """Something scheduled falls due at `ms`: look for due rows then (or sooner)."""
        if ms < self._due_at:
            self._due_at = ms
            self._due_wake.set()

    def expires_at(self, ms: int) -> None:
        """A notification expires at `ms` (0: unknown, ask the store): look then."""
        if ms < self._expiry_at:
            self._expiry_at = ms
            self._expiry_wake.set()

    async def _sleep(self, wake: asyncio.Event, until: Callable[[], int]) -> None:
        """Until the clock reaches `until()` (which a hint may lower meanwhile)."""
        clock = self.clock
        while (target := until()) > clock.now_ms():
            wake.clear()
            timeout = None if target >= NEVER else (target - clock.now_ms()) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    async def deliver_forever(self) -> NoReturn:
        spacing = int(self.settings.scheduler_interval * 1000)

        async def look() -> None:
            self._due_at = NEVER
            await self.deliver_due()
            upcoming = await self.wake_snoozed()
            if upcoming is not None:
                # At most one look per interval: a row due now but leased to another node (at
                # work, or dead until its lease runs out) is looked at again after one.
                self.due_at(max(upcoming, self.clock.now_ms() + spacing))

        await forever(
            look,
            pause=lambda: self._sleep(self._due_wake, lambda: self._due_at),
            pause_first=True,
            failure="delivering scheduled notifications failed; retrying",
            log=log,
            # The leases of what was claimed run out; the next look delivers it.
            failed=lambda: self.due_at(self.clock.now_ms() + spacing),
        )

    async def deliver_due(self) -> int:
        """Claim and deliver due rows, batch after batch, until none are left; return how many
        were claimed. The lease is renewed while the batch is being delivered."""

        async def deliver(claimed: Sequence[Due]) -> None:
            await self._deliver(await self._muted(claimed))

        store = self.store
        return await claim_in_batches(store.claim_due, store.renew_due, deliver, self.settings)

    async def wake_snoozed(self) -> int | None:
        """Wake the snoozes that are due (tidings.snooze.wake); return when the next look is
        due: the earliest of the next scheduled row and the next snooze (None: neither)."""
        store = self.store
        await self._wake_snoozed()
        times = [t for t in (await store.next_due(), await store.next_snoozed()) if t is not None]
        return min(times, default=None)

    async def _muted(self, claimed: Sequence[Due]) -> list[Due]:
        """The rows, those whose user muted their category by now marked to skip."""
        by_category: dict[str, list[str]] = {}
        for row in claimed:
            if row.draft.category is not None:
                by_category.setdefault(row.draft.category, []).append(row.user_id)
        muted: set[tuple[str, str]] = set()
        for category, users in by_category.items():
            found = await self.store.muting(users, category)
            muted.update((u, category) for u in found)
        return [
            dataclasses.replace(row, skip="muted")
            if (row.user_id, row.draft.category) in muted
            else row
            for row in claimed
        ]

    async def _deliver(self, rows: Sequence[Due]) -> None:
        delivered = await self.store.deliver(rows)
        for row in rows:
            if row.skip is not None:
                self.metrics.scheduled_skipped.labels(row.skip).inc()
        made = [n for stored in delivered for n in stored.notifications]
        self.metrics.scheduled_delivered.inc(len(made))
        self.metrics.published.inc(len(made))
        await self.announce([Published(n.user_id, n.seq, n) for n in made])

    async def sweep_forever(self) -> NoReturn:
        """Re-announce recently delivered scheduled rows to this node's streams, every sweep."""
        interval = self.settings.scheduler_sweep
        overlap = int(interval * 1000) * SWEEP_OVERLAP
        since = self.clock.now_ms() - overlap

        async def look() -> None:
            nonlocal since
            until = self.clock.now_ms()
            await self.sweep(since, until)
            # Not after a failure: `since` stays, the next sweep covers this window too.
            since = until - overlap

        await forever(
            look,
            pause=interval,
            pause_first=True,
            failure="re-announcing delivered scheduled notifications failed",
            log=log,
        )

    async def sweep(self, since_ms: int, until_ms: int) -> int:
        """Tell this node's streams of the users whose scheduled rows were delivered after
        `since_ms`, up to `until_ms`, their latest seq; return how many users were told."""
        hub = self.streams
        if not len(hub) or until_ms <= since_ms:
            return 0
        users = await self.store.delivered_between(since_ms, until_ms, SWEEP_LIMIT)
        told = 0
        for user_id in users:
            if not hub.has(user_id):
                continue
            position = await self.store.position(user_id)
            # Without a body: a stream past this seq skips it, one behind reads the store.
            hub.deliver(Published(user_id, position.last_seq))
            told += 1
        return told

    async def expire_forever(self) -> NoReturn:
        spacing = int(self.settings.scheduler_interval * 1000)
        since = until = self.clock.now_ms()

        async def look() -> None:
            nonlocal since, until
            self._expiry_at = NEVER
            until = self.clock.now_ms()
            await self.expire(since, until)
            # Not after a failure: `since` stays, the next look covers this window too.
            since = until
            upcoming = await self.store.next_expiry(until)
            if upcoming is not None:
                self.expires_at(max(upcoming, until + spacing))

        await forever(
            look,
            pause=lambda: self._sleep(self._expiry_wake, lambda: self._expiry_at),
            pause_first=True,
            failure="the expiry sweep failed; retrying",
            log=log,
            failed=lambda: self.expires_at(until + spacing),
        )

    async def expire(self, since_ms: int, until_ms: int) -> int:
        """Send `notifications-expired` to this node's streams of the users whose notifications
        expired after `since_ms`, up to `until_ms`; return how many events were sent."""
        hub = self.streams
        if not len(hub) or until_ms <= since_ms:
            return 0
        found = await self.store.expired_between(since_ms, until_ms, EXPIRY_LIMIT)
        if len(found) == EXPIRY_LIMIT:
            log.warning("more than %d notifications expired in one sweep", EXPIRY_LIMIT)
        by_user: dict[str, list[int]] = {}
        for user_id, seq in found:
            if hub.has(user_id):
                by_user.setdefault(user_id, []).append(seq)
        for user_id, ids in by_user.items():
            counts = await self.store.counts(user_id)
            hub.deliver(Expired(user_id, tuple(sorted(ids)), counts.unread, counts.unseen))
            self.metrics.expired_events.inc()
        return len(by_user)
