"""A store wrapper that bounds the work one node can queue on its database.

After a node or database restart, hundreds of reconnecting streams and retrying publishers
arrive at once. Unbounded, each waits for a pooled connection for the driver's full timeout,
the queue outlives the clients that filled it, and the node takes minutes to recover. Here at
most `limit` store operations run at once; the next ones wait at most `queue_timeout` seconds
for a slot and are then refused with `StoreUnavailable` (503 and `retry-after`), so every
request is answered within seconds and the retries spread out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

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
from tidings.store.base import Store, StoreUnavailable, Subscribed

__all__ = ["BoundedStore"]


class BoundedStore:
    def __init__(self, inner: Store, *, limit: int, queue_timeout: float) -> None:
        self.inner = inner
        self.limit = limit
        self.queue_timeout = queue_timeout
        self._slots = asyncio.Semaphore(limit)
        # Catch-up reads (a stream's position and what it missed) hold at most half the slots:
        # after a restart, thousands of reconnecting streams would otherwise fill every slot
        # with slow reads for minutes, and publishes and requests would find none (issue 22).
        self._catch_up = asyncio.Semaphore(max(1, limit // 2))

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.queue_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise StoreUnavailable(
                    f"the store is busy ({self.limit} operations in progress on this node)"
                ) from None
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    @contextlib.asynccontextmanager
    async def _catch_up_slot(self) -> AsyncIterator[None]:
        """A slot for a catch-up read, from its share; past it, shed as busy at once."""
        if self._catch_up.locked():
            try:
                async with asyncio.timeout(self.queue_timeout):
                    await self._catch_up.acquire()
            except TimeoutError:
                raise StoreUnavailable(
                    f"the store is busy ({self.limit // 2} catch-up reads in progress on this node)"
                ) from None
        else:
            await self._catch_up.acquire()
        try:
            async with self._slot():
                yield
        finally:
            self._catch_up.release()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        # Not behind the cap: /readyz asks whether the database answers, not whether this node
        # is busy. Gated, a reconnect storm would make every node look down to the load
        # balancer at once, which would then pull them all.
        await self.inner.ping()

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        async with self._slot():
            return await self.inner.add(draft, idempotency_key)

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        async with self._catch_up_slot():
            return await self.inner.after(user_id, seq, limit)

    async def position(self, user_id: str) -> Position:
        async with self._catch_up_slot():
            return await self.inner.position(user_id)

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
        async with self._slot():
            return await self.inner.page(
                user_id,
                limit=limit,
                before=before,
                unread_only=unread_only,
                category=category,
                archived=archived,
                snoozed=snoozed,
            )

    async def unread_count(self, user_id: str) -> int:
        async with self._slot():
            return await self.inner.unread_count(user_id)

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> list[int]:
        async with self._slot():
            return await self.inner.mark_read(user_id, ids=ids, up_to=up_to)

    async def delete(self, user_id: str, seq: int) -> bool:
        async with self._slot():
            return await self.inner.delete(user_id, seq)

    async def prune(self, older_than_ms: int, batch: int) -> int:
        async with self._slot():
            return await self.inner.prune(older_than_ms, batch)

    async def counts(self, user_id: str) -> Counts:
        async with self._slot():
            return await self.inner.counts(user_id)

    async def group_heads(
        self, user_id: str, groups: Sequence[str], *, category: str | None, archived: bool
    ) -> dict[str, tuple[int, int]]:
        async with self._slot():
            return await self.inner.group_heads(
                user_id, groups, category=category, archived=archived
            )

    async def mark_seen(self, user_id: str, up_to: int) -> list[int]:
        async with self._slot():
            return await self.inner.mark_seen(user_id, up_to)

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> list[int]:
        async with self._slot():
            return await self.inner.archive(user_id, ids, archived)

    async def preferences(self, user_id: str) -> Preferences:
        async with self._slot():
            return await self.inner.preferences(user_id)

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        async with self._slot():
            await self.inner.set_preferences(user_id, preferences)

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        async with self._slot():
            return await self.inner.muting(user_ids, category)

    # --- scheduled notifications (deliver_at) and expiry ------------------------------------

    async def schedule(self, draft: Draft, key: str) -> Scheduled | None:
        async with self._slot():
            return await self.inner.schedule(draft, key)

    async def claim_due(self, lease_ms: int, limit: int) -> list[Due]:
        async with self._slot():
            return await self.inner.claim_due(lease_ms, limit)

    async def renew_due(self, rows: Sequence[Due], lease_ms: int) -> int:
        async with self._slot():
            return await self.inner.renew_due(rows, lease_ms)

    async def deliver(self, rows: Sequence[Due]) -> list[Stored]:
        async with self._slot():
            return await self.inner.deliver(rows)

    async def cancel_scheduled(self, key: str) -> tuple[int, tuple[str, ...]]:
        async with self._slot():
            return await self.inner.cancel_scheduled(key)

    async def snooze(self, user_id: str, ids: Sequence[int], until_ms: int) -> list[int]:
        async with self._slot():
            return await self.inner.snooze(user_id, ids, until_ms)

    async def unsnooze(self, user_id: str, ids: Sequence[int]) -> list[Notification]:
        async with self._slot():
            return await self.inner.unsnooze(user_id, ids)

    async def claim_snoozed(self, lease_ms: int, limit: int) -> list[Snooze]:
        async with self._slot():
            return await self.inner.claim_snoozed(lease_ms, limit)

    async def renew_snoozed(self, claimed: Sequence[Snooze], lease_ms: int) -> int:
        async with self._slot():
            return await self.inner.renew_snoozed(claimed, lease_ms)

    async def wake_snoozed(self, claimed: Sequence[Snooze]) -> list[Notification]:
        async with self._slot():
            return await self.inner.wake_snoozed(claimed)

    async def next_snoozed(self) -> int | None:
        async with self._slot():
            return await self.inner.next_snoozed()

    async def next_due(self) -> int | None:
        async with self._slot():
            return await self.inner.next_due()

    async def delivered_between(self, after_ms: int, upto_ms: int, limit: int) -> list[str]:
        async with self._slot():
            return await self.inner.delivered_between(after_ms, upto_ms, limit)

    async def next_expiry(self, after_ms: int) -> int | None:
        async with self._slot():
            return await self.inner.next_expiry(after_ms)

    async def expired_between(
        self, after_ms: int, upto_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        async with self._slot():
            return await self.inner.expired_between(after_ms, upto_ms, limit)

    # -- the email digest ------------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        async with self._slot():
            return await self.inner.user(user_id)

    async def set_user_email(self, user_id: str, email: str | None) -> UserRecord:
        async with self._slot():
            return await self.inner.set_user_email(user_id, email)

    async def email_due(self, after_ms: int, limit: int) -> list[str]:
        async with self._slot():
            return await self.inner.email_due(after_ms, limit)

    async def claim_email(
        self, user_id: str, owner: str, after_ms: int, lease_ms: int
    ) -> EmailClaim | None:
        async with self._slot():
            return await self.inner.claim_email(user_id, owner, after_ms, lease_ms)

    async def finish_email(self, claim: EmailClaim, next_ms: int) -> bool:
        async with self._slot():
            return await self.inner.finish_email(claim, next_ms)

    async def release_email(self, claim: EmailClaim, next_ms: int, *, keep_claim: bool) -> bool:
        async with self._slot():
            return await self.inner.release_email(claim, next_ms, keep_claim=keep_claim)

    # --- Web Push (issue 11) ------------------------------------------------------------------

    async def add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        async with self._slot():
            return await self.inner.add_push_subscription(sub, limit)

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        async with self._slot():
            return await self.inner.remove_push_subscription(user_id, endpoint)

    async def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        async with self._slot():
            return await self.inner.push_subscriptions(user_id)

    async def drop_push_subscription(self, endpoint: str) -> None:
        async with self._slot():
            await self.inner.drop_push_subscription(endpoint)

    async def push_due(self, cutoff_ms: int, limit: int) -> list[PushSubscription]:
        async with self._slot():
            return await self.inner.push_due(cutoff_ms, limit)

    async def claim_push(self, endpoint: str, owner: str, lease_ms: int) -> PushSubscription | None:
        async with self._slot():
            return await self.inner.claim_push(endpoint, owner, lease_ms)

    async def advance_push(self, endpoint: str, owner: str, done_seq: int) -> bool:
        async with self._slot():
            return await self.inner.advance_push(endpoint, owner, done_seq)

    async def release_push(
        self, endpoint: str, owner: str, done_seq: int, *, retry_ms: int = 0, failures: int = 0
    ) -> None:
        async with self._slot():
            await self.inner.release_push(
                endpoint, owner, done_seq, retry_ms=retry_ms, failures=failures
            )

    async def record_presence(
        self, node: str, alive_ms: int, opened: Sequence[str], closed: Sequence[tuple[str, int]]
    ) -> None:
        async with self._slot():
            await self.inner.record_presence(node, alive_ms, opened, closed)

    async def presence(self, user_id: str) -> int:
        async with self._slot():
            return await self.inner.presence(user_id)

    async def forget_presence(self, before_ms: int) -> None:
        async with self._slot():
            await self.inner.forget_presence(before_ms)
