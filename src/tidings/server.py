"""The uvicorn server tidings runs: drains streams on SIGTERM and cuts off stuck connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import struct
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import uvicorn

from tidings import stalls
from tidings.logs import flush_counts

if TYPE_CHECKING:
    from tidings.service import Service
    from tidings.settings import Settings

__all__ = ["DrainingServer", "worker_server"]


class _SlowClientFilter(logging.Filter):
    """A stream cut off because its client stopped reading is expected, not an app error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


class _Transport(Protocol):
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...
    def get_extra_info(self, name: str) -> Any: ...


def _cut_off(transport: _Transport) -> None:
    """Reset the connection: its unsent data can never be delivered, so free it all at once.

    A plain close would leave the socket to the kernel, still holding megabytes of unsent data
    for minutes while it probes a receive window that stays shut.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# How long the streams get to write their drain `retry:` before the stuck ones are cut off.
DRAIN_GRACE_SECONDS = 1.5
# How long unsent data may stand still at shutdown before its connection counts as stuck.
STUCK_CHECK_SECONDS = 0.25
# uvicorn ticks ten times a second: look for connections stuck in closing every 2 s.
REAP_EVERY_TICKS = 20
# And collect young objects every stalls.TEND_EVERY seconds (see `stalls.tend`).
TEND_EVERY_TICKS = max(1, round(stalls.TEND_EVERY * 10))


class DrainingServer(uvicorn.Server):
    """Closes the streams (with a jittered retry) before uvicorn waits for connections to end.

    It also cuts off connections whose client stopped reading. Such a connection cannot end
    gracefully: closing a transport waits until its write buffer is flushed, which never happens,
    so it would keep its file descriptor and buffers for good, and stall a shutdown until
    uvicorn's graceful timeout. ASGI has no way to abort a connection; the server has.
    """

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service
        self._loop: asyncio.AbstractEventLoop | None = None
        # Closing connections with unsent data at the last look, and how much was unsent.
        self._closing: dict[_Transport, int] = {}

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        # Here, not at start-up: each worker process of `--workers N` sets up logging anew.
        logging.getLogger("uvicorn.error").addFilter(_SlowClientFilter())
        stalls.watch(self.service.settings.debug_stalls)
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            stalls.settle()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:
            # A signal handler may run in the middle of the loop's work: hand over, don't touch.
            self._loop.call_soon_threadsafe(self.service.hub.drain)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # uvicorn re-raises the signal once it has shut down, so the process would die of
            # SIGTERM (status -15), which a supervisor reads as a crash. A SIGTERM that reached
            # here was drained: exit normally (0).
            self._captured_signals[:] = [
                sig for sig in self._captured_signals if sig != signal.SIGTERM
            ]

    async def on_tick(self, counter: int) -> bool:
        if counter % REAP_EVERY_TICKS == 0:
            self._reap_stuck()
        if self.started and counter % TEND_EVERY_TICKS == 0:
            stalls.tend()
        return await super().on_tick(counter)

    def _reap_stuck(self, *, closing_only: bool = True) -> None:
        """Abort a connection whose unsent data did not shrink since the last look."""
        unsent = {
            t: t.get_write_buffer_size()
            for t in self._with_unsent_data()
            if t.is_closing() or not closing_only
        }
        for transport, size in unsent.items():
            if self._closing.get(transport) == size:
                _cut_off(transport)
        self._closing = {t: size for t, size in unsent.items() if self._closing.get(t) != size}

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting now; uvicorn's shutdown closes them again
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_GRACE_SECONDS):
                await self.service.hub.emptied()
        # A connection whose unsent data does not shrink now belongs to a client that stopped
        # reading: it would never take its end.
        self._closing = {}
        self._reap_stuck(closing_only=False)
        await asyncio.sleep(STUCK_CHECK_SECONDS)
        self._reap_stuck(closing_only=False)
        await super().shutdown(sockets)
        flush_counts()  # uvicorn re-raises the signal next: no logging.shutdown will run

    def _with_unsent_data(self) -> list[_Transport]:
        found: list[_Transport] = []
        for connection in list(self.server_state.connections):
            # asyncio's and uvloop's transports alike (uvloop's are no asyncio.WriteTransport).
            transport: _Transport | None = getattr(connection, "transport", None)
            if transport is not None and transport.get_write_buffer_size():
                found.append(transport)
        return found


def worker_server(settings: Settings, config: uvicorn.Config) -> DrainingServer:
    """The server of one `--workers` process, with the app (and service) it builds for itself."""
    from tidings.app import create_app

    app = create_app(settings)
    config.app = app
    config.factory = False
    return DrainingServer(config, app.service)
