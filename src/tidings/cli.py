"""The `tidings` command: serve, send, token, bench."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import uvicorn
from pydantic import ValidationError

from tidings.heads import bound_heads
from tidings.logs import configure as configure_logs
from tidings.logs import log_config
from tidings.server import DrainingServer, worker_server
from tidings.settings import ConfigError, Settings
from tidings.store import IdempotencyConflict, StoreUnavailable
from tidings.validation import ApiError, PublishIn, make_draft

if TYPE_CHECKING:
    from tidings.models import Draft, Stored
    from tidings.service import Service

__all__ = ["main"]

DESCRIPTION = """\
tidings: real-time notifications for web applications, pushed over Server-Sent Events.

Configuration comes from TIDINGS_* environment variables (see docs/configuration.md);
TIDINGS_SECRET and TIDINGS_PUBLISHER_KEYS are required except with `serve --demo`.
"""


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
    serve.add_argument("--port", type=_port, default=8000, help="port to bind (default 8000)")
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
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="uvicorn's log level (default: TIDINGS_LOG_LEVEL, info)",
    )

    send = sub.add_parser(
        "send",
        help="publish a notification through the configured store and bus",
        description="Store a notification for USER_ID and announce it to the running server(s).\n"
        "It writes to the server's database (TIDINGS_DATABASE_URL): a SQLite file that does not\n"
        "exist yet is refused, not created.",
        formatter_class=argparse.RawTextHelpFormatter,
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
        "vapid-keys",
        help="print a new VAPID key pair for Web Push",
        description="Print a new VAPID key pair (P-256) for Web Push: a\n"
        "TIDINGS_VAPID_PRIVATE_KEY=… line to put in the environment, and the public key as\n"
        "a comment (the server also serves it at GET /notifications/push/key).\n"
        "Needs the push extra: tidings[push].",
        formatter_class=argparse.RawTextHelpFormatter,
    )
    sub.add_parser(
        "bench",
        help="run the benchmark harness: bench/run [--quick] [SCENARIO…] (docs/benchmarks.md)",
        add_help=False,
    )
    return parser


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        # uvicorn would take 0 as "any free port" and wrap larger numbers silently.
        raise argparse.ArgumentTypeError(f"{port} is not a port between 1 and 65535")
    return port


def _bench(argv: list[str]) -> int:
    # The harness (bench/) ships with the repository, not in the package: an editable install
    # finds it next to src/, any install finds it in a checkout it is run from.
    from pathlib import Path
    from subprocess import call

    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        script = root / "bench" / "run"
        if script.is_file():
            return call([str(script), *argv])
    print(
        "tidings: `tidings bench` needs a repository checkout (it runs bench/run there); "
        "run it from the checkout's root",
        file=sys.stderr,
    )
    return 2


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
            return _send(args)
        if args.command == "token":
            return _token(args)
        if args.command == "vapid-keys":
            return _vapid_keys()
    except (ConfigError, StoreUnavailable, IdempotencyConflict) as exc:
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
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.workers > 1 and settings.database_url.startswith("memory:"):
        # Each worker would keep a store of its own: a user's streams would miss publishes.
        raise ConfigError(
            "--workers needs a database the workers share; memory:// is one process's"
        )
    if not settings.publisher_keys:
        raise ConfigError(
            "TIDINGS_PUBLISHER_KEYS is required (comma-separated publisher keys; "
            "TIDINGS_PUBLISHER_KEY, singular, is the app's copy and is not read by the server)"
        )
    _check_push_extra(settings)
    # Before any banner or key is printed: a busy port is one line, not a log after the keys.
    _check_bind(args.host, args.port)
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
        log_level=args.log_level or settings.log_level,
        log_config=log_config(settings),
        lifespan="on",
        timeout_graceful_shutdown=5,
        access_log=False,
        # uvicorn's 2048 overflowed in a reconnect storm of 10,000 streams (~25,000 dropped
        # handshakes, 0 with 4096): each drop costs its client TCP's backoff, seconds. The
        # kernel caps it at net.core.somaxconn.
        backlog=settings.backlog,
        # uvicorn's proxy-headers middleware wraps every request, for a client address and
        # scheme tidings never reads; it is on only when FORWARDED_ALLOW_IPS names the proxies.
        proxy_headers="FORWARDED_ALLOW_IPS" in os.environ,
    )
    bound_heads(config, settings)
    if args.workers > 1:
        from tidings.workers import run_workers

        return run_workers(config, args.workers, functools.partial(worker_server, settings))
    server = DrainingServer(config, app.service)
    server.run()
    return 0 if server.started else 1


def _check_bind(host: str, port: int) -> None:
    """Bind and release the address as uvicorn will (SO_REUSEADDR), to fail before starting."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            hint = "; stop what listens there or choose another --port"
            raise ConfigError(f"{host}:{port}: {reason}{hint}") from None


