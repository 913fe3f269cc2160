"""This node's live streams, by user: routes bus events into bounded per-stream queues.

The hub never touches the store. It hands each stream what the bus announced; the stream itself
dedupes by seq and fills gaps from the store. Heartbeats go out from one timer that visits a
sixteenth of the streams per tick, so 10,000 streams never get their ping in the same instant.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final, Protocol

from tidings import sse
from tidings.events import (
    ArchiveChanged,
    Deleted,
    Event,
    Expired,
    Published,
    ReadChanged,
    Resync,
    ScheduleHint,
    SeenChanged,
    Snoozed,
    Unsnoozed,
    UserResync,
)
from tidings.metrics import Metrics
from tidings.settings import Settings

__all__ = ["CHECK", "PING", "UNSNOOZED", "End", "Frame", "Hub", "Refetch", "Subscriber"]

# Heartbeats spread over this many slots, one visited per tick (15 s / 512 ≈ 29 ms): at 19,000
# streams a tick queues ~37 pings, a millisecond of writes, where 16 slots queued ~1,200 at once
# and stalled every stream's deliveries behind them (perf-notes trap 2).
HEARTBEAT_SLOTS: Final = 512
# A wake-up of the heartbeat visits every slot due, and waits until about this many pings are
# due (never longer than HEARTBEAT_LATE_MAX of the period): a node with few streams then wakes a
# few times a second, not 34 times (each wake-up of an idle process costs ~0.25 ms of CPU on a
# small VM, a node's biggest fixed cost in `bench/run cluster`), and 19,000 streams still wake it
# at every tick.
PINGS_PER_WAKE: Final = 32
HEARTBEAT_LATE_MAX: Final = 1 / 32


class Writer(Protocol):
    """A stream's connection, written to directly (tidings.answers.OneWriteCycle.write_frame)."""

    def write_frame(self, body: bytes) -> bool: ...


class Routes(Protocol):
    """The bus's side of per-user routing (tidings.bus.base.Bus.join / leave)."""

    def join(self, user_id: str) -> asyncio.Future[None] | None: ...

    def leave(self, user_id: str) -> None: ...


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PING: Final = _Marker("PING")
# "Look in the store": the bus may have dropped something (it reconnected).
CHECK: Final = _Marker("CHECK")


class Frame:
    """A notification ready to write; `body` is None when the bus carried only (user, seq)."""

    __slots__ = ("body", "created_ms", "seq")

    def __init__(self, seq: int, body: bytes | None, created_ms: int) -> None:
        self.seq = seq
        self.body = body
        self.created_ms = created_ms


class End:
    """Close the stream cleanly: drain (with a `retry:` to spread reconnects) or expiry."""

    __slots__ = ("reason", "retry_ms")

    def __init__(self, reason: str, retry_ms: int | None = None) -> None:
        self.reason = reason
        self.retry_ms = retry_ms


class Refetch:
    """Woken (unsnoozed) notifications the bus carried without their bodies: the stream reads
    them from the store and sends `notifications-unsnoozed` itself."""

    __slots__ = ("event",)

    def __init__(self, event: Unsnoozed) -> None:
        self.event = event


# The SSE event of notifications back from snooze (design v3).
UNSNOOZED: Final = "notifications-unsnoozed"

Item = Frame | bytes | End | _Marker | Refetch


