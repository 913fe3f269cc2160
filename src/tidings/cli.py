"""The `tidings` command: serve, send, token, bench."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from tidings.server import DrainingServer, worker_server
from tidings.settings import ConfigError, Settings
from tidings.store import IdempotencyConflict, StoreUnavailable
from tidings.validation import ApiError, PublishIn, make_draft

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
        # uvicorn's proxy-headers middleware wraps every request, for a client address and
        # scheme tidings never reads; it is on only when FORWARDED_ALLOW_IPS names the proxies.
        proxy_headers="FORWARDED_ALLOW_IPS" in os.environ,
    )
    if args.workers > 1:
        from tidings.workers import run_workers

        return run_workers(config, args.workers, functools.partial(worker_server, settings))
    server = DrainingServer(config, app.service)
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
