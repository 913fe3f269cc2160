"""The ASGI application: the stream and publish as raw ASGI, everything else through FastAPI."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings import publish, stream
from tidings.channels import registry
from tidings.errors import method_not_allowed, send_error, too_large
from tidings.http import openapi
from tidings.http.handlers import add_error_handlers
from tidings.http.ops import operations_router
from tidings.http.publisher import publisher_router
from tidings.http.user import user_router
from tidings.routes import MethodTable, RawRoute, serve_raw
from tidings.service import Service, build_service
from tidings.settings import ConfigError, Settings
from tidings.snooze.routes import describe as describe_snooze
from tidings.snooze.routes import snooze_router
from tidings.store import StoreUnavailable
from tidings.validation import describe

__all__ = ["RAW_ROUTES", "TidingsApp", "create_app"]

# The routes that skip the framework (see tidings.routes): how to add one is documented there.
RAW_ROUTES: tuple[RawRoute, ...] = (stream.ROUTE, publish.ROUTE)


class TidingsApp:
    """The raw routes past the framework, everything else through it; one CORS and 405 path.

    `service` is here for the CLI and tests.
    """

    def __init__(
        self, service: Service, api: FastAPI, settings: Settings, routes: Sequence[BaseRoute]
    ) -> None:
        self.service = service
        self.api = api
        # Why start-up failed, when the cause is the operator's to fix (not a bug in tidings).
        self.startup_error: Exception | None = None
        self._raw = {(route.path, route.method): route for route in RAW_ROUTES}
        self._methods = MethodTable(RAW_ROUTES, routes)
        self._http: ASGIApp = self._route
        if settings.cors_origins:
            # Around both kinds of route: one CORS answer, preflights included.
            self._http = CORSMiddleware(
                self._route,
                allow_origins=list(settings.cors_origins),
                allow_credentials=True,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["authorization", "content-type", "last-event-id"],
                expose_headers=["link"],
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self.api(scope, receive, self._one_line_startup_failure(send))
            return
        await self.api(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        raw = self._raw.get((path, scope["method"]))
        if raw is not None:
            await serve_raw(raw, self.service, scope, receive, send)
            return
        # Here for every route, before the framework's router: it would answer a wrong method
        # on `/notifications/unread-count` as a DELETE of `/notifications/{seq}` (422).
        allowed = self._methods.allowed(path)
        if allowed is not None and scope["method"] not in allowed:
            await send_error(send, method_not_allowed(allowed))
            return
        await self.api(scope, receive, send)

    def _one_line_startup_failure(self, send: Send) -> Send:
        """A failed start-up comes with a traceback; a cause the operator can fix needs one line."""

        async def reporting(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.startup_error is not None:
                message = {**message, "message": f"tidings: {self.startup_error}"}
            await send(message)

        return reporting


class BodyLimit:
    """Refuse a request body over the limit with 413, before anything reads it whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await send_error(send, too_large(self.limit))
                return
        seen = 0
        refused = False

        async def limited() -> Message:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # Answer now: a framework reading the body may catch the exception below and
                # answer 400 on its own; `guarded` drops that answer.
                if not refused:
                    refused = True
                    await send_error(send, too_large(self.limit))
                raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited, guarded)


class _TooLarge(Exception):
    pass


class StaticModules(StaticFiles):
    """/static/: the browser side's ES modules (and the demo's files), revalidated on each load.

    The modules import each other (tidings.js imports client/*.js): a browser that kept some of
    them from an older release by heuristic caching (no Cache-Control: a tenth of their age)
    would run a mix of two versions. `no-cache` keeps them cached but asks each time; nothing
    changed is a 304 by ETag or Last-Modified.
    """

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "no-cache"
        return response


def create_app(settings: Settings, service: Service | None = None) -> TidingsApp:
    """The whole application; `service` wires it to given parts (the unit tests' fakes)."""
    if service is None:
        service = build_service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        started = False
        try:
            async with service.running():
                started = True
                yield
        except (StoreUnavailable, ConfigError, OSError) as exc:
            if not started:
                app.startup_error = exc
            raise

    api = FastAPI(
        title="tidings",
        version="0.1.0",
        summary="Real-time notifications for web applications, pushed over Server-Sent Events.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.service = service
    add_error_handlers(api)
    # The channels' routes first (Web Push's key and subscriptions; the email digest's user
    # address and unsubscribe link): their fixed paths must win over `/notifications/{seq}`.
    routers = [router for channel in registry.CHANNELS for router in channel.routers()]
    routers += [user_router, publisher_router, operations_router]
    routers.append(snooze_router)
    static = resources.files("tidings") / "web" / "static"
    api.mount("/static", StaticModules(directory=str(static)), name="static")
    if settings.demo:
        from tidings.demo import demo_router

        routers.append(demo_router)
    for router in routers:
        api.include_router(router)
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    channels = tuple(channel.describe for channel in registry.CHANNELS)
    openapi.install(api, settings, RAW_ROUTES, (describe, *channels, describe_snooze))
    # Every route with its methods: the app's own (docs, static files) and the routers' (FastAPI
    # lists an included router as one opaque entry of `api.routes`).
    routes = [*api.routes, *(route for router in routers for route in router.routes)]
    app = TidingsApp(service, api, settings, routes)
    return app
