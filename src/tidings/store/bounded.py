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
import collections
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


class _Slots:
    """A counting semaphore whose free slot is taken without an await.

    Every store call passes through here (a publish, each stream's position and catch-up read):
    `asyncio.Semaphore` behind two `asynccontextmanager`s cost ~15 % of a node's CPU in a
    reconnect storm (py-spy), most of it when a slot was free anyway. A released slot goes to
    the longest waiter directly, so a newcomer never overtakes one."""

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_take(self) -> bool:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        return False

    async def take(self, wait_s: float, busy: str) -> None:
        """A slot, waiting at most `wait_s` seconds; past it refused as busy (503) with `busy`
        saying what is in progress."""
        if self.try_take():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        try:
            async with asyncio.timeout(wait_s):
                await future
        except TimeoutError:
            if future.done() and not future.cancelled():
                self.release()  # handed over just as the wait ran out: pass it on
            raise StoreUnavailable(f"the store is busy ({busy} in progress on this node)") from None
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()
            raise

    def release(self) -> None:
        waiters = self.waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


class BoundedStore(StoreWrapper):
    def __init__(self, inner: Store, *, limit: int, queue_timeout: float) -> None:
        self.limit = limit
        self.queue_timeout = queue_timeout
        self._slots = _Slots(limit)
        # Catch-up reads (a stream's position and what it missed) hold at most half the slots:
        # after a restart, thousands of reconnecting streams would otherwise fill every slot
        # with slow reads for minutes, and publishes and requests would find none (issue 22).
        self._catch_up = _Slots(max(1, limit // 2))
        self._busy = f"{limit} operations"
        self._catch_up_busy = f"{limit // 2} catch-up reads"
        super().__init__(inner)

    def around(self, name: str, call: Operation) -> Operation:
        admission = ADMISSION.get(name, "slot")
        if admission == "free":
            return call
        slots, catch_up = self._slots, self._catch_up
        timeout = self.queue_timeout

        if admission == "catch_up":

            async def admitted(*args: Any, **kwargs: Any) -> Any:
                # A slot from the catch-up reads' share first, then one of all the slots.
                if not catch_up.try_take():
                    await catch_up.take(timeout, self._catch_up_busy)
                try:
                    if not slots.try_take():
                        await slots.take(timeout, self._busy)
                    try:
                        return await call(*args, **kwargs)
                    finally:
                        slots.release()
                finally:
                    catch_up.release()

            return admitted

        async def admitted_slot(*args: Any, **kwargs: Any) -> Any:
            if not slots.try_take():
                await slots.take(timeout, self._busy)
            try:
                return await call(*args, **kwargs)
            finally:
                slots.release()

        return admitted_slot
