"""tidings served by Granian instead of uvicorn.

    granian --interface asgi --factory tidings.granian_app:create

The app is the same ASGI application `tidings serve` runs; what uvicorn's server did around it
(`tidings.server.DrainingServer`) is done here from the ASGI lifespan, the only hook Granian
gives an application, once the service runs:

- the collector is settled, and tended every `stalls.TEND_EVERY` s;
- a handler for SIGTERM and SIGINT, beside Granian's, drains the streams (each closed with a
  jittered `retry:`), as on SIGTERM under `tidings serve`; the lifespan's shutdown drains
  whatever is still open before the service stops.

What uvicorn's internals bought (`heads.py`'s request-head guard, `answers.py`'s one-write
answer, a stream's frames written straight to its transport) is not there: under Granian each
frame is one ASGI `send`, the answer's head and body go out as Granian writes them, and Granian's
own `--http1-header-read-timeout` bounds a slow request head. Settings come from the
environment (TIDINGS_*), as for `tidings serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from tidings import stalls
from tidings.app import TidingsApp, create_app
from tidings.bus.factory import is_local
from tidings.logs import configure as configure_logs
from tidings.settings import ConfigError, Settings

__all__ = ["ServedApp", "create"]

# How long the streams get to write their drain `retry:` before the service stops.
DRAIN_GRACE_SECONDS = 1.5


class ServedApp:
    """`TidingsApp` with the server's start-up and shutdown work in its lifespan."""

    def __init__(self, app: TidingsApp) -> None:
        self.app = app
        self.service = app.service
        self._tending: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._on_shutdown(receive), self._on_started(send))

    def _on_started(self, send: Send) -> Send:
        async def started(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                stalls.watch(self.service.settings.debug_stalls)
                stalls.settle()
                loop = asyncio.get_running_loop()
                self._tending = loop.create_task(_tend())
                _drain_on_signals(loop, self.service.hub.drain)
            await send(message)

        return started

    def _on_shutdown(self, receive: Receive) -> Receive:
        async def received() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                if self._tending is not None:
                    self._tending.cancel()
                # Granian sends this once it stopped accepting; the open streams would keep
                # their connections (and the service) busy: close them first, as
                # `tidings serve` does on SIGTERM.
                self.service.hub.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_GRACE_SECONDS):
                        await self.service.hub.emptied()
            return message

        return received


def _drain_on_signals(loop: asyncio.AbstractEventLoop, drain: Callable[[], None]) -> None:
    """Close the streams on SIGTERM and SIGINT, beside Granian's own handling of them.

    Granian's worker stops on these signals through its loop's handler (`add_signal_handler`)
    and then waits for every connection to end before it sends the lifespan's shutdown: a
    stream never ends by itself, so without this a worker would wait for its
    `--workers-kill-timeout` and the clients would see a cut connection, not a `retry:`. A
    Python-level handler runs beside the loop's: the loop still learns of the signal through its
    wake-up file descriptor, which every handled signal writes to.
    """

    def chained(previous: Any) -> Callable[[int, Any], None]:
        def on_signal(signum: int, frame: Any) -> None:
            # A signal handler may run in the middle of the loop's work: hand over, don't
            # touch. A second signal while the worker tears down finds the loop closed.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(drain)
            # A loop without signal support has Granian install a Python-level handler of its
            # own (granian._signals): it must still run.
            if callable(previous):
                previous(signum, frame)

        return on_signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, chained(signal.getsignal(sig)))


async def _tend() -> None:
    while True:
        await asyncio.sleep(stalls.TEND_EVERY)
        stalls.tend()


def _granian_workers(argv: list[str], env: Mapping[str, str]) -> int:
    """How many workers the Granian command line (or GRANIAN_WORKERS) asks for; its workers
    are forked from it, so they see the same `sys.argv`."""
    found = env.get("GRANIAN_WORKERS", "1")
    for i, arg in enumerate(argv):
        if arg == "--workers" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--workers="):
            found = arg.partition("=")[2]
    return int(found) if found.isdigit() else 1


def create() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The app Granian serves (its `--factory` target): settings from the environment.

    A configuration error is one line on stderr and exit status 2, as from `tidings serve`.
    The refusal of several workers on the local bus reads Granian's command line and
    GRANIAN_WORKERS; an embedded `Granian(..., workers=N).serve()` is not seen.
    """
    try:
        settings = Settings.from_env(os.environ)
        if is_local(settings.bus_url) and _granian_workers(sys.argv, os.environ) > 1:
            # Each worker would bind the local bus's one socket, the last taking it from the
            # others: a publish on one worker would not reach the streams of another.
            raise ConfigError(
                "Granian's --workers needs a shared bus (TIDINGS_BUS_URL=redis://…, nats://… or "
                "postgresql://…); on the local bus run one Granian worker, or `tidings serve "
                "--workers N`"
            )
        configure_logs(settings)
        # Inside the `try`: the store's and the bus's factories refuse a URL they cannot serve.
        app = create_app(settings)
    except ConfigError as exc:
        print(f"tidings: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    return ServedApp(app)
