"""What the buses between processes (Redis, PostgreSQL) share: one subscription, kept alive.

Each process holds one subscription, read by one task the bus owns (started by `start`, cancelled
and awaited by `close`). When the connection drops the bus reports not ready, reconnects with
jittered exponential backoff, and once subscribed again hands the hub a `Resync`, so every stream
reads what it missed from the store. An `announce` that fails is owed: the bus broadcasts a resync
as soon as it can publish again, so the other nodes' streams catch up too.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tidings.bus import wire
from tidings.bus.base import Deliver, Tally
from tidings.events import Event, Resync

__all__ = ["Link", "Receiver", "SharedBus", "split_channel"]

log = logging.getLogger("tidings.bus")

CONNECT_TIMEOUT: Final = 5.0
ANNOUNCE_TIMEOUT: Final = 2.0
BACKOFF_MIN: Final = 0.1
BACKOFF_MAX: Final = 5.0
# How long `start` waits for the first subscription before serving anyway (not ready).
START_WAIT: Final = 5.0
# The reader wakes at least this often: to pay an owed resync, to check the connection.
TICK: Final = 1.0
# With no traffic for this long the reader pings; no answer within PING_TIMEOUT is a dead link.
KEEPALIVE: Final = 10.0
PING_TIMEOUT: Final = 5.0


def split_channel(url: str, default: str) -> tuple[str, str]:
    """`(url without ?channel=, channel)`: the driver would not know the parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    channel = default
    kept: list[tuple[str, str]] = []
    for key, value in query:
        if key == "channel" and value:
            channel = value
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), channel


class Receiver(abc.ABC):
    """What every networked bus does with what it hears, one-channel (`SharedBus`) or routed
    (`RoutedBus`): count the user events (the `bus_received_share` of `bench/run cluster`) and
    hand each event to the hub, one that fails not stopping the rest."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self.tally: Tally | None = None
        self._decode = wire.Decoder()

    @abc.abstractmethod
    def name(self) -> str:
        """For log lines: the backend and where it is, without credentials."""

    def _received(self, raw: str | bytes) -> None:
        events = self._decode(raw)
        if self.tally is not None:
            self.tally.count += sum(1 for e in events if hasattr(e, "user_id"))
        self._dispatch(events)

    def _dispatch(self, events: Sequence[Event]) -> None:
        if self._deliver is None:
            return
        for event in events:
            try:
                self._deliver(event)
            except Exception:
                log.exception("bus %s: delivering an event failed", self.name())


class Link:
    """One subscription connection's state, kept alive by `keep` (a shared bus has one, a
    routed bus one per shard): live or not, and whether its outage was logged, so an outage is
    logged once when it begins and once when it ends, however many reconnects fail between."""

    def __init__(self) -> None:
        self.live = False
        self.outage_logged = False

    def connected(self, where: str) -> None:
        """Called by the reader once subscribed again."""
        if self.outage_logged:
            log.warning("bus %s: reconnected; streams catch up from the store", where)
            self.outage_logged = False
        self.live = True

    async def keep(
        self, listen: Callable[[], Awaitable[None]], where: str, lost: Callable[[], None]
    ) -> NoReturn:
        """Run `listen` (connect, subscribe, read) and, whenever it ends, call `lost` and
        reconnect with jittered exponential backoff (from the shortest again once it had
        worked), until cancelled."""
        delay = BACKOFF_MIN
        while True:
            try:
                await listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.live or not self.outage_logged:
                    log.warning(
                        "bus %s: connection lost (%s); reconnecting, streams catch up after",
                        where,
                        exc or type(exc).__name__,
                    )
                    self.outage_logged = True
            if self.live:
                delay = BACKOFF_MIN  # it had worked: start the backoff over
            lost()
            self.live = False
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, BACKOFF_MAX)


class SharedBus(Receiver):
    # The largest message this bus carries, in bytes.
    limit: int = wire.DEFAULT_LIMIT

    def __init__(self, channel: str) -> None:
        super().__init__()
        self.channel = channel
        self._task: asyncio.Task[None] | None = None
        self._link = Link()
        self._first = asyncio.Event()
        self._owe_resync = False

    # -- the subscriber side ----------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._first = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"tidings-bus-{self.channel}")
        # Serve even when the bus is down at start-up: publishing stores, /readyz says not ready.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT):
                await self._first.wait()

    async def _run(self) -> None:
        await self._link.keep(self._listen, self.name(), lambda: None)

    def _subscribed(self) -> None:
        """Called by `_listen` once the subscription is live: catch every stream up."""
        self._link.connected(self.name())
        self._first.set()
        # Whatever was announced while we were not subscribed is in the store.
        self._dispatch([Resync()])

    async def _tick(self) -> None:
        """Called by `_listen` at least every TICK seconds while subscribed."""
        if self._owe_resync:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(ANNOUNCE_TIMEOUT):
                    await self._publish([wire.resync_message()])
                self._owe_resync = False

    # -- the publisher side -----------------------------------------------------------------

    async def announce(self, events: Sequence[Event]) -> None:
        messages = wire.encode(events, self.limit)
        if self._owe_resync:
            messages.insert(0, wire.resync_message())
        if not messages:
            return
        try:
            async with asyncio.timeout(ANNOUNCE_TIMEOUT):
                await self._publish(messages)
        except BaseException:
            # Stored but not announced: every node must look in the store once we can publish.
            self._owe_resync = True
            raise
        self._owe_resync = False

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._link.live = False
        self._deliver = None
        await self._close_publisher()

    def ready(self) -> bool:
        return self._link.live

    # Every node hears every announcement on this bus: nothing to route.
    def join(self, user_id: str) -> asyncio.Future[None] | None:
        return None

    def leave(self, user_id: str) -> None:
        return None

    # -- per backend ------------------------------------------------------------------------

    @abc.abstractmethod
    def name(self) -> str:
        """For log lines: the backend and where it is, without credentials."""

    @abc.abstractmethod
    async def _listen(self) -> None:
        """Connect, subscribe, call `_subscribed`, then feed `_received` and `_tick` until the
        connection fails (raise) or the task is cancelled. Close the connection on the way out."""

    @abc.abstractmethod
    async def _publish(self, messages: Sequence[str]) -> None:
        """Send `messages` in order; the caller bounds the time."""

    @abc.abstractmethod
    async def _close_publisher(self) -> None: ...