class Subscriber:
    """One open stream's mailbox: a bounded queue in items and bytes, and how to stop it."""

    __slots__ = (
        "_abort",
        "_bytes",
        "_items",
        "_max_bytes",
        "_max_items",
        "_waiter",
        "expiry",
        "last",
        "reason",
        "recheck",
        "route",
        "slot",
        "user_id",
        "writer",
    )

    def __init__(self, user_id: str, max_items: int, max_bytes: int) -> None:
        self.user_id = user_id
        self.reason: str | None = None
        self.slot = 0
        self.expiry: asyncio.TimerHandle | None = None
        self.recheck: asyncio.TimerHandle | None = None
        # The bus's subscription for this user, while it is not confirmed yet (see Hub.add).
        self.route: asyncio.Future[None] | None = None
        self._items: deque[Item] = deque()
        self._bytes = 0
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._waiter: asyncio.Future[None] | None = None
        self._abort: asyncio.Timeout | None = None
        # While the stream waits with nothing queued, the next frame in seq order is written to
        # its connection at once (`write`), and `last` is the seq written last.
        self.writer: Writer | None = None
        self.last = 0

    def bind(self, abort: asyncio.Timeout) -> None:
        """The stream's cancel scope: `abort()` interrupts whatever the stream awaits."""
        self._abort = abort

    def write(self, frame: Frame) -> bool:
        """Write the next frame straight to the connection, if the stream is idle in `take`
        (nothing queued, its task parked) and its connection is writable: a broadcast then
        writes 10,000 streams in one pass, without waking 10,000 tasks to do it."""
        if frame.seq != self.last + 1 or frame.body is None or not self._write_if_idle(frame.body):
            return False
        self.last = frame.seq
        return True

    def write_ping(self, body: bytes) -> bool:
        """A heartbeat written straight to the connection of a stream idle in `take`, as
        `write` does a frame: an idle stream's ping then wakes no task."""
        return self._write_if_idle(body)

    def _write_if_idle(self, body: bytes) -> bool:
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and self.reason is None
            and self.writer is not None
            and self.writer.write_frame(body)
        )

    def push(self, item: Item) -> None:
        if self.reason is not None:
            return
        if (item is PING and self._items) or (item is CHECK and CHECK in self._items):
            # A ping when something is queued adds nothing (and a stream stuck in a write must
            # not collect one per heartbeat); one pending check covers any number.
            return
        size = _size(item)
        if isinstance(item, Frame | bytes) and (
            len(self._items) >= self._max_items or self._bytes + size > self._max_bytes
        ):
            self.abort("slow")
            return
        self._items.append(item)
        self._bytes += size
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> list[Item]:
        """Everything queued, waiting for at least one item."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items = list(self._items)
        self._items.clear()
        self._bytes = 0
        return items

    def forget_checks(self) -> None:
        """Drop queued store checks: the stream is about to read the store anyway."""
        if CHECK in self._items:
            self._items = deque(item for item in self._items if item is not CHECK)

    def check_later(self, delay: float) -> None:
        """Queue a store check after `delay` seconds (one pending at a time)."""
        if self.recheck is None or self.recheck.cancelled() or self.recheck.when() < _now():
            self.recheck = asyncio.get_running_loop().call_later(delay, self.push, CHECK)

    def cancel_timers(self) -> None:
        for handle in (self.expiry, self.recheck):
            if handle is not None:
                handle.cancel()

    def abort(self, reason: str) -> None:
        """Stop at once, also in the middle of a write to a client that does not read."""
        if self.reason is None:
            self.reason = reason
        if self._abort is not None and self._abort.expired() is False:
            self._abort.reschedule(asyncio.get_running_loop().time())


def _now() -> float:
    return asyncio.get_running_loop().time()


def _size(item: Item) -> int:
    if isinstance(item, Frame):
        return len(item.body) if item.body is not None else 16
    if isinstance(item, bytes):
        return len(item)
    return 0


class Hub:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.draining = False
        # The longest `retry:` of this node's drain (set by `drain`; streams refused while
        # draining get one within it too).
        self.drain_top_ms = settings.drain_retry_max_ms
        self._users: dict[str, set[Subscriber]] = {}
        self._slots: list[set[Subscriber]] = [set() for _ in range(HEARTBEAT_SLOTS)]
        self._next_slot = 0
        self._count = 0
        self._empty = asyncio.Event()
        self._empty.set()
        # Presence (tidings.channels.presence) sets this to hear when a user's last
        # stream on this node closes; None, and free, while push is off.
        self.on_leave: Callable[[str], None] | None = None
        # The bus, told which users this node holds streams for (per-user routing).
        self.routes: Routes | None = None

    def __len__(self) -> int:
        return self._count

    async def emptied(self) -> None:
        """Return once no stream is open (after `drain`, when every stream has ended)."""
        await self._empty.wait()

    def users(self) -> list[str]:
        """The users with at least one open stream on this node."""
        return list(self._users)

    def subscribers(self) -> Iterator[Subscriber]:
        for subs in self._users.values():
            yield from subs

    def new_subscriber(self, user_id: str) -> Subscriber:
        return Subscriber(user_id, self.settings.stream_queue, self.settings.stream_queue_bytes)

    def add(self, sub: Subscriber, expires_at: float | None) -> bool:
        """Register a stream; False when the user is at the per-node connection cap."""
        subs = self._users.setdefault(sub.user_id, set())
        if len(subs) >= self.settings.max_streams_per_user:
            if not subs:
                del self._users[sub.user_id]
            return False
        subs.add(sub)
        sub.slot = self._next_slot
        self._next_slot = (self._next_slot + 1) % HEARTBEAT_SLOTS
        self._slots[sub.slot].add(sub)
        self._count += 1
        self._empty.clear()
        self.metrics.streams_open.inc()
        if self.routes is not None:
            sub.route = self.routes.join(sub.user_id)
        if expires_at is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, expires_at - loop.time())
            sub.expiry = loop.call_later(delay, sub.push, End("expired"))
        return True

    def remove(self, sub: Subscriber) -> None:
        subs = self._users.get(sub.user_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._users[sub.user_id]
            if self.routes is not None:
                self.routes.leave(sub.user_id)
            if self.on_leave is not None:
                self.on_leave(sub.user_id)
        self._slots[sub.slot].discard(sub)
        sub.cancel_timers()
        self._count -= 1
        if not self._count:
            self._empty.set()
        self.metrics.streams_open.dec()

    def has(self, user_id: str) -> bool:
        """Whether the user has a stream on this node."""
        return user_id in self._users

    def deliver(self, event: Event | Expired) -> None:
        """Called by the bus, on the event loop, for every event of every node (and by this
        node's expiry sweep, for `Expired`)."""
        if type(event) is Published:
            # The hot case first (a broadcast comes here once per user): one lookup, one frame.
            subs = self._users.get(event.user_id)
            if subs:
                n = event.notification
                frame = Frame(
                    event.seq,
                    sse.notification(n) if n is not None else None,
                    n.created_ms if n is not None else 0,
                )
                # `push` never adds or removes streams, so the set is iterated as it is.
                for sub in subs:
                    if sub.write(frame):
                        self.metrics.deliveries.live(frame.created_ms)
                    else:
                        sub.push(frame)
            return
        if isinstance(event, Resync):
            for sub in list(self.subscribers()):
                sub.push(CHECK)
            return
        if isinstance(event, UserResync):
            for sub in self._users.get(event.user_id, ()):
                sub.push(CHECK)
            return
        if isinstance(event, ScheduleHint):
            return  # for the scheduler (see Service.deliver), not for streams
        subs = self._users.get(event.user_id)
        if not subs:
            return
        item: Item
        if isinstance(event, Published):
            n = event.notification
            body = sse.notification(n) if n is not None else None
            item = Frame(event.seq, body, n.created_ms if n is not None else 0)
        elif isinstance(event, ReadChanged):
            item = sse.event("notifications-read", event.to_json())
        elif isinstance(event, Deleted):
            item = sse.event("notification-deleted", event.to_json())
        elif isinstance(event, SeenChanged):
            item = sse.event("notifications-seen", event.to_json())
        elif isinstance(event, ArchiveChanged):
            item = sse.event(event.name, event.to_json())
        elif isinstance(event, Expired):
            item = sse.event("notifications-expired", event.to_json())
        elif isinstance(event, Snoozed):
            item = sse.event("notifications-snoozed", event.to_json())
        elif isinstance(event, Unsnoozed):
            # Bodies the bus could not carry are read from the store by each stream.
            item = sse.event(UNSNOOZED, event.to_json()) if not event.missing else Refetch(event)
        for sub in list(subs):
            sub.push(item)

    async def heartbeat(self) -> None:
        """Run until cancelled: one tick visits one slot of streams and queues their ping.

        The ticks keep to the clock: a wake-up that comes late (timers wake no sooner than a
        millisecond, later on a busy loop) visits every slot that came due, so the period the
        streams announce is the period they get, and a client's watchdog keyed to it holds."""
        heartbeat = self.settings.heartbeat
        tick = heartbeat / HEARTBEAT_SLOTS
        ping = sse.ping(heartbeat)
        loop = asyncio.get_running_loop()
        slot = 0
        due = loop.time() + tick
        while True:
            gather = min(
                heartbeat * HEARTBEAT_LATE_MAX, heartbeat * PINGS_PER_WAKE / (self._count or 1)
            )
            await asyncio.sleep(max(due - loop.time(), gather))
            # After a stall longer than a round, one round of pings, not one per round missed.
            due = max(due, loop.time() - heartbeat)
            while due <= loop.time():
                for sub in list(self._slots[slot]):
                    if not sub.write_ping(ping):
                        sub.push(PING)
                slot = (slot + 1) % HEARTBEAT_SLOTS
                due += tick

    def drain(self) -> None:
        """Close every stream with a jittered `retry:` so clients spread over other nodes (or
        over this one's restart), as wide as their number needs (`sse.drain_top_ms`)."""
        self.draining = True
        subs = list(self.subscribers())
        settings = self.settings
        top = sse.drain_top_ms(
            len(subs), settings.drain_reconnects_per_s, settings.drain_retry_max_ms
        )
        self.drain_top_ms = top
        for sub in subs:
            sub.push(End("drain", retry_ms=sse.drain_retry_ms(top)))
