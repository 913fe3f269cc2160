"""Work every serving node does on a timer: deliver scheduled notifications when they are due,
and tell open streams which notifications expired.

Delivery. A publish with a future `deliver_at` leaves one row per user in the store's scheduled
table (`Store.schedule`), visible to nobody. Every `TIDINGS_SCHEDULER_INTERVAL` seconds each node
claims due rows with a lease (`Store.claim_due`: no other node takes them until the lease runs
out), and delivers each through the normal add path under a key of its own
(`Store.deliver`, which marks the row delivered in the same transaction where the store has
them). So the seq is handed out at delivery (the log stays gapless and ordered), a row is stored
once however many nodes claim it (two nodes, or one that died after committing and before
marking the row: the key dedupes), and a node that dies holding a lease leaves its rows to
another node once it runs out. Then the delivery is announced over the bus like any publish.

Expiry. Each node looks, every interval and only while it has open streams, for notifications
whose `expires_at` passed since it last looked, and sends `notifications-expired` to its own
streams of those users. Per node and never over the bus: every stream hears it once, from the
node it is connected to, with no lease and no bus traffic; an idle node sends no query.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tidings.models import Due, Expired, Published

if TYPE_CHECKING:
    from tidings.service import Service

__all__ = ["Scheduler"]

log = logging.getLogger("tidings.scheduler")

# The most expired notifications one sweep reads; past it, the rest leave the lists anyway and
# the bell corrects itself on its next reload.
EXPIRY_LIMIT = 10_000


class Scheduler:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def deliver_forever(self) -> None:
        interval = self.service.settings.scheduler_interval
        while True:
            try:
                await self.deliver_due()
            except Exception:
                # The leases of what was claimed run out; another pass delivers it.
                log.warning("delivering scheduled notifications failed; retrying", exc_info=True)
            await asyncio.sleep(interval)

    async def deliver_due(self) -> int:
        """Claim and deliver due rows, batch after batch, until none are left; return how many
        were claimed."""
        settings = self.service.settings
        lease_ms = int(settings.scheduler_lease * 1000)
        total = 0
        while True:
            claimed = await self.service.store.claim_due(lease_ms, settings.scheduler_batch)
            total += len(claimed)
            for row in await self._muted(claimed):
                await self._deliver(row)
            if len(claimed) < settings.scheduler_batch:
                return total

    async def _muted(self, claimed: Sequence[Due]) -> list[Due]:
        """The rows, those whose user muted their category by now marked to skip."""
        by_category: dict[str, list[str]] = {}
        for row in claimed:
            if row.draft.category is not None:
                by_category.setdefault(row.draft.category, []).append(row.user_id)
        muted: set[tuple[str, str]] = set()
        for category, users in by_category.items():
            found = await self.service.store.muting(users, category)
            muted.update((u, category) for u in found)
        return [
            dataclasses.replace(row, skip="muted")
            if (row.user_id, row.draft.category) in muted
            else row
            for row in claimed
        ]

    async def _deliver(self, row: Due) -> None:
        service = self.service
        stored = await service.store.deliver(row)
        if row.skip is not None:
            service.metrics.scheduled_skipped.labels(row.skip).inc()
            return
        if stored is None:
            return  # cancelled meanwhile, or another node delivered it
        if not stored.replayed:
            service.metrics.scheduled_delivered.inc(len(stored.notifications))
            service.metrics.published.inc(len(stored.notifications))
        # Announced also when replayed: the node that stored it may have died before it could.
        await service.announce([Published(n.user_id, n.seq, n) for n in stored.notifications])

    async def expire_forever(self) -> None:
        service = self.service
        since = service.clock.now_ms()
        while True:
            await asyncio.sleep(service.settings.scheduler_interval)
            until = service.clock.now_ms()
            try:
                await self.expire(since, until)
            except Exception:
                # `since` stays: the next pass covers this window too.
                log.warning("the expiry sweep failed; retrying", exc_info=True)
                continue
            since = until

    async def expire(self, since_ms: int, until_ms: int) -> int:
        """Send `notifications-expired` to this node's streams of the users whose notifications
        expired after `since_ms`, up to `until_ms`; return how many events were sent."""
        service = self.service
        hub = service.hub
        if not len(hub) or until_ms <= since_ms:
            return 0
        found = await service.store.expired_between(since_ms, until_ms, EXPIRY_LIMIT)
        if len(found) == EXPIRY_LIMIT:
            log.warning("more than %d notifications expired in one sweep", EXPIRY_LIMIT)
        by_user: dict[str, list[int]] = {}
        for user_id, seq in found:
            if hub.has(user_id):
                by_user.setdefault(user_id, []).append(seq)
        for user_id, ids in by_user.items():
            counts = await service.store.counts(user_id)
            hub.deliver(Expired(user_id, tuple(sorted(ids)), counts.unread, counts.unseen))
            service.metrics.expired_events.inc()
        return len(by_user)
