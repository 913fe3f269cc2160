"""A store wrapper that counts every operation, for /metrics and the idle-cost guarantee."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter

from tidings.metrics import Metrics
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
from tidings.store.base import Store, Subscribed

__all__ = ["InstrumentedStore"]


class InstrumentedStore:
    def __init__(self, inner: Store, metrics: Metrics) -> None:
        self.inner = inner
        self._count = metrics.store_queries
        # One child per operation, looked up once: `labels()` costs more than the count itself.
        self._children: dict[str, Counter] = {}

    def _op(self, name: str) -> None:
        child = self._children.get(name)
        if child is None:
            child = self._children[name] = self._count.labels(name)
        child.inc()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        self._op("ping")
        await self.inner.ping()

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        self._op("add")
        return await self.inner.add(draft, idempotency_key)

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        self._op("after")
        return await self.inner.after(user_id, seq, limit)

    async def position(self, user_id: str) -> Position:
        self._op("position")
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
        self._op("page")
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
        self._op("unread_count")
        return await self.inner.unread_count(user_id)

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> list[int]:
        self._op("mark_read")
        return await self.inner.mark_read(user_id, ids=ids, up_to=up_to)

    async def delete(self, user_id: str, seq: int) -> bool:
        self._op("delete")
        return await self.inner.delete(user_id, seq)

    async def prune(self, older_than_ms: int, batch: int) -> int:
        self._op("prune")
        return await self.inner.prune(older_than_ms, batch)

    async def counts(self, user_id: str) -> Counts:
        self._op("counts")
        return await self.inner.counts(user_id)

    async def group_heads(
        self, user_id: str, groups: Sequence[str], *, category: str | None, archived: bool
    ) -> dict[str, tuple[int, int]]:
        self._op("group_heads")
        return await self.inner.group_heads(user_id, groups, category=category, archived=archived)

    async def mark_seen(self, user_id: str, up_to: int) -> list[int]:
        self._op("mark_seen")
        return await self.inner.mark_seen(user_id, up_to)

    async def archive(self, user_id: str, ids: Sequence[int], archived: bool) -> list[int]:
        self._op("archive")
        return await self.inner.archive(user_id, ids, archived)

    async def preferences(self, user_id: str) -> Preferences:
        self._op("preferences")
        return await self.inner.preferences(user_id)

    async def set_preferences(self, user_id: str, preferences: Preferences) -> None:
        self._op("set_preferences")
        await self.inner.set_preferences(user_id, preferences)

    async def muting(self, user_ids: Sequence[str], category: str) -> set[str]:
        self._op("muting")
        return await self.inner.muting(user_ids, category)

    # --- scheduled notifications (deliver_at) and expiry ------------------------------------

    async def schedule(self, draft: Draft, key: str) -> Scheduled | None:
        self._op("schedule")
        return await self.inner.schedule(draft, key)

    async def claim_due(self, lease_ms: int, limit: int) -> list[Due]:
        self._op("claim_due")
        return await self.inner.claim_due(lease_ms, limit)

    async def renew_due(self, rows: Sequence[Due], lease_ms: int) -> int:
        self._op("renew_due")
        return await self.inner.renew_due(rows, lease_ms)

    async def deliver(self, rows: Sequence[Due]) -> list[Stored]:
        self._op("deliver")
        return await self.inner.deliver(rows)

    async def cancel_scheduled(self, key: str) -> tuple[int, tuple[str, ...]]:
        self._op("cancel_scheduled")
        return await self.inner.cancel_scheduled(key)

    async def snooze(self, user_id: str, ids: Sequence[int], until_ms: int) -> list[int]:
        self._op("snooze")
        return await self.inner.snooze(user_id, ids, until_ms)

    async def unsnooze(self, user_id: str, ids: Sequence[int]) -> list[Notification]:
        self._op("unsnooze")
        return await self.inner.unsnooze(user_id, ids)

    async def claim_snoozed(self, lease_ms: int, limit: int) -> list[Snooze]:
        self._op("claim_snoozed")
        return await self.inner.claim_snoozed(lease_ms, limit)

    async def renew_snoozed(self, claimed: Sequence[Snooze], lease_ms: int) -> int:
        self._op("renew_snoozed")
        return await self.inner.renew_snoozed(claimed, lease_ms)

    async def wake_snoozed(self, claimed: Sequence[Snooze]) -> list[Notification]:
        self._op("wake_snoozed")
        return await self.inner.wake_snoozed(claimed)

    async def next_snoozed(self) -> int | None:
        self._op("next_snoozed")
        return await self.inner.next_snoozed()

    async def next_due(self) -> int | None:
        self._op("next_due")
        return await self.inner.next_due()

    async def delivered_between(self, after_ms: int, upto_ms: int, limit: int) -> list[str]:
        self._op("delivered_between")
        return await self.inner.delivered_between(after_ms, upto_ms, limit)

    async def next_expiry(self, after_ms: int) -> int | None:
        self._op("next_expiry")
        return await self.inner.next_expiry(after_ms)

    async def expired_between(
        self, after_ms: int, upto_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        self._op("expired_between")
        return await self.inner.expired_between(after_ms, upto_ms, limit)

    # -- the email digest ------------------------------------------------------------------------

    async def user(self, user_id: str) -> UserRecord | None:
        self._op("user")
        return await self.inner.user(user_id)

    async def set_user_email(self, user_id: str, email: str | None) -> UserRecord:
        self._op("set_user_email")
        return await self.inner.set_user_email(user_id, email)

    async def email_due(self, after_ms: int, limit: int) -> list[str]:
        self._op("email_due")
        return await self.inner.email_due(after_ms, limit)

    async def claim_email(
        self, user_id: str, owner: str, after_ms: int, lease_ms: int
    ) -> EmailClaim | None:
        self._op("claim_email")
        return await self.inner.claim_email(user_id, owner, after_ms, lease_ms)

    async def finish_email(self, claim: EmailClaim, next_ms: int) -> bool:
        self._op("finish_email")
        return await self.inner.finish_email(claim, next_ms)

    async def release_email(self, claim: EmailClaim, next_ms: int, *, keep_claim: bool) -> bool:
        self._op("release_email")
        return await self.inner.release_email(claim, next_ms, keep_claim=keep_claim)

    # --- Web Push (issue 11) ------------------------------------------------------------------

    async def add_push_subscription(self, sub: PushSubscription, limit: int) -> Subscribed:
        self._op("add_push_subscription")
        return await self.inner.add_push_subscription(sub, limit)

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        self._op("remove_push_subscription")
        return await self.inner.remove_push_subscription(user_id, endpoint)

    async def push_subscriptions(self, user_id: str) -> list[PushSubscription]:
        self._op("push_subscriptions")
        return await self.inner.push_subscriptions(user_id)

    async def drop_push_subscription(self, endpoint: str) -> None:
        self._op("drop_push_subscription")
        await self.inner.drop_push_subscription(endpoint)

    async def push_due(self, cutoff_ms: int, limit: int) -> list[PushSubscription]:
        self._op("push_due")
        return await self.inner.push_due(cutoff_ms, limit)

    async def claim_push(self, endpoint: str, owner: str, lease_ms: int) -> PushSubscription | None:
        self._op("claim_push")
        return await self.inner.claim_push(endpoint, owner, lease_ms)

    async def advance_push(self, endpoint: str, owner: str, done_seq: int) -> bool:
        self._op("advance_push")
        return await self.inner.advance_push(endpoint, owner, done_seq)

    async def release_push(
        self, endpoint: str, owner: str, done_seq: int, *, retry_ms: int = 0, failures: int = 0
    ) -> None:
        self._op("release_push")
        await self.inner.release_push(
            endpoint, owner, done_seq, retry_ms=retry_ms, failures=failures
        )

    async def record_presence(
        self, node: str, alive_ms: int, opened: Sequence[str], closed: Sequence[tuple[str, int]]
    ) -> None:
        self._op("record_presence")
        await self.inner.record_presence(node, alive_ms, opened, closed)

    async def presence(self, user_id: str) -> int:
        self._op("presence")
        return await self.inner.presence(user_id)

    async def forget_presence(self, before_ms: int) -> None:
        self._op("forget_presence")
        await self.inner.forget_presence(before_ms)
