"""Snoozing, unsnoozing, and waking what is due.

A snoozed notification keeps its row, seq and id; `snoozed_ms` hides it from every list, count
and replay, so from push and email too (they read the log through `Store.after`). Waking clears
it (and read/seen: it comes back unread and unseen) and announces `notifications-unsnoozed`.

When a snooze falls due, the scheduler's delivery loop (which already sleeps until the next
thing it knows of) claims it with a lease, as it claims scheduled rows: `Store.claim_snoozed`
leases it so no other node takes it meanwhile, `Store.wake_snoozed` wakes only the snooze that
was claimed (a user who snoozed again or unsnoozed meanwhile wins), and the node that woke it
announces it once over the bus. A node that dies holding a lease leaves the row to another
node when the lease runs out; one that dies between waking and announcing leaves the
notification back in lists and counts (the data is right) without the live event, as a publish
whose announcement was lost does. A snooze's time travels as the scheduler's `ScheduleHint`,
so every node's loop wakes for it and an idle node still makes no query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tidings.events import ScheduleHint, Snoozed, Unsnoozed
from tidings.models import Notification, Snooze
from tidings.scheduler import claim_in_batches

if TYPE_CHECKING:
    from tidings.service import Service

__all__ = ["snooze", "unsnooze", "wake_due"]


async def snooze(service: Service, user_id: str, ids: Sequence[int], until_ms: int) -> Snoozed:
    """Snooze the user's own notifications among `ids` until `until_ms`; tell their streams,
    and every node's scheduler when to look."""
    changed = await service.store.snooze(user_id, ids, until_ms)
    counts = await service.store.counts(user_id)
    event = Snoozed(user_id, tuple(changed), until_ms, counts.unread, counts.unseen)
    if changed:
        # This node's loop even if the bus is down; every node's through it.
        service.scheduler.due_at(until_ms)
        await service.announce([event, ScheduleHint(until_ms)])
    return event


async def unsnooze(service: Service, user_id: str, ids: Sequence[int]) -> Unsnoozed:
    """Bring the user's snoozed notifications among `ids` back now, unread and unseen."""
    woken = await service.store.unsnooze(user_id, ids)
    events = await _announce(service, woken)
    if events:
        return events[0]
    counts = await service.store.counts(user_id)
    return Unsnoozed(user_id, (), counts.unread, counts.unseen)


async def wake_due(service: Service) -> int:
    """Claim and wake due snoozes, batch after batch, until none are left; return how many
    were claimed."""
    store = service.store

    async def wake(claimed: Sequence[Snooze]) -> None:
        # Announced under the lease too: a renewal now finds the woken rows no longer snoozed
        # and renews nothing, so it costs one query at most.
        await _announce(service, await store.wake_snoozed(claimed))

    # Leased and renewed while waking, as the scheduler's deliveries are.
    return await claim_in_batches(store.claim_snoozed, store.renew_snoozed, wake, service.settings)


async def _announce(service: Service, woken: Sequence[Notification]) -> list[Unsnoozed]:
    """One `notifications-unsnoozed` per user, with the counts after the wake."""
    by_user: dict[str, list[Notification]] = {}
    for n in woken:
        by_user.setdefault(n.user_id, []).append(n)
    events: list[Unsnoozed] = []
    for user_id, found in by_user.items():
        counts = await service.store.counts(user_id)
        found.sort(key=lambda n: n.seq)
        events.append(Unsnoozed(user_id, tuple(found), counts.unread, counts.unseen))
    if events:
        await service.announce(events)
    return events
