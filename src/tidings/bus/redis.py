"""The Redis buses, routed per user (tidings.bus.routed).

- `redis://host:6379/0` (`rediss://` for TLS): one Redis.
- `redis://a:6379/0,redis://b:6379/0,…`: several standalone Redis, users spread over them by a
  stable hash of the user id (jump consistent hash, in the order listed: append an instance at the
  end and only about 1/N of the users move).
- `redis+cluster://host:7000,host:7001,…` (`rediss+cluster://`): a Redis Cluster (Redis 7) with
  sharded pub/sub, SSUBSCRIBE / SPUBLISH. Any masters serve as seeds; the node reads the slot map
  and holds one subscription connection per master.

Each user has a channel, `tidings:u:<user id>` (`tidings:u:{<user id>}` on a cluster, so the
user id is the hash tag and users spread over the 16384 slots, so evenly over the masters), and
node-wide events go on `tidings` (`{tidings}:n` on a cluster). `?channel=NAME` replaces the
`tidings` prefix, so several deployments can share one Redis: pub/sub channels are not per
database. Redis keeps no pub/sub backlog, which is fine: the store is the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import Sequence
from typing import Final

from redis.crc import key_slot

from tidings.bus.base import Deliver
from tidings.bus.resp import Endpoint, Reply, RespConnection, RespError
from tidings.bus.routed import RoutedBus, Shard
from tidings.bus.shared import (
    CONNECT_TIMEOUT,
    KEEPALIVE,
    PING_TIMEOUT,
    TICK,
    split_channel,
)
from tidings.events import Event
from tidings.settings import ConfigError

__all__ = ["RedisBus", "RedisClusterBus", "jump_hash", "parse_urls"]

log = logging.getLogger("tidings.bus")

DEFAULT_CHANNEL: Final = "tidings"
# Redis takes far larger messages; batches this size keep one message cheap for every node.
REDIS_LIMIT: Final = 32 * 1024
# Channels per SUBSCRIBE command when a shard (re)subscribes all its users.
SUBSCRIBE_CHUNK: Final = 1000
SLOTS: Final = 16384  # Redis Cluster's hash slots


def jump_hash(user_id: str, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash of the user id: stable across processes."""
    key = int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "big")
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def parse_urls(url: str) -> tuple[list[str], str]:
    """`(the comma-separated URLs, the channel prefix)`. An item after the first may be a bare
    `host:port`, taking the first one's scheme; `?channel=` may sit on any one of them."""
    urls: list[str] = []
    channels: set[str] = set()
    scheme = ""
    for part in url.split(","):
        part = part.strip()
        if not part:
            continue
        if "://" not in part:
            if not scheme:
                raise ConfigError(f"TIDINGS_BUS_URL: {part!r} is not a URL")
            part = f"{scheme}://{part}"
        scheme = scheme or part.split("://", 1)[0]
        bare, channel = split_channel(part, "")
        urls.append(bare)
        if channel:
            channels.add(channel)
    if not urls:
        raise ConfigError("TIDINGS_BUS_URL names no server")
    if len(channels) > 1:
        raise ConfigError(f"TIDINGS_BUS_URL: the URLs name different channels {sorted(channels)}")
    return urls, channels.pop() if channels else DEFAULT_CHANNEL


def _ignore_failure(task: asyncio.Task[RespConnection]) -> None:
    # A failure shows again, and is handled, in the announcement that needs the connection.
    if not task.cancelled():
        task.exception()