def _send(args: argparse.Namespace) -> int:
    from tidings.bus.local import LocalBus
    from tidings.service import build_service
    from tidings.store.factory import sqlite_path

    # Publishing signs nothing: TIDINGS_SECRET may be absent (a configured one is still checked).
    settings = Settings.from_env(os.environ, require_secret=False)
    configure_logs(settings)
    try:
        data = json.loads(args.data) if args.data else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--data is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("--data must be a JSON object")
    try:
        body = PublishIn(
            user_id=args.user_id,
            message=args.message,
            link=args.link,
            kind=args.kind,
            data=data,
            idempotency_key=args.idempotency_key,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]).replace("_", "-")
        raise ConfigError(f"--{field}: {problem['msg']}") from None
    draft = make_draft(body, settings)
    database: str | None = None
    if settings.database_url.startswith("sqlite:"):
        database = os.path.abspath(sqlite_path(settings.database_url))
    if database is not None and not os.path.exists(database):
        # The classic mistake: `send` from another folder would create an empty database there,
        # print success, and no server would ever see it.
        raise ConfigError(
            f"no database at {database} and no running server uses it; run `tidings send` "
            "with the server's TIDINGS_DATABASE_URL (sqlite:///relative paths start in the "
            "working directory)"
        )
    service = build_service(settings)
    # Only the local bus can tell whether a server is there (its socket); a shared bus reaches
    # whoever subscribes, and is checked by the server's /readyz instead.
    served: bool | None = None
    if isinstance(service.bus, LocalBus):
        served = service.bus.listening()
    stored = asyncio.run(_publish(service, draft, args.idempotency_key))
    for n in stored.notifications:
        print(n.dumps())
    if served is False:
        where = database or _redacted(settings.database_url)
        print(
            f"tidings: stored in {where}; no running server uses it, so no open stream saw "
            "it live (it is listed, and streamed on reconnect, once a server serves it)",
            file=sys.stderr,
        )
    return 0


async def _publish(service: Service, draft: Draft, idempotency_key: str | None) -> Stored:
    async with service.publishing():
        return await service.publish(draft, idempotency_key)


def _redacted(url: str) -> str:
    """The database URL without its password, to name it in a message."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


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


# --- Web Push (issue 11) -----------------------------------------------------------------------


def _check_push_extra(settings: Settings) -> None:
    from tidings.channels.push import missing_extra

    if settings.push_enabled and (missing := missing_extra()) is not None:
        raise ConfigError(
            f"TIDINGS_VAPID_PRIVATE_KEY is set but Web Push needs the push extra ({missing} is "
            "not installed): pip install 'tidings[push]'"
        )


def _vapid_keys() -> int:
    from tidings.channels.push import missing_extra

    if (missing := missing_extra()) is not None:
        raise ConfigError(
            f"vapid-keys needs the push extra ({missing} is not installed): "
            "pip install 'tidings[push]'"
        )
    from tidings.channels.push.keys import new_key_pair

    private, public = new_key_pair()
    print(f"# public key (applicationServerKey): {public}")
    print(f"TIDINGS_VAPID_PRIVATE_KEY={private}")
    return 0
