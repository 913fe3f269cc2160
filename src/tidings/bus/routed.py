"""What the per-user buses (Redis, several Redis hashed, Redis Cluster, NATS) share: routing.

A node subscribes only for the users it holds streams for: the hub calls `join` on a user's
streams and `leave` when the last one closes, and the subscription outlives it by
`TIDINGS_BUS_LINGER` seconds, so a reconnecting browser does not churn it. Each user's events are
announced on that user's channel, so only the nodes holding the user receive them; events for
every node (scheduler hints, a resync nobody can narrow down) go on one node-wide channel.

Users are spread over shards (one per Redis instance, Redis Cluster master or NATS connection);
each shard has one subscription connection, read by one task, reconnected with jittered backoff.
The guarantees are those of the broadcast buses, per user:

- a subscription confirmed by the engine hands the hub a `UserResync`, so a user's streams look in
  the store for whatever was announced before it was live (the first subscription, and every
  resubscription after a shard reconnects: only that shard's users are resynced);
- a stream opening waits (briefly) for its user's subscription before it reads the store, so the
  common case costs no second read (`Subscriber.route`);
- an announcement that fails is owed, per user, as a resync on that user's channel.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from typing import Final

from tidings.bus import wire
from tidings.bus.base import Deliver
from tidings.bus.shared import (
    ANNOUNCE_TIMEOUT,
    START_WAIT,
    Link,
    Receiver,
)
from tidings.events import Event, ScheduleHint, UserResync

__all__ = ["OWED_MAX", "RoutedBus", "Shard"]

log = logging.getLogger("tidings.bus")

# Past this many users owed a resync on one shard, one node-wide resync is cheaper to send.
OWED_MAX: Final = 10_000
# The slowest rate a healthy engine takes messages at, for the time an announcement may take.
MESSAGES_PER_SECOND: Final = 2_000
# How long `close` waits for the engines to confirm what was announced last.
CLOSE_CONFIRM: Final = 1.0


class Shard(Link):
    """One subscription connection's users and state; the backend keeps its connection here."""

    def __init__(self, index: int, where: str) -> None:
        super().__init__()
        self.index = index
        self.where = where
        # Users routed through this shard and wanted (streams, or lingering).
        self.users: set[str] = set()
        # Subscribe commands sent and not yet confirmed, per user (a resubscribe while an
        # unsubscribe is in flight must not count the old confirmation).
        self.inflight: dict[str, int] = {}
        self.owed: set[str] = set()
        self.owe_all = False
        # Announced (written to the engine's connection) and not yet confirmed by a checkpoint:
        # owed, like a failed announcement, if that connection turns out lost first.
        self.unconfirmed: set[str] = set()
        self.unconfirmed_home = False
        self.to_subscribe: set[str] = set()
        self.to_unsubscribe: set[str] = set()
        # Unsubscribes sent and not yet confirmed by the engine (each engine's `_flush` side
        # discards them): the engine still routes these users here, so `routed` counts them.
        self.leaving: set[str] = set()
        self.flush_scheduled = False
        self.task: asyncio.Task[None] | None = None


