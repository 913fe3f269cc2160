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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import unquote, urlsplit

from tidings.settings import ConfigError

__all__ = ["Endpoint", "Reply", "RespConnection", "RespError"]

Reply: TypeAlias = "bytes | int | RespError | list[Reply] | None"

DEFAULT_PORT: Final = 6379
# The most bytes one reply may take (a message is far smaller: tidings.bus.redis.REDIS_LIMIT).
MAX_REPLY: Final = 64 * 1024 * 1024


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


_REPLY_ON: Final = _command(["CLIENT", "REPLY", "ON"])
_REPLY_OFF: Final = _command(["CLIENT", "REPLY", "OFF"])


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def _parse(buf: bytes, pos: int) -> tuple[Reply, int]:
    """One reply starting at `pos`, and where the next one starts; _Incomplete if cut short."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $: a bulk string
        size = int(buf[pos + 1 : end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if len(buf) < stop + 2:
            raise _Incomplete
        return buf[end + 2 : stop], stop + 2
    if kind == 42:  # *: an array
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        items: list[Reply] = []
        pos = end + 2
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 58:  # :
        return int(buf[pos + 1 : end]), end + 2
    if kind == 43:  # +
        return buf[pos + 1 : end], end + 2
    if kind == 45:  # -
        return RespError(buf[pos + 1 : end].decode(errors="replace")), end + 2
    raise ConnectionError(f"unexpected Redis reply {buf[pos : pos + 20]!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self, conn: RespConnection) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the methods but not the asyncio base classes.
        self.conn._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.conn._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn._fail(ConnectionError(f"the Redis connection closed ({exc or 'EOF'})"))
        if not self.conn._gone.done():
            self.conn._gone.set_result(None)

    def pause_writing(self) -> None:
        self.conn._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        paused, self.conn._paused = self.conn._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)


class RespConnection:
    """Replies are parsed as the bytes arrive (`data_received`), each whole reply at once: a
    pushed message costs no await per line. With calls waiting (`call`), replies answer them
    in order; otherwise they queue for `read` (a subscriber's pushes, a login's answer)."""

    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._rest = b""
        # Who gets each reply, in order: a call's future, or None for a command sent without
        # waiting (`send`), whose reply is dropped unless it is an error (`on_error`).
        self._waiting: deque[asyncio.Future[Reply] | None] = deque()
        self._replies: deque[Reply] = deque()
        self._reader: asyncio.Future[None] | None = None
        self._error: ConnectionError | None = None
        self._paused: asyncio.Future[None] | None = None
        # Kept: asyncio.get_running_loop() is a getpid() system call on Python 3.11.
        self._loop = asyncio.get_running_loop()
        self._gone: asyncio.Future[None] = self._loop.create_future()
        # Calls made in one turn of the event loop, written together at its end (`call`).
        self._outgoing: list[bytes] = []
        # `send` with replies switched off (CLIENT REPLY OFF, `replies_off`): no reply to read.
        self._quiet = False
        # Called with an error reply to a command sent by `send`.
        self.on_error: Callable[[RespError], None] | None = None
        # A subscriber's pushes, handled as they are parsed (no task wakes per message); when
        # unset they queue for `read`. It may `fail` the connection; it must not raise.
        self.on_push: Callable[[Reply], None] | None = None

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: float) -> RespConnection:  # noqa: ASYNC109
        context = ssl.create_default_context() if endpoint.tls else None
        loop = asyncio.get_running_loop()
        conn = cls()
        async with asyncio.timeout(timeout):
            try:
                # Inside the `try`: cancelled just as the connection is made, the socket would
                # otherwise be left open with nobody to close it.
                await loop.create_connection(
                    lambda: _Protocol(conn), endpoint.host, endpoint.port, ssl=context
                )
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
        if self._error is not None:
            raise self._error
        assert self._transport is not None
        self._flush()  # what calls queued goes first: replies come in the order written
        self._transport.write(b"".join(_command(c) for c in commands))

    def _flush(self) -> None:
        if self._outgoing and self._error is None and self._transport is not None:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def _feed(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        pos = 0
        try:
            while pos < len(buf):
                try:
                    reply, pos = _parse(buf, pos)
                except _Incomplete:
                    break
                if self._waiting:
                    future = self._waiting.popleft()
                    if future is None:
                        if isinstance(reply, RespError) and self.on_error is not None:
                            self.on_error(reply)
                    elif not future.done():
                        future.set_result(reply)
                elif self.on_push is not None:
                    self.on_push(reply)
                    if self._error is not None:
                        return  # the handler ended the connection: nothing more to hand it
                else:
                    self._replies.append(reply)
        except (ValueError, ConnectionError) as exc:
            self._fail(ConnectionError(f"a malformed Redis reply ({exc})"))
            return
        self._rest = buf[pos:]
        if len(self._rest) > MAX_REPLY:
            self._fail(ConnectionError(f"a Redis reply larger than {MAX_REPLY} bytes"))
            return
        if self._replies and self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def read(self) -> Reply:
        """The next reply or push; ConnectionError when the connection ends."""
        while not self._replies:
            if self._error is not None:
                raise self._error
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        return self._replies.popleft()

    # -- the publisher side: pipelined calls ----------------------------------------------

    async def call(self, commands: Sequence[Sequence[str | bytes | int]]) -> list[Reply]:
        """Send `commands` in one write; their replies, in order (errors as RespError)."""
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        # One socket write for all the calls of this turn of the loop, not one each: the
        # publishes a group commit answers together announce together (a write to a socket is
        # tens of µs of system time on a small VM, the bytes hardly count).
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(b"".join(_command(c) for c in commands))
        self._waiting.extend(futures)
        if self._paused is not None:
            await asyncio.shield(self._paused)
        if len(futures) == 1:
            return [await futures[0]]
        # gather, not one await after another: a failure then also retrieves the others'.
        return list(await asyncio.gather(*futures))

    # -- the publisher side: sent without waiting --------------------------------------------

    async def replies_off(self) -> bool:
        """CLIENT REPLY OFF: the server answers nothing `send` sends, so the publisher reads
        nothing per publish (a read is a loop wake-up and tens of µs of system time here);
        `checkpoint` confirms what was sent. Not for a cluster: a MOVED would go unseen.

        Only on a fresh connection, before any call. False (and replies stay on) when the server
        refuses it (a proxy, a managed Redis without CLIENT REPLY)."""
        # OFF has no answer when it works; ON then answers +OK, and the PING +PONG. A refused
        # OFF answers an error first.
        self.write(["CLIENT", "REPLY", "OFF"], ["CLIENT", "REPLY", "ON"], ["PING"])
        refused = False
        while True:
            reply = await self.read()
            if isinstance(reply, RespError):
                refused = True
            elif reply == b"PONG":
                break
        if refused:
            return False
        self.write(["CLIENT", "REPLY", "OFF"])
        self._quiet = True
        return True

    def send(self, commands: Sequence[Sequence[str | bytes | int]]) -> None:
        """Queue `commands` for this turn's write and return: nothing waits for the replies.
        An error reply goes to `on_error`; a lost connection shows in `closed()`."""
        if self._error is not None:
            raise self._error
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(b"".join(_command(c) for c in commands))
        if not self._quiet:
            self._waiting.extend([None] * len(commands))

    async def checkpoint(self) -> None:
        """Return once the server has processed everything sent before (a PING's answer)."""
        if not self._quiet:
            await self.call([["PING"]])
            return
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        if not self._outgoing:
            loop.call_soon(self._flush)
        pong = loop.create_future()
        # Replies on for one PING, then off again, in the same write as what came before.
        self._outgoing.append(_REPLY_ON + _command(["PING"]) + _REPLY_OFF)
        self._waiting.extend([None, pong])
        await pong

    def writable(self) -> bool:
        """True when `send` can go at once: connected, and the socket's buffer not full."""
        return self._error is None and self._paused is None

    async def drained(self) -> None:
        """Return once the socket's buffer is below its high-water mark again (a big batch)."""
        if self._paused is not None:
            await asyncio.shield(self._paused)

    def _fail(self, exc: ConnectionError) -> None:
        if self._error is None:
            self._error = exc
        while self._waiting:
            future = self._waiting.popleft()
            if future is not None and not future.done():
                future.set_exception(self._error)
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)
        if self._transport is not None:
            self._transport.close()

    def fail(self, exc: ConnectionError) -> None:
        """End the connection with `exc`: every waiting call and `wait_closed` raise it."""
        self._fail(exc)

    async def wait_closed(self) -> None:
        """Return... never: raise the error the connection ended with, once it ends."""
        while self._error is None:
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        raise self._error

    def closed(self) -> bool:
        return self._error is not None or (
            self._transport is not None and self._transport.is_closing()
        )

    def close(self) -> None:
        self._fail(ConnectionError("closed"))

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await asyncio.shield(self._gone)