class RedisBus(RoutedBus):
    """One or several standalone Redis instances, users hashed over them."""

    limit = REDIS_LIMIT
    subscribe_cmd = "SUBSCRIBE"
    unsubscribe_cmd = "UNSUBSCRIBE"
    publish_cmd = "PUBLISH"
    # CLIENT REPLY OFF on the publishing connection: Redis answers no PUBLISH, the node reads
    # nothing per announcement (a PUBLISH to a standalone Redis is refused only when the
    # connection is gone, which the next write or the checkpoint sees).
    replies_off = True

    def __init__(self, url: str, linger: float) -> None:
        urls, self.prefix = parse_urls(url)
        self.endpoints = [Endpoint.parse(u) for u in urls]
        super().__init__([e.where for e in self.endpoints], linger)
        self._publishers: dict[int, RespConnection] = {}
        self._publisher_locks: dict[int, asyncio.Lock] = {}
        # The subscription connection of each connected shard.
        self._subscribers: dict[int, RespConnection] = {}

    def name(self) -> str:
        where = ",".join(s.where for s in self.shards)
        return f"{where} channel {self.prefix!r}"

    # -- channels ---------------------------------------------------------------------------

    def shard_of(self, user_id: str) -> int:
        count = len(self.shards)
        return 0 if count == 1 else jump_hash(user_id, count)

    def home_channel(self) -> str:
        return self.prefix

    def user_channel(self, user_id: str) -> str:
        return f"{self.prefix}:u:{user_id}"

    def user_of(self, channel: bytes) -> str | None:
        head = f"{self.prefix}:u:".encode()
        if not channel.startswith(head):
            return None
        return channel[len(head) :].decode(errors="replace")

    def endpoint(self, shard: Shard) -> Endpoint:
        return self.endpoints[shard.index]

    def _subscribe_commands(self, command: str, users: Sequence[str]) -> list[list[str]]:
        channels = [self.user_channel(u) for u in users]
        return [
            [command, *channels[i : i + SUBSCRIBE_CHUNK]]
            for i in range(0, len(channels), SUBSCRIBE_CHUNK)
        ]

    # -- the subscriber side ----------------------------------------------------------------

    async def _listen(self, shard: Shard) -> None:
        loop = asyncio.get_running_loop()
        conn = await RespConnection.open(self.endpoint(shard), CONNECT_TIMEOUT)
        shard_conn: dict[str, float | None] = {"seen": loop.time(), "ping": None}
        self._subscribers[shard.index] = conn
        ticker: asyncio.Task[None] | None = None
        warm: asyncio.Task[RespConnection] | None = None
        try:
            # Each push is handled as it is parsed, in the protocol's callback: no task wakes
            # per message on the receiving node (a loop wake-up is what costs here).
            conn.on_push = functools.partial(self._pushed, shard, conn, shard_conn)
            users = self._connected(shard)
            # Open the publishing connection now, not in the first announcement's time.
            warm = asyncio.create_task(self._publisher(shard))
            warm.add_done_callback(_ignore_failure)
            commands = self._subscribe_commands(self.subscribe_cmd, users)
            if shard.index == self.home_shard():
                commands.insert(0, [self.subscribe_cmd, self.home_channel()])
            if commands:
                conn.write(*commands)
            ticker = asyncio.create_task(self._keepalive(shard, conn, shard_conn))
            await conn.wait_closed()
        finally:
            self._subscribers.pop(shard.index, None)
            if ticker is not None:
                ticker.cancel()
            if warm is not None and not warm.done():
                # Still connecting when the bus closes: stopped and waited for, so that no
                # publishing connection is stored after `close` closed the others.
                warm.cancel()
                with contextlib.suppress(BaseException):
                    await warm
            await conn.aclose()

    def _pushed(
        self,
        shard: Shard,
        conn: RespConnection,
        state: dict[str, float | None],
        frame: Reply,
    ) -> None:
        state["seen"], state["ping"] = conn._loop.time(), None
        if isinstance(frame, RespError):
            # MOVED (the cluster changed), or a refused command: connect afresh.
            conn.fail(ConnectionError(str(frame)))
            return
        if not isinstance(frame, list) or len(frame) < 3:
            return
        kind = frame[0]
        if kind in (b"message", b"smessage"):
            data = frame[2]
            if isinstance(data, bytes):
                self._received(data)
        elif kind in (b"unsubscribe", b"sunsubscribe"):
            channel = frame[1]
            user_id = self.user_of(channel) if isinstance(channel, bytes) else None
            if user_id is not None:
                shard.leaving.discard(user_id)  # ours, confirmed: nothing more comes for them
            # Not ours (ours is for a user dropped, or resubscribing meanwhile): the cluster
            # moved the slot away. Reconnect, reading the slot map again.
            if kind == b"sunsubscribe" and user_id in shard.users and user_id not in shard.inflight:
                conn.fail(ConnectionError(f"the cluster moved the slot of {channel!r}"))
        elif kind in (b"subscribe", b"ssubscribe"):
            channel = frame[1]
            if channel == self.home_channel().encode():
                self._home_confirmed()
            elif isinstance(channel, bytes):
                user_id = self.user_of(channel)
                if user_id is not None:
                    self._confirmed(shard, user_id)

    async def _keepalive(
        self, shard: Shard, conn: RespConnection, state: dict[str, float | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK)
            now = loop.time()
            seen, ping = state["seen"], state["ping"]
            if ping is not None and now - ping > PING_TIMEOUT:
                # An idle socket to a vanished server would otherwise look healthy for hours.
                log.warning("bus %s: no answer to a ping", shard.where)
                conn.close()
                return
            if ping is None and seen is not None and now - seen > KEEPALIVE:
                conn.write(["PING"])
                state["ping"] = now
            await self._tick(shard)

    def _flush(self, shard: Shard) -> None:
        conn = self._subscribers.get(shard.index)
        if conn is None:
            return
        commands: list[list[str]] = []
        if shard.to_unsubscribe:
            commands += self._subscribe_commands(self.unsubscribe_cmd, list(shard.to_unsubscribe))
        if shard.to_subscribe:
            users = list(shard.to_subscribe)
            for user_id in users:
                self._sent_subscribe(shard, user_id)
            commands += self._subscribe_commands(self.subscribe_cmd, users)
        if commands:
            conn.write(*commands)

    # -- the publisher side -----------------------------------------------------------------

    async def _publisher(self, shard: Shard) -> RespConnection:
        conn = self._publishers.get(shard.index)
        if conn is not None and not conn.closed():
            return conn
        lock = self._publisher_locks.setdefault(shard.index, asyncio.Lock())
        async with lock:
            conn = self._publishers.get(shard.index)
            if conn is None or conn.closed():
                if conn is not None:
                    # What went out on it unconfirmed may never have reached Redis.
                    self._unconfirmed_lost(shard)
                conn = await RespConnection.open(self.endpoint(shard), CONNECT_TIMEOUT)
                conn.on_error = functools.partial(self._refused, shard)
                if self.replies_off:
                    try:
                        async with asyncio.timeout(CONNECT_TIMEOUT):
                            await conn.replies_off()
                    except BaseException:
                        conn.close()
                        raise
                self._publishers[shard.index] = conn
        return conn

    def _refused(self, shard: Shard, error: RespError) -> None:
        log.warning("bus %s: a publish was refused: %s", shard.where, error)
        self._unconfirmed_lost(shard)

    def _commands(self, messages: Sequence[tuple[str | None, str]]) -> list[list[str]]:
        return [
            [
                self.publish_cmd,
                self.home_channel() if user_id is None else self.user_channel(user_id),
                message,
            ]
            for user_id, message in messages
        ]

    def _publish_nowait(self, shard: Shard, messages: Sequence[tuple[str | None, str]]) -> bool:
        conn = self._publishers.get(shard.index)
        if conn is None or not conn.writable() or conn.closed():
            return False
        conn.send(self._commands(messages))
        return True

    async def _publish(self, shard: Shard, messages: Sequence[tuple[str | None, str]]) -> None:
        conn = await self._publisher(shard)
        conn.send(self._commands(messages))
        # A big batch (a broadcast) waits while the socket's buffer is full.
        await conn.drained()

    async def _confirm(self, shard: Shard) -> None:
        # The connection they went out on, not a fresh one: if it failed, they are owed.
        conn = self._publishers.get(shard.index)
        if conn is None or conn.closed():
            raise ConnectionError(f"bus {shard.where}: the publishing connection was lost")
        try:
            await conn.checkpoint()
        except BaseException:
            # No answer in time, or cancelled mid-way: start with a fresh connection.
            self._publishers.pop(shard.index, None)
            conn.close()
            raise

    async def _close_publishers(self) -> None:
        publishers, self._publishers = self._publishers, {}
        for conn in publishers.values():
            await conn.aclose()


class RedisClusterBus(RedisBus):
    """A Redis Cluster: sharded pub/sub, one subscription connection per master."""

    subscribe_cmd = "SSUBSCRIBE"
    unsubscribe_cmd = "SUNSUBSCRIBE"
    publish_cmd = "SPUBLISH"
    # Replies on: a MOVED (a slot that changed master) must be seen, and is (`_refused`).
    replies_off = False

    def __init__(self, url: str, linger: float) -> None:
        plain = ",".join(
            part.strip().replace("+cluster://", "://", 1) for part in url.split(",") if part
        )
        super().__init__(plain, linger)
        self.seeds = self.endpoints
        # Filled by `discover`: the masters, and which of them serves each slot.
        self.slot_shard: list[int] = []
        self.shards = []

    def name(self) -> str:
        seeds = ",".join(e.where for e in self.seeds)
        return f"redis cluster {seeds} channel {self.prefix!r}"

    def home_channel(self) -> str:
        return f"{{{self.prefix}}}:n"

    def user_channel(self, user_id: str) -> str:
        return f"{self.prefix}:u:{{{user_id}}}"

    def user_of(self, channel: bytes) -> str | None:
        head = f"{self.prefix}:u:{{".encode()
        if not channel.startswith(head) or not channel.endswith(b"}"):
            return None
        return channel[len(head) : -1].decode(errors="replace")

    def home_shard(self) -> int:
        return self.slot_shard[key_slot(self.home_channel().encode())] if self.slot_shard else 0

    def shard_of(self, user_id: str) -> int:
        return self.slot_shard[key_slot(self.user_channel(user_id).encode())]

    def _subscribe_commands(self, command: str, users: Sequence[str]) -> list[list[str]]:
        # Every channel of one SSUBSCRIBE must be in one slot: one command per user.
        return [[command, self.user_channel(u)] for u in users]

    async def _read_slots(self) -> tuple[list[Endpoint], list[int]]:
        """The masters and, per slot, which of them serves it, from the first seed (or known
        master) that answers CLUSTER SLOTS."""
        last: Exception | None = None
        for seed in [*self.seeds, *(e for e in self.endpoints if e not in self.seeds)]:
            try:
                conn = await RespConnection.open(seed, CONNECT_TIMEOUT)
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        (reply,) = await conn.call([["CLUSTER", "SLOTS"]])
                finally:
                    await conn.aclose()
            except (OSError, TimeoutError) as exc:
                last = exc
                continue
            if isinstance(reply, RespError) or not isinstance(reply, list):
                last = ConnectionError(f"{seed.where}: CLUSTER SLOTS: {reply!r}")
                continue
            masters: list[Endpoint] = []
            slot_shard = [-1] * SLOTS
            for entry in reply:
                assert isinstance(entry, list)
                start, end, master = entry[0], entry[1], entry[2]
                assert isinstance(start, int)
                assert isinstance(end, int)
                assert isinstance(master, list)
                host, port = master[0], master[1]
                assert isinstance(host, bytes)
                assert isinstance(port, int)
                endpoint = seed.at(host.decode() or seed.host, port)
                if endpoint not in masters:
                    masters.append(endpoint)
                index = masters.index(endpoint)
                for slot in range(start, end + 1):
                    slot_shard[slot] = index
            return masters, slot_shard
        raise ConnectionError(f"no Redis Cluster seed answered CLUSTER SLOTS: {last}")

    async def discover(self) -> None:
        """Read the slot map: one shard per master."""
        masters, slot_shard = await self._read_slots()
        self.endpoints = masters
        self.slot_shard = [max(0, i) for i in slot_shard]
        self.shards = [Shard(i, e.where) for i, e in enumerate(masters)]

    async def _refresh(self, shard: Shard) -> None:
        """Before reconnecting a shard that failed: the master of its slots may have changed
        (a replica promoted in a failover). The shard then connects to the new one."""
        masters, slot_shard = await self._read_slots()
        owners = {slot_shard[slot] for slot in range(SLOTS) if self.slot_shard[slot] == shard.index}
        owners.discard(-1)  # slots nobody serves right now (the master is down, no replica)
        if len(owners) == 1:
            moved = masters[owners.pop()]
            if moved != self.endpoints[shard.index]:
                log.warning("bus %s: its slots moved to %s", shard.where, moved.where)
                self.endpoints[shard.index] = moved
                publisher = self._publishers.pop(shard.index, None)
                if publisher is not None:
                    publisher.close()
                    self._unconfirmed_lost(shard)
        elif len(owners) > 1:
            # Resharding split this master's slots: routing them anew needs a restart.
            log.warning(
                "bus %s: its slots are now served by several masters; restart the nodes one by "
                "one to route by the new slot map",
                shard.where,
            )

    async def _listen(self, shard: Shard) -> None:
        if shard.outage_logged:
            with contextlib.suppress(Exception):
                await self._refresh(shard)
        await super()._listen(shard)

    async def start(self, deliver: Deliver) -> None:
        # The slot map first: without it no user can be routed. A cluster that does not answer
        # within the start-up wait fails the start, and the supervisor tries again.
        async with asyncio.timeout(CONNECT_TIMEOUT * 2):
            while True:
                try:
                    await self.discover()
                    break
                except ConnectionError:
                    await asyncio.sleep(0.2)
        await super().start(deliver)

    async def announce(self, events: Sequence[Event]) -> None:
        if not self.shards:
            with contextlib.suppress(ConnectionError):
                await self.discover()
            if not self.shards:
                raise ConnectionError("the Redis Cluster's slot map is unknown")
        await super().announce(events)
