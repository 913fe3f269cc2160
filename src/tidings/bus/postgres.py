"""The PostgreSQL LISTEN/NOTIFY bus: `TIDINGS_BUS_URL=postgresql://user@host/db`.

For a deployment that already runs PostgreSQL as its store and wants no Redis. Every node holds one
connection that LISTENs on a channel (`tidings`, or `?channel=NAME`), and publishes with
`pg_notify` on one more. A NOTIFY payload stops at 8000 bytes; `wire.encode` packs batches below
that and leaves out a notification body that does not fit (the stream then reads the store).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

import asyncpg

from tidings.bus.shared import (
    CONNECT_TIMEOUT,
    KEEPALIVE,
    PING_TIMEOUT,
    TICK,
    SharedBus,
    split_channel,
)
from tidings.settings import ConfigError

__all__ = ["PostgresBus"]

DEFAULT_CHANNEL: Final = "tidings"
CHANNEL_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class BusConnectionLost(ConnectionError):
    pass


class PostgresBus(SharedBus):
    def __init__(self, url: str) -> None:
        self._url, channel = split_channel(url, DEFAULT_CHANNEL)
        if not CHANNEL_NAME.fullmatch(channel):
            raise ConfigError(
                f"TIDINGS_BUS_URL: channel {channel!r} must be lower-case letters, digits and _ "
                "(at most 63), starting with a letter or _"
            )
        super().__init__(channel)
        parts = urlsplit(self._url)
        self._where = f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"
        self._publisher: asyncpg.Connection | None = None
        self._publish_lock = asyncio.Lock()

    def name(self) -> str:
        return f"{self._where} channel {self.channel!r}"

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._url, timeout=CONNECT_TIMEOUT, command_timeout=PING_TIMEOUT
        )
        return conn

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        lost = asyncio.Event()
        conn: asyncpg.Connection | None = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                conn = await self._connect()
                conn.add_termination_listener(lambda _: lost.set())
                await conn.add_listener(self.channel, self._notified)
            self._subscribed()
            last_ping = loop.time()
            while True:
                try:
                    async with asyncio.timeout(TICK):
                        await lost.wait()
                except TimeoutError:
                    pass
                if lost.is_set() or conn.is_closed():
                    raise BusConnectionLost("the LISTEN connection closed")
                if loop.time() - last_ping > KEEPALIVE:
                    # An idle socket to a vanished server would otherwise look healthy for hours.
                    async with asyncio.timeout(PING_TIMEOUT):
                        await conn.execute("SELECT 1")
                    last_ping = loop.time()
                await self._tick()
        finally:
            if conn is not None:
                conn.terminate()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        if isinstance(payload, str):
            self._received(payload)

    async def _publish(self, messages: Sequence[str]) -> None:
        async with self._publish_lock:
            if self._publisher is None or self._publisher.is_closed():
                self._publisher = await self._connect()
            try:
                if len(messages) == 1:
                    await self._publisher.execute(
                        "SELECT pg_notify($1, $2)", self.channel, messages[0]
                    )
                else:
                    await self._publisher.executemany(
                        "SELECT pg_notify($1, $2)", [(self.channel, m) for m in messages]
                    )
            except BaseException:
                # Unknown state (cancelled mid-query, server gone): start with a fresh connection.
                publisher, self._publisher = self._publisher, None
                publisher.terminate()
                raise

    async def _close_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.terminate()
