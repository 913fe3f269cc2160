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
from collections.abc import AsyncIterator
from typing import Any, Literal

from tidings.store.base import Store, StoreUnavailable
from tidings.store.wrapping import Operation, StoreWrapper

__all__ = ["ADMISSION", "BoundedStore"]

# How an operation is let in: "slot" (any of the `limit` slots, waiting at most
# `queue_timeout`), "catch_up" (a slot from the catch-up reads' share first) or "free" (no slot).
Admission = Literal["slot", "catch_up", "free"]

# Every operation not named here takes a "slot".
ADMISSION: dict[str, Admission] = {
    "open": "free",
    "close": "free",
    # Not behind the cap: /readyz asks whether the database answers, not whether this node is
    # busy. Gated, a reconnect storm would make every node look down to the load balancer at
    # once, which would then pull them all.
    "ping": "free",
    # A stream's position and what it missed: the reads a reconnect storm is made of.
    "after": "catch_up",
    "position": "catch_up",
}


class BoundedStore(StoreWrapper):
    def __init__(self, inner: Store, *, limit: int, queue_timeout: float) -> None:
        self.limit = limit
        self.queue_timeout = queue_timeout
        self._slots = asyncio.Semaphore(limit)
        # Catch-up reads (a stream's position and what it missed) hold at most half the slots:
        # after a restart, thousands of reconnecting streams would otherwise fill every slot
        # with slow reads for minutes, and publishes and requests would find none (issue 22).
        self._catch_up = asyncio.Semaphore(max(1, limit // 2))
        super().__init__(inner)

    def around(self, name: str, call: Operation) -> Operation:
        admission = ADMISSION.get(name, "slot")
        if admission == "free":
            return call
        slot = self._catch_up_slot if admission == "catch_up" else self._slot

        async def admitted(*args: Any, **kwargs: Any) -> Any:
            async with slot():
                return await call(*args, **kwargs)

        return admitted

    async def _take(self, slots: asyncio.Semaphore, busy: str) -> None:
        """One of `slots`, waiting at most `queue_timeout` when none is free; past it, refused
        as busy (503) with `busy` saying what is in progress."""
        if slots.locked():
            try:
                async with asyncio.timeout(self.queue_timeout):
                    await slots.acquire()
            except TimeoutError:
                raise StoreUnavailable(
                    f"the store is busy ({busy} in progress on this node)"
                ) from None
        else:
            await slots.acquire()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        await self._take(self._slots, f"{self.limit} operations")
        try:
            yield
        finally:
            self._slots.release()

    @contextlib.asynccontextmanager
    async def _catch_up_slot(self) -> AsyncIterator[None]:
        """A slot for a catch-up read, from its share; past it, shed as busy at once."""
        await self._take(self._catch_up, f"{self.limit // 2} catch-up reads")
        try:
            async with self._slot():
                yield
        finally:
            self._catch_up.release()
