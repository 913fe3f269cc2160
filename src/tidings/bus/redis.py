"""The Redis pub/sub bus: `TIDINGS_BUS_URL=redis://host:6379/0` (`rediss://` for TLS).

Every node subscribes to one channel (`tidings`, or `?channel=NAME` to let several deployments
share a Redis: pub/sub channels are not per database) and publishes its batches there. Redis keeps
no pub/sub backlog, which is fine: the store is the log, and after a reconnect every stream reads
what it missed from there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from tidings.bus.shared import (
    ANNOUNCE_TIMEOUT,
    CONNECT_TIMEOUT,
    KEEPALIVE,
    PING_TIMEOUT,
    TICK,
    SharedBus,
    split_channel,
)

__all__ = ["RedisBus"]

DEFAULT_CHANNEL: Final = "tidings"
# Redis takes far larger messages; batches this size keep one message cheap for every node.
REDIS_LIMIT: Final = 32 * 1024


class RedisBus(SharedBus):
    limit = REDIS_LIMIT

    def __init__(self, url: str) -> None:
        self._url, channel = split_channel(url, DEFAULT_CHANNEL)
        super().__init__(channel)
        parts = urlsplit(self._url)
        self._where = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        self._publisher: Redis | None = None

    def name(self) -> str:
        return f"{self._where} channel {self.channel!r}"

    def _client(self, retries: int) -> Redis:
        # The driver's own silent reconnects would hide an outage from us (and skip the resync).
        client: Redis = Redis.from_url(
            self._url,
            retry=Retry(NoBackoff(), retries),
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=ANNOUNCE_TIMEOUT + PING_TIMEOUT,
            socket_keepalive=True,
        )
        return client

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._client(retries=0)
        pubsub = client.pubsub()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await pubsub.subscribe(self.channel)
                while True:
                    confirm = await pubsub.get_message(timeout=CONNECT_TIMEOUT)
                    if confirm is not None and confirm["type"] == "subscribe":
                        break
            self._subscribed()
            last_seen = loop.time()
            ping_sent: float | None = None
            while True:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=TICK)
                now = loop.time()
                if message is not None:
                    last_seen, ping_sent = now, None
                    if message["type"] == "message":
                        self._received(message["data"])
                if ping_sent is not None and now - ping_sent > PING_TIMEOUT:
                    raise RedisConnectionError("no answer to a ping")
                if ping_sent is None and now - last_seen > KEEPALIVE:
                    async with asyncio.timeout(PING_TIMEOUT):
                        await pubsub.ping()
                    ping_sent = now
                await self._tick()
        finally:
            # The connection may be gone already; closing is best effort, each on its own, so a
            # failed pub/sub close still frees the client's pool (once per reconnect otherwise).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await pubsub.aclose()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.aclose()

    async def _publish(self, messages: Sequence[str]) -> None:
        if self._publisher is None:
            # One retry: a pooled connection may have died with a Redis restart.
            self._publisher = self._client(retries=1)
        if len(messages) == 1:
            await self._publisher.publish(self.channel, messages[0])
            return
        async with self._publisher.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(self.channel, message)
            await pipe.execute()

    async def _close_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await publisher.aclose()
