"""The parts of one node wired together: store, bus, hub, and the background work they need."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import NoReturn

from tidings.bus import Bus, create_bus
from tidings.channels import Node, Running, registry
from tidings.clock import Clock
from tidings.events import (
    ArchiveChanged,
    Deleted,
    Event,
    Published,
    ReadChanged,
    Resync,
    ScheduleHint,
    SeenChanged,
    UserResync,
)
from tidings.hub import Hub
from tidings.loops import forever
from tidings.metrics import Metrics
from tidings.models import Draft, Notification, Preferences, Scheduled, Stored
from tidings.scheduler import Scheduler
from tidings.settings import Settings
from tidings.snooze.wake import wake_due
from tidings.store import Store, create_store
from tidings.store.bounded import BoundedStore
from tidings.store.instrumented import InstrumentedStore

__all__ = ["Service", "build_service"]

log = logging.getLogger("tidings")

DAY_MS = 24 * 3600 * 1000


def build_service(settings: Settings, *, clock: Clock | None = None) -> Service:
    """One node's parts as `tidings serve` (and `tidings send`) runs them: the store of
    TIDINGS_DATABASE_URL behind the concurrency cap and the metrics, the bus of TIDINGS_BUS_URL."""
    clock = clock or Clock()
    metrics = Metrics()
    store = create_store(settings.database_url, settings, clock=clock)
    bounded = BoundedStore(
        store,
        limit=settings.store_max_concurrency,
        queue_timeout=settings.store_queue_timeout,
        catch_up_queue=settings.store_catch_up_queue,
    )
    bus = create_bus(settings.bus_url, settings.database_url, settings.bus_linger)
    return Service(settings, InstrumentedStore(bounded, metrics), bus, clock=clock, metrics=metrics)


class Service:
    """One node: the store and bus it is given (`build_service` makes them from the settings;
    a test passes its own), this node's hub, and the background work of `running()`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        # The store's metrics wrapper (InstrumentedStore) reports to these: the same object.
        self.metrics = metrics or Metrics()
        self.store = store
        self.bus = bus
        self.bus.tally = self.metrics.bus_received
        routed = getattr(self.bus, "routed", None)
        if callable(routed):
            self.metrics.bus_received.routed = routed
        self.hub = Hub(settings, self.metrics)
        self.hub.routes = self.bus
        self.scheduler = Scheduler(
            settings,
            self.store,
            self.clock,
            self.metrics,
            announce=self.announce,
            streams=self.hub,
            wake_snoozed=lambda: wake_due(self),
        )
        # The channels for users who are away that run on this node, by name: built by
        # `running()` from the registry, only those the settings turn on, so a node without
        # them (and `tidings send`, which reaches nobody away) imports and runs nothing of them.
        self.channels: dict[str, Running] = {}

    @contextlib.asynccontextmanager
    async def publishing(self) -> AsyncIterator[Service]:
        """Store and bus for publishing only (the CLI): no subscription, no streams."""
        await self.store.open()
        try:
            yield self
        finally:
            await self.bus.close()
            await self.store.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        """A serving node: subscribed to the bus, heartbeats and retention running."""
        node = Node(self.settings, self.store, self.hub, self.clock, self.metrics)
        self.channels, away = registry.start_enabled(node)
        await self.store.open()
        try:
            await self.bus.start(self.deliver)
            try:
                async with asyncio.TaskGroup() as tg:
                    heartbeat = tg.create_task(self.hub.heartbeat(), name="tidings-heartbeat")
                    pruner = tg.create_task(self.prune_forever(), name="tidings-retention")
                    delivering = tg.create_task(
                        self.scheduler.deliver_forever(), name="tidings-scheduler"
                    )
                    expiring = tg.create_task(
                        self.scheduler.expire_forever(), name="tidings-expiry"
                    )
                    sweeping = tg.create_task(
                        self.scheduler.sweep_forever(), name="tidings-scheduled-sweep"
                    )
                    background = [heartbeat, pruner, delivering, expiring, sweeping]
                    for running in away:
                        for name, loop in running.loops().items():
                            background.append(tg.create_task(loop(), name=name))
                    try:
                        yield self
                    finally:
                        for task in background:
                            task.cancel()
            finally:
                await self.bus.close()
        finally:
            await self.store.close()

    async def publish(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        skipped: tuple[tuple[str, str], ...] = ()
        # Only a publish with a category can be muted: the others cost no extra query.
        if draft.category is not None:
            muted = await self.store.muting(draft.user_ids, draft.category)
            if muted:
                skipped = tuple((u, "muted") for u in draft.user_ids if u in muted)
                kept = tuple(u for u in draft.user_ids if u not in muted)
                if not kept:
                    return Stored((), skipped=skipped)
                draft = dataclasses.replace(draft, user_ids=kept, audience=draft.user_ids)
        stored = await self._store(draft, idempotency_key)
        return dataclasses.replace(stored, skipped=skipped) if skipped else stored

    async def schedule(self, draft: Draft, idempotency_key: str | None) -> Scheduled | Stored:
        """A publish with `deliver_at`: kept to deliver when due (muted users are skipped then,
        not now); published at once when that time is not in the future. A scheduled publish
        always has a key, the handle to cancel it: one is made up when none is given."""
        assert draft.deliver_ms is not None
        now = dataclasses.replace(draft, deliver_ms=None)
        if idempotency_key is None:
            if draft.deliver_ms <= self.clock.now_ms():
                return await self.publish(now)
            idempotency_key = uuid.uuid4().hex
        scheduled = await self.store.schedule(draft, idempotency_key)
        if scheduled is None:
            # Due already and never scheduled under this key: an ordinary keyed publish.
            return await self.publish(now, idempotency_key)
        if not scheduled.replayed:
            self.metrics.scheduled.inc(len(scheduled.user_ids))
            # This node's scheduler even if the bus is down; every node's through it.
            self.scheduler.due_at(scheduled.deliver_ms)
            await self.announce([ScheduleHint(scheduled.deliver_ms)])
        return scheduled

    async def cancel_scheduled(self, idempotency_key: str) -> tuple[int, tuple[str, ...]]:
        """Cancel what is still pending under the key: how many, and the states of its rows."""
        cancelled, states = await self.store.cancel_scheduled(idempotency_key)
        self.metrics.scheduled_cancelled.inc(cancelled)
        return cancelled, states

    async def _store(self, draft: Draft, idempotency_key: str | None) -> Stored:
        stored = await self.store.add(draft, idempotency_key)
        if not stored.replayed:
            self.metrics.published.inc(len(stored.notifications))
        # A replay is announced too: the first attempt may have committed and never announced
        # (its node died, or the connection dropped after COMMIT), and then this retry is the
        # only way its open streams hear of it live. Streams drop a seq they already delivered.
        await self.announce([Published(n.user_id, n.seq, n) for n in stored.notifications])
        return stored

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> ReadChanged:
        changed = await self.store.mark_read(user_id, ids=ids, up_to=up_to)
        unread = await self.store.unread_count(user_id)
        event = ReadChanged(
            user_id=user_id,
            unread=unread,
            ids=tuple(changed) if up_to is None else None,
            up_to=up_to,
        )
        if changed:
            await self.announce([event])
        return event

    async def mark_seen(self, user_id: str, up_to: int) -> SeenChanged:
        changed = await self.store.mark_seen(user_id, up_to)
        counts = await self.store.counts(user_id)
        event = SeenChanged(user_id=user_id, up_to=up_to, unseen=counts.unseen)
        if changed:
            await self.announce([event])
        return event

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> ArchiveChanged:
        changed = await self.store.archive(user_id, ids, archived)
        counts = await self.store.counts(user_id)
        event = ArchiveChanged(
            user_id=user_id,
            ids=tuple(changed),
            archived=archived,
            unread=counts.unread,
            unseen=counts.unseen,
        )
        if changed:
            await self.announce([event])
        return event

    async def grouped_page(
        self,
        user_id: str,
        *,
        limit: int,
        before: int | None,
        unread_only: bool,
        category: str | None,
        archived: bool,
    ) -> tuple[list[tuple[Notification, int]], int | None]:
        """A page where unread notifications sharing a group are folded into the newest of
        them, with how many it stands for; and the seq to continue before, when there is more.

        The newest of a group is the newest unread one of all, not of the page: an older one
        on a later page is folded too, so the group shows once however the list is paged.
        """
        shown: list[tuple[Notification, int]] = []
        cursor = before
        batch = limit + 1
        while True:
            found = await self.store.page(
                user_id,
                limit=batch,
                before=cursor,
                unread_only=unread_only,
                category=category,
                archived=archived,
            )
            groups = [n.group for n in found if n.group is not None and n.read_ms is None]
            heads = (
                await self.store.group_heads(user_id, groups, category=category, archived=archived)
                if groups
                else {}
            )
            for n in found:
                count = 1
                if n.group is not None and n.read_ms is None and n.group in heads:
                    head, count = heads[n.group]
                    if n.seq != head:
                        continue
                if len(shown) == limit:
                    return shown, shown[-1][0].seq
                shown.append((n, count))
            if len(found) < batch:
                return shown, None
            cursor = found[-1].seq

    async def set_preferences(self, user_id: str, preferences: Preferences) -> Preferences:
        await self.store.set_preferences(user_id, preferences)
        return preferences

    async def delete(self, user_id: str, seq: int) -> Deleted | None:
        if not await self.store.delete(user_id, seq):
            return None
        event = Deleted(user_id=user_id, seq=seq, unread=await self.store.unread_count(user_id))
        await self.announce([event])
        return event

    def deliver(self, event: Event) -> None:
        """What the bus hands this node: the scheduler's hints, everything else to the hub."""
        if isinstance(event, ScheduleHint):
            self.scheduler.due_at(event.deliver_ms)
            return
        if isinstance(event, Published):
            n = event.notification
            if n is None:
                self.scheduler.expires_at(0)  # carried without its body: ask the store
            elif n.expires_ms is not None:
                self.scheduler.expires_at(n.expires_ms)
        elif isinstance(event, UserResync):
            self.scheduler.expires_at(0)  # its hints may have gone to other nodes only
        elif isinstance(event, Resync):
            # Hints may have been lost with the bus: both loops look again.
            self.scheduler.due_at(0)
            self.scheduler.expires_at(0)
        self.hub.deliver(event)

    async def announce(self, events: Sequence[Event]) -> None:
        # Committed already: a bus failure delays live delivery, it must not fail the caller.
        try:
            await self.bus.announce(events)
        except Exception:
            log.warning("bus announce failed; streams catch up from the store", exc_info=True)

    async def prune_forever(self) -> NoReturn:
        await forever(
            self.prune_once,
            pause=self.settings.prune_interval,
            failure="retention prune failed; trying again later",
            log=log,
        )

    async def prune_once(self) -> int:
        """Delete everything older than the retention, in bounded batches; return the count."""
        cutoff = self.clock.now_ms() - int(self.settings.retention_days * DAY_MS)
        total = 0
        while True:
            count = await self.store.prune(cutoff, self.settings.prune_batch)
            total += count
            if count < self.settings.prune_batch:
                return total
            await asyncio.sleep(0)  # let streams run between batches
