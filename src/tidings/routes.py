"""The raw ASGI routes' way in: a registry of path, methods, endpoint and OpenAPI description.

Two routes skip the framework (see docs/architecture.md): the stream, which lives for hours, and
the publish, which a busy host app calls many times a second. Everything else a route needs they
share with the framework's routes, in `tidings.app`: the CORS middleware, the method check (405
with `Allow`, for every route in one place), the error answer (`tidings.errors`), and the
credential checks (`tidings.auth`, called by the endpoint as the framework's dependencies call
them).

To add a raw route: write `async def endpoint(service, scope, receive, send)`, which raises
`ApiError` (or `StoreUnavailable`) for a refusal *before* it starts its response (`serve_raw`
answers it), and add a `RawRoute` for it to `RAW_ROUTES` in `tidings.app`. Its OpenAPI entry is
built from the `RawRoute` (`tidings.http.openapi.raw_openapi`), with the same error schema as
every other route.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Message, Receive, Scope, Send

from tidings.errors import (
    ApiError,
    internal_error,
    send_error,
    store_unavailable,
)
from tidings.store import StoreUnavailable

if TYPE_CHECKING:
    from tidings.service import Service

__all__ = ["Endpoint", "MethodTable", "RawRoute", "serve_raw"]

log = logging.getLogger("tidings.api")

Endpoint = Callable[["Service", Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RawRoute:
    """One raw ASGI route, and what /openapi.json says about it."""

    path: str
    method: str
    endpoint: Endpoint
    tag: str
    summary: str
    description: str
    # status → (description, media type, schema or None); the error statuses get the error schema.
    answers: Mapping[int, tuple[str, str, dict[str, Any] | None]]
    errors: Sequence[int]
    # The security scheme the caller authenticates with: `userToken` or `publisherKey` (the
    # schemes of the credential dependencies in `tidings.http.deps`).
    security: str
    body: type[BaseModel] | None = None
    parameters: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


async def serve_raw(
    route: RawRoute, service: Service, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run a raw route with the framework's error path (see `tidings.http.handlers`)."""
    started = False

    async def watched(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    # The connection's own `send` under this wrapper: a stream writes frames to it directly
    # (tidings.stream, Subscriber.write) once its head is out.
    watched.inner = send  # type: ignore[attr-defined]
    try:
        await route.endpoint(service, scope, receive, watched)
    except Exception as exc:
        if started:
            raise  # too late to answer: uvicorn logs it and closes the connection
        if isinstance(exc, ApiError):
            await send_error(send, exc)
        elif isinstance(exc, StoreUnavailable):
            log.warning("store unavailable: %s", exc)
            await send_error(send, store_unavailable(exc))
        else:
            log.exception("unexpected error on %s %s", route.method, route.path)
            await send_error(send, internal_error())


class MethodTable:
    """The methods each path answers, for the framework's routes and the raw ones alike.

    A path with a route of its own (`/notifications/unread-count`) answers that route's methods
    only, even where a templated route (`/notifications/{seq}`) would match it too: a wrong
    method there is 405, not a 422 about `seq`.
    """

    def __init__(self, raw: Iterable[RawRoute], framework: Iterable[BaseRoute]) -> None:
        exact: dict[str, set[str]] = {}
        self._templated: list[tuple[re.Pattern[str], frozenset[str]]] = []
        for r in raw:
            exact.setdefault(r.path, set()).add(r.method)
        for route in framework:
            if isinstance(route, Mount):
                # The static files: StaticFiles reads with GET and HEAD only.
                self._templated.append((route.path_regex, frozenset({"GET", "HEAD"})))
            elif isinstance(route, Route):
                methods = route.methods or set()
                if route.param_convertors:
                    self._templated.append((route.path_regex, frozenset(methods)))
                else:
                    exact.setdefault(route.path, set()).update(methods)
        self._exact = {path: frozenset(methods) for path, methods in exact.items()}

    def allowed(self, path: str) -> frozenset[str] | None:
        """The methods `path` answers, or None for a path no route serves (a 404)."""
        exact = self._exact.get(path)
        if exact is not None:
            return exact
        found: set[str] = set()
        matched = False
        for pattern, methods in self._templated:
            if pattern.match(path):
                matched = True
                found |= methods
        return frozenset(found) if matched else None
