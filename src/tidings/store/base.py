"""The store contract: the database is the event log, and every backend honours it alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tidings.models import Draft, Notification, Position, Stored

__all__ = ["Store", "StoreUnavailable"]


class StoreUnavailable(RuntimeError):
    """The database cannot be reached; nothing was written. Publishing answers 503."""


class Store(Protocol):
    async def open(self) -> None:
        """Connect, and create or upgrade the schema (idempotent)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the database cannot answer."""

    async def add(self, draft: Draft, idempotency_key: str | None = None) -> Stored:
        """Store one notification per user in `draft.user_ids`, in one transaction.

        Each gets its user's next seq, and commit order equals seq order per user, also with
        concurrent writers in other processes. A repeated `idempotency_key` returns what the
        first call stored and stores nothing.
        """

    async def after(self, user_id: str, seq: int, limit: int) -> list[Notification]:
        """Notifications with a seq greater than `seq`, ascending, at most `limit`."""

    async def position(self, user_id: str) -> Position: ...

    async def page(
        self, user_id: str, *, limit: int, before: int | None, unread_only: bool
    ) -> list[Notification]:
        """Newest first; `before` excludes that seq and everything newer."""

    async def unread_count(self, user_id: str) -> int: ...

    async def mark_read(
        self, user_id: str, *, ids: Sequence[int] | None = None, up_to: int | None = None
    ) -> list[int]:
        """Mark the user's own unread notifications read; return the seqs that changed."""

    async def delete(self, user_id: str, seq: int) -> bool: ...

    async def prune(self, older_than_ms: int, batch: int) -> int:
        """Delete at most `batch` notifications created before `older_than_ms`; return count."""
