"""A small Redis protocol (RESP2) connection for the routed Redis buses.

Two uses, one class. A subscriber connection writes SUBSCRIBE / SSUBSCRIBE / UNSUBSCRIBE whenever
a user comes or goes, while its reader task keeps reading pushes. A publisher connection
pipelines: every caller writes its commands at once and waits for its own replies, which come
back in order, so many announcements share one round trip.

Why not redis-py (which the project already depends on), measured by `bench/resp_vs_redispy.py`
(bench/results/resp-vs-redispy-20261207T063933.json; medians of 3 alternating runs, process CPU,
on a loaded 2-core machine) against redis-py 8.2.0 as locked, i.e. parsing in Python:

- CPU per received message (50,000 of 180 bytes): 6.7 µs here against 18.6 µs for `PubSub.listen()`
  and 22.9 µs for a `get_message` loop on one Redis; on a cluster master 7.1 µs against 16.9 µs
  (a plain PubSub per master, `listen()`) and 25.5 µs (`ClusterPubSub.get_sharded_message`).
- 10,000 PUBLISH in one pipeline: 72 ms of CPU against 122 ms (redis-py pipeline); SPUBLISH over
  three masters 92 ms against 142 ms (a pipeline per master) and 227 ms (its cluster pipeline).
- A subscribe under 2,000 messages/s is confirmed in 0.2 ms here, 0.3 ms with a plain PubSub (it
  does not wait for its reads); `ClusterPubSub` holds a node's lock through each poll, so an
  SSUBSCRIBE waits 9 ms under that flow and 950 ms (the poll's timeout) when the node is idle.

With `hiredis` installed (resp-vs-redispy-hiredis-20261207T064040.json) redis-py's `listen()`
matches this reader (6.2–6.7 µs against 6.9 µs) and its pipelines cost 1.15–1.4× as much: the
case to revisit if the project takes on hiredis, with one plain PubSub per master, never
ClusterPubSub, and redis-py's own reconnect-and-resubscribe switched off (the bus must see each
lost connection to resync exactly its users).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import unquote, urlsplit

from tidings.settings import ConfigError

__all__ = ["Endpoint", "Reply", "RespConnection", "RespError"]

Reply: TypeAlias = "bytes | int | RespError | list[Reply] | None"

DEFAULT_PORT: Final = 6379


class RespError(Exception):
    """An error reply (`-ERR …`, `-MOVED …`)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one Redis is, and how to log in; `where` is for log lines (no credentials)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def where(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ConfigError(f"TIDINGS_BUS_URL: {url!r} names no host")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ConfigError(f"TIDINGS_BUS_URL: {url!r} has a bad port") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme.startswith("rediss"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def at(self, host: str, port: int) -> Endpoint:
        """The same login on another node (a Redis Cluster master)."""
        return Endpoint(host, port, self.tls, self.username, self.password)


def _command(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class RespConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._waiting: deque[asyncio.Future[Reply]] = deque()
        self._pump: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: float) -> RespConnection:  # noqa: ASYNC109
        context = ssl.create_default_context() if endpoint.tls else None
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                endpoint.host, endpoint.port, ssl=context, limit=1 << 20
            )
            conn = cls(reader, writer)
            try:
                if endpoint.password is not None:
                    login = [endpoint.password]
                    if endpoint.username is not None:
                        login.insert(0, endpoint.username)
                    conn.write(["AUTH", *login])
                    reply = await conn.read()
                    if isinstance(reply, RespError):
                        raise ConnectionError(f"{endpoint.where}: {reply}")
            except BaseException:
                conn.close()
                raise
        return conn

    def write(self, *commands: Sequence[str | bytes | int]) -> None:
        self._writer.write(b"".join(_command(c) for c in commands))

    async def read(self) -> Reply:
        """The next reply or push; ConnectionError when the connection ends."""
        line = await self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the Redis connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = await self._reader.readexactly(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [await self.read() for _ in range(count)]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        raise ConnectionError(f"unexpected Redis reply {line[:20]!r}")

    # -- the publisher side: pipelined calls ----------------------------------------------

    async def call(self, commands: Sequence[Sequence[str | bytes | int]]) -> list[Reply]:
        """Send `commands` in one write; their replies, in order (errors as RespError)."""
        if self._pump is None:
            self._pump = asyncio.create_task(self._read_replies(), name="tidings-redis-replies")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self._waiting.extend(futures)
        self.write(*commands)
        await self._writer.drain()
        # gather, not one await after another: a failure then also retrieves the others'.
        return list(await asyncio.gather(*futures))

    async def _read_replies(self) -> None:
        try:
            while True:
                reply = await self.read()
                if not self._waiting:
                    raise ConnectionError("a Redis reply nobody asked for")
                future = self._waiting.popleft()
                if not future.done():
                    future.set_result(reply)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        error = exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc) or repr(exc))
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
        self._writer.close()

    def closed(self) -> bool:
        return self._writer.is_closing() or (self._pump is not None and self._pump.done())

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self._fail(ConnectionError("closed"))

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()
        if self._pump is not None:
            with contextlib.suppress(BaseException):
                await self._pump
