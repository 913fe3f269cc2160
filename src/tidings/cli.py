"""The `tidings` command: serve, send, token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import struct
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import uvicorn

from tidings.bus.factory import is_single_process
from tidings.settings import ConfigError, Settings
from tidings.store import StoreUnavailable
from tidings.validation import ApiError, PublishIn, make_draft

if TYPE_CHECKING:
    from tidings.service import Service

__all__ = ["main"]

DESCRIPTION = """\
tidings: real-time notifications for web applications, pushed over Server-Sent Events.

Configuration comes from TIDINGS_* environment variables (see docs/configuration.md);
TIDINGS_SECRET and TIDINGS_PUBLISHER_KEYS are required except with `serve --demo`.
"""


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


class _DrainingServer(uvicorn.Server):
    """Closes the streams (with a jittered retry) before uvicorn waits for connections to end.

    It also cuts off connections whose client stopped reading. Such a connection cannot end
    gracefully: closing a transport waits until its write buffer is flushed, which never happens,
    so it would keep its file descriptor and buffers for good, and stall a shutdown until
    uvicorn's graceful timeout. ASGI has no way to abort a connection; the server has.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Closing connections with unsent data at the last look, and how much was unsent.
        self._closing: dict[_Transport, int] = {}

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        # Here, not at start-up: each worker process of `--workers N` sets up logging anew.
        logging.getLogger("uvicorn.error").addFilter(_SlowClientFilter())
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        service = self._service()
        if service is not None and self._loop is not None:
            # A signal handler may run in the middle of the loop's work: hand over, don't touch.
            self._loop.call_soon_threadsafe(service.hub.drain)

    def _service(self) -> Service | None:
        # uvicorn wraps the app in its own middleware (proxy headers): find ours inside.
        app = self.config.loaded_app
        while app is not None and not hasattr(app, "service"):
            app = getattr(app, "app", None)
        service: Service | None = getattr(app, "service", None)
        return service

    async def on_tick(self, counter: int) -> bool:
        if counter % REAP_EVERY_TICKS == 0:
            self._reap_stuck()
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
        service = self._service()
        if service is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_GRACE_SECONDS):
                    await service.hub.emptied()
        # A connection whose unsent data does not shrink now belongs to a client that stopped
        # reading: it would never take its end.
        self._closing = {}
        self._reap_stuck(closing_only=False)
        await asyncio.sleep(STUCK_CHECK_SECONDS)
        self._reap_stuck(closing_only=False)
        await super().shutdown(sockets)

    def _with_unsent_data(self) -> list[_Transport]:
        found: list[_Transport] = []
        for connection in list(self.server_state.connections):
            # asyncio's and uvloop's transports alike (uvloop's are no asyncio.WriteTransport).
            transport: _Transport | None = getattr(connection, "transport", None)
            if transport is not None and transport.get_write_buffer_size():
                found.append(transport)
        return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidings", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the server",
        description="Run the tidings server: the API, the SSE stream and (--demo) a demo page.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); more than one needs a shared bus (TIDINGS_BUS_URL)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="add a demo page at / with demo users; generates a secret and a publisher key "
        "when none are set",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    send = sub.add_parser(
        "send",
        help="publish a notification through the configured store and bus",
        description="Store a notification for USER_ID and announce it to the running server(s).",
    )
    send.add_argument("user_id", metavar="USER_ID")
    send.add_argument("message", metavar="MESSAGE")
    send.add_argument("--link", help="http(s) URL or /path the notification points to")
    send.add_argument("--kind", help="a category the client may use, e.g. 'order.shipped'")
    send.add_argument("--data", help="a JSON object of extra fields")
    send.add_argument("--idempotency-key", help="a repeated key stores nothing new")

    token = sub.add_parser(
        "token",
        help="print a user token",
        description="Print a user token (HS256 JWT signed with TIDINGS_SECRET) for USER_ID.",
    )
    token.add_argument("user_id", metavar="USER_ID")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    sub.add_parser(
        "bench",
        help="run the benchmark harness: bench/run [--quick] [SCENARIO…] (docs/benchmarks.md)",
        add_help=False,
    )
    return parser


def _bench(argv: list[str]) -> int:
    # The harness lives in the repository checkout (bench/), not in the installed package.
    from pathlib import Path
    from subprocess import call

    script = Path(__file__).resolve().parents[2] / "bench" / "run"
    if not script.is_file():
        print("tidings: bench/run not found; run it from a repository checkout", file=sys.stderr)
        return 2
    return call([str(script), *argv])


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["bench"]:
        # Passed through untouched: bench/run parses its own options.
        return _bench(raw[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "send":
            return asyncio.run(_send(args))
        if args.command == "token":
            return _token(args)
    except (ConfigError, StoreUnavailable) as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        detail = exc.detail
        if isinstance(detail, dict):
            detail = f"{detail.get('field')}: {detail.get('problem')}"
        print(f"tidings: {detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def _serve(args: argparse.Namespace) -> int:
    from tidings.app import create_app

    settings = Settings.from_env(os.environ, demo=args.demo)
    if args.workers > 1 and is_single_process(settings.bus_url):
        raise ConfigError(
            f"--workers {args.workers} needs a bus every worker shares: set TIDINGS_BUS_URL to "
            "redis://host:6379/0 or postgresql://… (the local:// bus reaches one process)"
        )
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if not settings.publisher_keys:
        raise ConfigError("TIDINGS_PUBLISHER_KEYS is required (comma-separated publisher keys)")
    # Built here also with --workers, where each worker builds its own: a bad URL fails now.
    app = create_app(settings)
    if args.demo:
        print(
            f"tidings demo: open http://{args.host}:{args.port}/\n"
            f"  publisher key: {settings.publisher_keys[0]}\n"
            f"  TIDINGS_SECRET={settings.secret}   (export it to use `tidings token`)",
            flush=True,
        )
    config = uvicorn.Config(
        # With workers, a factory: each worker process builds its own app and bus subscription.
        app if args.workers == 1 else functools.partial(create_app, settings),
        factory=args.workers > 1,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        timeout_graceful_shutdown=5,
        access_log=False,
    )
    if args.workers > 1:
        from tidings.workers import run_workers

        return run_workers(config, args.workers, _DrainingServer)
    server = _DrainingServer(config)
    server.run()
    return 0 if server.started else 1


async def _send(args: argparse.Namespace) -> int:
    from tidings.service import Service

    # Publishing needs no signing secret; give a placeholder so the settings validate.
    environ = {"TIDINGS_SECRET": "x" * 32, **os.environ}
    settings = Settings.from_env(environ)
    try:
        data = json.loads(args.data) if args.data else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--data is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("--data must be a JSON object")
    body = PublishIn(
        user_id=args.user_id,
        message=args.message,
        link=args.link,
        kind=args.kind,
        data=data,
        idempotency_key=args.idempotency_key,
    )
    draft = make_draft(body, settings)
    async with Service(settings).publishing() as service:
        stored = await service.publish(draft, args.idempotency_key)
    for n in stored.notifications:
        print(n.dumps())
    return 0


def _token(args: argparse.Namespace) -> int:
    from tidings.auth import mint_token
    from tidings.validation import check_user_id

    settings = Settings.from_env(os.environ)
    try:
        user_id = check_user_id(args.user_id)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not 0 < args.ttl <= settings.max_token_ttl:
        raise ConfigError(f"--ttl must be between 1 and {settings.max_token_ttl} seconds")
    token, _ = mint_token(settings.secret, user_id, args.ttl)
    print(token)
    return 0
