"""Bounded request heads: a head larger than `TIDINGS_MAX_HEAD_BYTES` is answered 431, a head not
complete within `TIDINGS_HEAD_TIMEOUT` seconds of its first byte (or of the connection) is closed.

uvicorn's httptools parser buffers a header line of any length (8 MB were answered 200), and
neither parser limits the time a client may take to send a head: a connection sending one byte a
minute, or none, stays open for good. These are uvicorn's own protocols with a guard added; the
server is configured with them by `bound_heads`, in one process and in every `--workers` worker
(the protocol is named by import path and the limits travel on the pickled config).

The guard works only while a head is being read: bytes are counted until the head is complete,
and the one timer per connection is re-armed only for the next head. A request costs a clock
read and two attribute writes; an idle stream, nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tidings.settings import Settings

__all__ = ["BoundedH11Protocol", "HeadLimits", "bound_heads"]

log = logging.getLogger("tidings.heads")

# After a 431 the client may still be sending its head: read and drop it for this long, so
# closing with unread data does not reset the connection before the client reads the answer.
LINGER_SECONDS = 1.0
# h11 keeps its own cap on an unparsed event; set it above ours by more than one read (asyncio
# and uvloop read at most 256 KiB at a time), so ours answers first, with 431 rather than 400.
H11_SLACK = 1024 * 1024
_ATTRIBUTE = "tidings_head_limits"


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_bytes: int
    timeout: float


def bound_heads(config: uvicorn.Config, settings: Settings) -> None:
    """Serve with the bounded protocol of the parser uvicorn would pick (httptools, else h11)."""
    try:
        import httptools  # noqa: F401  (only whether it is installed matters)
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        config.http = "tidings.heads:BoundedH11Protocol"
    else:
        config.http = "tidings.heads:BoundedHttpToolsProtocol"
    config.h11_max_incomplete_event_size = settings.max_head_bytes + H11_SLACK
    setattr(config, _ATTRIBUTE, HeadLimits(settings.max_head_bytes, settings.head_timeout))


def _limits(config: uvicorn.Config) -> HeadLimits:
    limits = getattr(config, _ATTRIBUTE, None)
    if isinstance(limits, HeadLimits):
        return limits
    defaults = Settings()
    return HeadLimits(defaults.max_head_bytes, defaults.head_timeout)


def _head_end(data: bytes) -> int:
    """Where the blank line that ends a head ends in `data`, or -1 (parsers accept bare LFs)."""
    ends = [i + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (i := data.find(mark)) >= 0]
    return min(ends, default=-1)


def _response_431(max_bytes: int) -> bytes:
    body = json.dumps(
        {
            "error": "headers_too_large",
            "detail": f"the request head is over {max_bytes} bytes (TIDINGS_MAX_HEAD_BYTES)",
        }
    ).encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (len(body), body)
    )


def _idle() -> bool:
    return False


class HeadGuard:
    """The size and time bound of the head being read on one connection."""

    __slots__ = (
        "_busy",
        "_loop",
        "_max",
        "_timeout",
        "_timer",
        "began",
        "refused",
        "size",
        "transport",
    )

    def __init__(
        self, limits: HeadLimits, loop: asyncio.AbstractEventLoop, busy: Callable[[], bool]
    ) -> None:
        self._max = limits.max_bytes
        self._timeout = limits.timeout
        self._loop = loop
        self._busy = busy  # True while an earlier response on the connection is being sent
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        # When the head being read began (None between heads), and its bytes so far.
        self.began: float | None = None
        self.size = 0
        self.refused = False

    def connected(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.begin()  # a client that connects and sends nothing has a head outstanding too

    def begin(self) -> None:
        if self.began is None:
            self.began = self._loop.time()
            self.size = 0
            if self._timer is None:
                self._timer = self._loop.call_later(self._timeout, self._check_time)

    def complete(self) -> None:
        self.began = None
        # Not left to fire idle: a stream holds its connection for hours, and a pending timer
        # per connection is memory every open stream pays. The next head arms a new one.
        self.lost()

    def admit(self, data: bytes) -> bool:
        """Before the parser sees `data`: False (and the head refused) when it makes the head
        too large. Only a read that crosses the limit is searched for the head's end."""
        if self.began is None or self.size + len(data) <= self._max:
            return True
        end = _head_end(data)
        if end >= 0 and self.size + end <= self._max:
            return True
        if self.transport is not None:
            self._refuse(self.transport)
        return False

    def count(self, size: int) -> None:
        """After the parser saw `size` bytes: they count while the head is still incomplete."""
        if self.began is not None:
            self.size += size

    def lost(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def closed(self) -> None:
        """The connection is gone: let go of it and of its protocol. The protocol holds this
        guard, and the guard held the protocol (`busy`) and its transport: a cycle per
        connection, ~24 objects freed only by a full collection (bench/growth-and-soak.md)."""
        self.lost()
        self.transport = None
        self._busy = _idle

    def _refuse(self, transport: asyncio.Transport) -> None:
        self.refused = True
        self.began = None
        if transport.is_closing():
            return
        log.warning("Refused a request head over %d bytes (TIDINGS_MAX_HEAD_BYTES)", self._max)
        if self._busy():
            transport.close()  # a pipelined head while a response is being written: no answer
            return
        transport.write(_response_431(self._max))
        self.lost()
        self._timer = self._loop.call_later(LINGER_SECONDS, transport.close)

    def _check_time(self) -> None:
        self._timer = None
        if self.began is None or self.transport is None or self.refused:
            return  # between heads: the next head arms the timer again
        left = self.began + self._timeout - self._loop.time()
        if left > 0:
            self._timer = self._loop.call_later(left, self._check_time)
            return
        self.began = None
        if not self.transport.is_closing():
            log.warning("Closed a connection whose request head took over %gs", self._timeout)
            self.transport.close()


class _Guarded(asyncio.Protocol):
    """What both protocols add around uvicorn's own: the guard, armed per connection.

    First in the bases, before uvicorn's protocol, so its calls go on to that one's. Its state
    lives in slots, not in the protocol's instance dict: two more keys there grew every
    connection's dict past a resize, about 2 KB per idle stream (bench/run idle)."""

    __slots__ = ("_head",)
    loop: asyncio.AbstractEventLoop
    cycle: Any

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        self._head = HeadGuard(_limits(config), self.loop, self._responding)

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head.connected(cast(asyncio.Transport, transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self._head.closed()
        super().connection_lost(exc)


class BoundedH11Protocol(_Guarded, H11Protocol):
    """uvicorn's h11 protocol with the head guard."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        # h11 stays IDLE until a whole head is parsed; after it, the request owns the bytes.
        if self._head.refused:
            return
        if self.conn.their_state is h11.IDLE:
            self._head.begin()
        if not self._head.admit(data):
            return
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._head.count(len(data))
        else:
            self._head.complete()


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

    from tidings.answers import OneWriteCycle
except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
    pass
else:
    __all__ += ["BoundedHttpToolsProtocol"]

    class BoundedHttpToolsProtocol(_Guarded, HttpToolsProtocol):
        """uvicorn's httptools protocol with the head guard."""

        __slots__ = ("_between",)

        def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self._between = False  # a request ended and no byte of the next one came yet

        def data_received(self, data: bytes) -> None:
            if self._head.refused:
                return
            if self._between:  # the first bytes after a request are the next head's
                self._between = False
                self._head.begin()
            if not self._head.admit(data):
                return
            super().data_received(data)
            self._head.count(len(data))

        # The parser's callbacks: a head begins at its first byte and ends with its headers.
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head.begin()

        def on_headers_complete(self) -> None:
            self._head.complete()
            super().on_headers_complete()
            if type(self.cycle) is RequestResponseCycle:
                # A complete answer in one write (tidings.answers): its task has not run yet.
                self.cycle.__class__ = OneWriteCycle

        def on_message_complete(self) -> None:
            self._between = True
            super().on_message_complete()
