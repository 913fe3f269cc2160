"""A store wrapper that bounds the work one node can queue on its database.

After a node or database restart, hundreds of reconnecting streams and retrying publishers
arrive at once. Unbounded, each waits for a pooled connection for the driver's full timeout,
the queue outlives the clients that filled it, and the node takes minutes to recover. Here at
most `limit` store operations run at once; the next ones wait at most `queue_timeout` seconds
for a slot and are then refused with `StoreUnavailable` (503 and `retry-after`), so every
request is answered within seconds and the retries spread out.

Catch-up reads (a stream's position and what it missed) hold at most half the slots. On a store
that can answer many users in one read (`BatchedReads`: MongoDB), they also wait in order, at
most `catch_up_queue` of them, and are sent in batches, one batch at a time per operation: after
a restart on FerretDB, where each read is a scan of the whole collection, a hundred streams'
reads are one scan instead of a hundred (issue 22, item 4).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from tidings.models import Notification, Position
from tidings.store.base import Store, StoreUnavailable
from tidings.store.wrapping import Operation, StoreWrapper

__all__ = ["ADMISSION", "BATCH_MAX", "BatchedReads", "BoundedStore"]

# Catch-up reads one batch sends at most.
BATCH_MAX = 100

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

    async def run(
        self, wait_s: float, busy: str, call: Operation, *args: Any, **kwargs: Any
    ) -> Any:
        """`call` holding one slot (see `take`)."""
        if not self.try_take():
            await self.take(wait_s, busy)
        try:
            return await call(*args, **kwargs)
        finally:
            self.release()


@runtime_checkable
class BatchedReads(Protocol):
    """A store that answers many users' catch-up reads in one read (an optional capability)."""

    async def after_many(
        self, requests: Sequence[tuple[str, int, int]]
    ) -> list[list[Notification]]:
        """`after(user_id, seq, limit)` for each request, in order."""

    async def position_many(self, user_ids: Sequence[str]) -> list[Position]:
        """`position(user_id)` for each user, in order."""


class BoundedStore(StoreWrapper):
    def __init__(
        self, inner: Store, *, limit: int, queue_timeout: float, catch_up_queue: int = 10_000
    ) -> None:
        self.limit = limit
        self.queue_timeout = queue_timeout
        self.catch_up_queue = catch_up_queue
        self._slots = _Slots(limit)
        # Catch-up reads (a stream's position and what it missed) hold at most half the slots:
        # after a restart, thousands of reconnecting streams would otherwise fill every slot
        # with slow reads for minutes, and publishes and requests would find none (issue 22).
        self._catch_up = _Slots(max(1, limit // 2))
        self._busy = f"{limit} operations"
        self._catch_up_busy = f"{limit // 2} catch-up reads"
        self._batches: dict[str, _Batches] = {}
        if isinstance(inner, BatchedReads):
            self._batches["after"] = _Batches(self, _after_many(inner))
            self._batches["position"] = _Batches(self, _position_many(inner))
        super().__init__(inner)

    def around(self, name: str, call: Operation) -> Operation:
        admission = ADMISSION.get(name, "slot")
        if admission == "free":
            return call
        batches = self._batches.get(name)
        if batches is not None:
            return batches.call
        slots = self._slots
        timeout = self.queue_timeout

        if admission == "catch_up":

            async def admitted(*args: Any, **kwargs: Any) -> Any:
                return await self.catch_up(call, *args, **kwargs)

            return admitted

        async def admitted_slot(*args: Any, **kwargs: Any) -> Any:
            return await slots.run(timeout, self._busy, call, *args, **kwargs)

        return admitted_slot

    async def catch_up(self, call: Operation, *args: Any, **kwargs: Any) -> Any:
        """`call` in a slot from the catch-up reads' share first, then one of all the slots."""
        slots, timeout = self._slots, self.queue_timeout
        return await self._catch_up.run(
            timeout, self._catch_up_busy, slots.run, timeout, self._busy, call, *args, **kwargs
        )


Many = Callable[[list[Any]], Awaitable[list[Any]]]


def _after_many(inner: BatchedReads) -> Many:
    async def many(calls: list[Any]) -> list[Any]:
        return await inner.after_many([_after_args(*a, **k) for a, k in calls])

    return many


def _after_args(user_id: str, seq: int, limit: int) -> tuple[str, int, int]:
    return user_id, seq, limit


def _position_many(inner: BatchedReads) -> Many:
    async def many(calls: list[Any]) -> list[Any]:
        return await inner.position_many([_position_args(*a, **k) for a, k in calls])

    return many


def _position_args(user_id: str) -> str:
    return user_id


class _Batches:
    """The calls of one catch-up read, queued in arrival order and sent `BATCH_MAX` at a time,
    one batch at a time, each in one catch-up slot.

    No task runs the queue: the first caller that finds no batch running sends the next one
    (its own call among them, or calls queued before it), and the others wait for their answer
    or for that batch to end. A caller that leaves (its client went away) takes its call out;
    one that leaves while its batch runs puts the batch's other calls back at the front."""

    def __init__(self, bounded: BoundedStore, many: Many) -> None:
        self._bounded = bounded
        self._many = many
        self._queue: collections.deque[tuple[Any, asyncio.Future[Any]]] = collections.deque()
        self._running: asyncio.Future[None] | None = None

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        if len(self._queue) >= self._bounded.catch_up_queue:
            raise StoreUnavailable(
                f"the store is busy ({len(self._queue)} catch-up reads waiting on this node, "
                "TIDINGS_STORE_CATCH_UP_QUEUE)"
            )
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(((args, kwargs), answer))
        try:
            while not answer.done():
                if self._running is None:
                    await self._send()
                else:
                    await asyncio.wait((answer, self._running), return_when=asyncio.FIRST_COMPLETED)
            return answer.result()
        finally:
            # Left while queued: the batch that takes it skips it.
            answer.cancel()

    async def _send(self) -> None:
        batch: list[tuple[Any, asyncio.Future[Any]]] = []
        while self._queue and len(batch) < BATCH_MAX:
            call = self._queue.popleft()
            if not call[1].done():
                batch.append(call)
        if not batch:
            return
        running = self._running = asyncio.get_running_loop().create_future()
        try:
            answers = await self._bounded.catch_up(self._many, [call for call, _ in batch])
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                # Its caller left: the others' calls go back, first in line.
                self._queue.extendleft(reversed(batch))
                raise
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
        else:
            for (_, answer), value in zip(batch, answers, strict=True):
                if not answer.done():
                    answer.set_result(value)
        finally:
            self._running = None
            running.set_result(None)
