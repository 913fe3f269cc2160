"""The ASGI application: the stream and publish as raw ASGI, everything else through FastAPI."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.api import add_error_handlers, operations_router, publisher_router, user_router
from tidings.publish import PUBLISH_PATH, openapi_path, publish_endpoint
from tidings.service import Service
from tidings.settings import ConfigError, Settings
from tidings.store import StoreUnavailable
from tidings.stream import stream_endpoint

__all__ = ["TidingsApp", "create_app"]

STREAM_PATH = "/notifications/stream"


class TidingsApp:
    """Routes the stream past the framework; exposes the `service` for the CLI and tests."""

    def __init__(self, service: Service, api: FastAPI) -> None:
        self.service = service
        self.api = api
        # Why start-up failed, when the cause is the operator's to fix (not a bug in tidings).
        self.startup_error: Exception | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # The two hot routes skip the framework: the stream lives for hours, and a busy
            # host app publishes many times a second.
            if scope["path"] == STREAM_PATH:
                await stream_endpoint(self.service, scope, receive, send)
                return
            if scope["path"] == PUBLISH_PATH:
                await publish_endpoint(self.service, scope, receive, send)
                return
        if scope["type"] == "lifespan":
            await self.api(scope, receive, self._one_line_startup_failure(send))
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
                await _too_large(send, self.limit)
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
                    await _too_large(send, self.limit)
                raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited, guarded)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"error": "too_large", "detail": f"the body exceeds {limit} bytes (TIDINGS_MAX_BODY_BYTES)"}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings) -> TidingsApp:
    service = Service(settings)

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
    api.include_router(user_router)
    api.include_router(publisher_router)
    api.include_router(operations_router)
    static = resources.files("tidings") / "web" / "static"
    api.mount("/static", StaticFiles(directory=str(static)), name="static")
    if settings.demo:
        from tidings.demo import demo_router

        api.include_router(demo_router)
    if settings.cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "last-event-id"],
            expose_headers=["link"],
        )
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    _document_raw_routes(api)
    app = TidingsApp(service, api)
    return app


def _document_raw_routes(api: FastAPI) -> None:
    """Stream and publish bypass FastAPI's router; describe them in /openapi.json all the same."""
    original = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is not None:
            return api.openapi_schema
        schema = original()
        schema["paths"][STREAM_PATH] = {
            "get": {
                "tags": ["user"],
                "summary": "SSE stream of the caller's notifications",
                "description": (
                    "Server-Sent Events: `retry:`, then `new-notification` events (id = seq), "
                    "`notifications-read`, `notification-deleted`, `reset`, and a `ping` every "
                    "heartbeat. Resume with the `Last-Event-ID` header or `last_event_id` query."
                ),
                "parameters": [
                    {"name": "last_event_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "the stream", "content": {"text/event-stream": {}}},
                    "401": {"description": "no valid user credential"},
                    "429": {"description": "too many streams for this user"},
                },
            }
        }
        components = schema.setdefault("components", {})
        schema["paths"][PUBLISH_PATH] = openapi_path(components.setdefault("schemas", {}))
        components.setdefault("securitySchemes", {})["publisherKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "one of TIDINGS_PUBLISHER_KEYS",
        }
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]