class RoutedBus(Receiver):
    # The largest message this bus carries, in bytes.
    limit: int = wire.DEFAULT_LIMIT

    def __init__(self, shards: Sequence[str], linger: float) -> None:
        super().__init__()
        self.shards = [Shard(i, where) for i, where in enumerate(shards)]
        self.linger = linger
        self._routes: dict[str, asyncio.Future[None]] = {}
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        self._home_live = asyncio.Event()
        self._closing = False

    # -- per backend ------------------------------------------------------------------------

    @abc.abstractmethod
    def name(self) -> str: ...

    @abc.abstractmethod
    def shard_of(self, user_id: str) -> int: ...

    def home_shard(self) -> int:
        """The shard that carries the node-wide channel."""
        return 0

    @abc.abstractmethod
    async def _listen(self, shard: Shard) -> None:
        """Connect, call `_connected`, subscribe the node-wide channel (on `home_shard`) and
        `shard.users`,
        then feed `_confirmed`, `_received` and `_tick` until the connection fails (raise) or
        the task is cancelled; `_flush(shard)` sends `to_subscribe` / `to_unsubscribe`."""

    @abc.abstractmethod
    def _flush(self, shard: Shard) -> None:
        """Send the pending subscribe and unsubscribe commands of a live shard."""

    @abc.abstractmethod
    async def _publish(self, shard: Shard, messages: Sequence[tuple[str | None, str]]) -> None:
        """Write `(user or None for the home channel, message)` in order, pipelined: return
        once written, without waiting for the engine's answer (`_confirm` does, once per
        TICK). Raise when they cannot be written; call `_unconfirmed_lost` when a connection
        they went out on fails, or the engine refuses one."""

    def _publish_nowait(self, shard: Shard, messages: Sequence[tuple[str | None, str]]) -> bool:
        """Write as `_publish` does when that needs no waiting (connected, buffer not full),
        and say whether it did: the common case then costs no timeout to set up and cancel."""
        return False

    @abc.abstractmethod
    async def _confirm(self, shard: Shard) -> None:
        """Return once the engine took everything `_publish` wrote before; raise if it cannot
        say so (the connection is gone)."""

    @abc.abstractmethod
    async def _close_publishers(self) -> None: ...

    # -- the hub side -----------------------------------------------------------------------

    def join(self, user_id: str) -> asyncio.Future[None] | None:
        """A stream of `user_id` opened: route the user here. Returns what to wait for before
        reading the store, or None when there is nothing to wait for (live, or the shard is
        down: then its reconnect resyncs the user)."""
        handle = self._lingering.pop(user_id, None)
        if handle is not None:
            handle.cancel()
        route = self._routes.get(user_id)
        shard = self.shards[self.shard_of(user_id)]
        if route is None:
            route = asyncio.get_running_loop().create_future()
            self._routes[user_id] = route
            shard.users.add(user_id)
            shard.to_unsubscribe.discard(user_id)
            if shard.live:
                shard.to_subscribe.add(user_id)
                self._schedule_flush(shard)
        return None if route.done() or not shard.live else route

    def leave(self, user_id: str) -> None:
        """The last stream of `user_id` on this node closed: unsubscribe after the linger."""
        if user_id not in self._routes or user_id in self._lingering:
            return
        loop = asyncio.get_running_loop()
        self._lingering[user_id] = loop.call_later(self.linger, self._drop, user_id)

    def routed(self) -> int:
        """How many users this node is subscribed for (held, lingering, or let go of but not yet
        confirmed unsubscribed by the engine)."""
        routes = self._routes
        return len(routes) + sum(len(s.leaving.difference(routes)) for s in self.shards)

    def _drop(self, user_id: str) -> None:
        self._lingering.pop(user_id, None)
        route = self._routes.pop(user_id, None)
        if route is not None and not route.done():
            route.set_result(None)
        shard = self.shards[self.shard_of(user_id)]
        shard.users.discard(user_id)
        shard.to_subscribe.discard(user_id)
        if shard.live:
            shard.to_unsubscribe.add(user_id)
            self._schedule_flush(shard)

    def _schedule_flush(self, shard: Shard) -> None:
        # Every join in this turn of the loop goes out in one write.
        if not shard.flush_scheduled:
            shard.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_flush, shard)

    def _run_flush(self, shard: Shard) -> None:
        shard.flush_scheduled = False
        if not shard.live:
            return
        try:
            self._flush(shard)
        except Exception:
            log.warning("bus %s: subscribing failed", shard.where, exc_info=True)
        else:
            shard.leaving.update(shard.to_unsubscribe)
        shard.to_subscribe.clear()
        shard.to_unsubscribe.clear()

    # -- the subscriber side ----------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._closing = False
        self._home_live = asyncio.Event()
        for shard in self.shards:
            shard.task = asyncio.create_task(self._run(shard), name=f"tidings-bus-{shard.index}")
        # Serve even when the bus is down at start-up: publishing stores, /readyz says not ready.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT):
                await self._home_live.wait()

    async def _run(self, shard: Shard) -> None:
        listen = functools.partial(self._listen, shard)
        await shard.keep(listen, shard.where, functools.partial(self._lost, shard))

    def _lost(self, shard: Shard) -> None:
        was_live, shard.live = shard.live, False
        # Most often the engine went away, and the publishing connection with it.
        self._unconfirmed_lost(shard)
        shard.inflight.clear()
        shard.to_subscribe.clear()
        shard.to_unsubscribe.clear()
        shard.leaving.clear()  # the connection's subscriptions went with it
        if not was_live:
            return  # another failed attempt: the routes are as the first failure left them
        loop = asyncio.get_running_loop()
        for user_id in shard.users:
            # Whoever waits for a subscription on this shard stops waiting (the reconnect
            # resyncs the user), and a stream opening meanwhile does not wait at all (join);
            # once connected again, the resubscription confirms each user anew.
            route = self._routes.get(user_id)
            if route is not None and not route.done():
                route.set_result(None)
            self._routes[user_id] = loop.create_future()

    def _connected(self, shard: Shard) -> list[str]:
        """Called by `_listen` once connected; returns the users to subscribe (all of them)."""
        shard.connected(shard.where)
        if shard.index == self.home_shard():
            self._home_live.set()
        users = list(shard.users)
        for user_id in users:
            shard.inflight[user_id] = shard.inflight.get(user_id, 0) + 1
        return users

    def _sent_subscribe(self, shard: Shard, user_id: str) -> None:
        shard.inflight[user_id] = shard.inflight.get(user_id, 0) + 1

    def _confirmed(self, shard: Shard, user_id: str) -> None:
        """The engine confirmed a subscription to `user_id`'s channel."""
        left = shard.inflight.get(user_id, 0) - 1
        if left > 0:
            shard.inflight[user_id] = left
            return
        shard.inflight.pop(user_id, None)
        if user_id not in shard.users:
            return  # dropped meanwhile; its unsubscribe is on its way
        # Anything announced before this moment is in the store: the user's streams look.
        self._dispatch([UserResync(user_id)])
        route = self._routes.get(user_id)
        if route is not None and not route.done():
            route.set_result(None)

    def _home_confirmed(self) -> None:
        """The node-wide channel is live (again): scheduler hints may have been missed."""
        self._dispatch([ScheduleHint(0)])

    async def _tick(self, shard: Shard) -> None:
        """Called by `_listen` at least every TICK seconds while connected: confirm what was
        announced since the last tick, pay owed resyncs."""
        await self._checkpoint(shard)
        if shard.owed or shard.owe_all:
            with contextlib.suppress(Exception):
                await self._send({shard.index: []})

    # -- the publisher side -----------------------------------------------------------------

    # An announcement is pipelined: a publish answers its caller as soon as its announcement is
    # written, not after the engine's reply (one loop wake-up and one socket read less per
    # publish on the path that pays per syscall). What is written and not yet confirmed is
    # remembered per shard; a checkpoint per TICK (one round trip) confirms it, and a lost
    # connection or a refused message turns it into owed resyncs, as a failed announcement
    # always did: the store is the log, so a lost announcement delays and never loses.

    async def _checkpoint(self, shard: Shard) -> None:
        if not (shard.unconfirmed or shard.unconfirmed_home):
            return
        users, home = shard.unconfirmed, shard.unconfirmed_home
        shard.unconfirmed, shard.unconfirmed_home = set(), False
        try:
            async with asyncio.timeout(ANNOUNCE_TIMEOUT):
                await self._confirm(shard)
        except BaseException as exc:
            # Cancelled too (the connection's listener stops its ticker): what this checkpoint
            # took out to confirm is owed, not forgotten.
            self._owe(shard, users, home)
            self._unconfirmed_lost(shard)
            if not isinstance(exc, Exception):
                raise

    def _unconfirmed_lost(self, shard: Shard) -> None:
        """The connection announcements went out on failed, or refused one: owe them all."""
        users, home = shard.unconfirmed, shard.unconfirmed_home
        shard.unconfirmed, shard.unconfirmed_home = set(), False
        self._owe(shard, users, home)

    def _owe(self, shard: Shard, users: set[str], home: bool) -> None:
        if users or home:
            log.warning(
                "bus %s: announcements unconfirmed; their users' streams catch up from the store",
                shard.where,
            )
        shard.owed |= users
        shard.owe_all = shard.owe_all or home
        self._owed_bound(shard)

    def _owed_bound(self, shard: Shard) -> None:
        """Past OWED_MAX users owed on a shard, one node-wide resync instead: owed on the home
        shard, whose connection carries the node-wide channel (on another shard nobody would
        hear it: another instance, or a cluster master that answers MOVED)."""
        if len(shard.owed) > OWED_MAX:
            shard.owed.clear()
            self.shards[self.home_shard()].owe_all = True

    async def announce(self, events: Sequence[Event]) -> None:
        per_user: dict[str, list[Event]] = {}
        node_wide: list[Event] = []
        for event in events:
            user_id = getattr(event, "user_id", None)
            if user_id is None:
                node_wide.append(event)
            else:
                per_user.setdefault(user_id, []).append(event)
        batches: dict[int, list[tuple[str | None, str]]] = {}
        # A publish to many users: one encoding, spliced per user (`wire.encode_per_user`).
        for user_id, message in wire.encode_per_user(per_user, self.limit):
            batches.setdefault(self.shard_of(user_id), []).append((user_id, message))
        if node_wide:
            batch = batches.setdefault(self.home_shard(), [])
            for message in wire.encode(node_wide, self.limit):
                batch.append((None, message))
        await self._send(batches)

    async def _send(self, batches: dict[int, list[tuple[str | None, str]]]) -> None:
        """Publish each shard's batch (with what it owes first), all shards at once."""
        for shard in self.shards:
            # What a connected shard owes goes out with this announcement; a shard that is down
            # is left to its own reconnect (trying it would hold up everyone else's).
            if (shard.owed or shard.owe_all) and shard.live and shard.index not in batches:
                batches[shard.index] = []
        if not batches:
            return
        indexes = list(batches)
        if len(indexes) == 1:
            # The common case (a publish to one user): no task to start for one shard.
            await self._send_one(self.shards[indexes[0]], batches[indexes[0]])
            return
        results = await asyncio.gather(
            *(self._send_one(self.shards[i], batches[i]) for i in indexes),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    async def _send_one(self, shard: Shard, batch: list[tuple[str | None, str]]) -> None:
        owed, owe_all = shard.owed, shard.owe_all
        shard.owed, shard.owe_all = set(), False
        messages: list[tuple[str | None, str]] = []
        if owe_all:
            messages.append((None, wire.resync_message()))
        for user_id in owed:
            messages.extend((user_id, m) for m in wire.encode([UserResync(user_id)]))
        messages.extend(batch)
        if not messages:
            return
        try:
            if not self._publish_nowait(shard, messages):
                # A publish to 10,000 users is 10,000 messages: give a large batch its time.
                async with asyncio.timeout(ANNOUNCE_TIMEOUT + len(messages) / MESSAGES_PER_SECOND):
                    await self._publish(shard, messages)
        except BaseException:
            # Stored but not announced: these users' streams must look once we can publish.
            shard.owe_all = shard.owe_all or owe_all
            shard.owed |= owed
            shard.owed.update(u for u, _ in batch if u is not None)
            if any(u is None for u, _ in batch):
                shard.owe_all = True
            self._owed_bound(shard)
            raise
        # Written: owed again if the connection is lost before a checkpoint confirms it.
        unconfirmed = shard.unconfirmed
        unconfirmed |= owed
        for whom, _ in batch:
            if whom is None:
                shard.unconfirmed_home = True
            else:
                unconfirmed.add(whom)
        if owe_all:
            shard.unconfirmed_home = True

    # -- lifecycle --------------------------------------------------------------------------

    async def close(self) -> None:
        self._closing = True
        # What was written reaches the engine before the connections close (`tidings send`
        # has no tick to confirm it); all shards at once, and briefly: a node stops in seconds.
        pending = [s for s in self.shards if s.unconfirmed or s.unconfirmed_home]
        if pending:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_CONFIRM):
                    await asyncio.gather(
                        *(self._confirm(s) for s in pending), return_exceptions=True
                    )
        for shard in self.shards:
            task, shard.task = shard.task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            shard.live = False
        for handle in self._lingering.values():
            handle.cancel()
        self._lingering.clear()
        self._deliver = None
        await self._close_publishers()

    def ready(self) -> bool:
        # One shard down is not the node's fault, and every node has it: taking all of them
        # out of the balancer would stop every user, not only that shard's.
        return any(shard.live for shard in self.shards)
