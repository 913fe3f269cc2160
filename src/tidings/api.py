"""The HTTP API: user routes, publisher routes, operations, and the JSON error shape."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings.auth import (
    COOKIE_NAME,
    UserCredential,
    check_origin,
    check_publisher,
    decode_token,
    mint_token,
    read_user,
)
from tidings.channels import NAMES as CHANNEL_NAMES
from tidings.channels.preferences import ChannelsIn, ChannelsOut
from tidings.errors import (
    ERROR_SCHEMA,
    ApiError,
    error_response,
    error_responses,
    internal_error,
    invalid_json,
    is_json_media,
    store_unavailable,
    unsupported_media_type,
)
from tidings.models import Preferences
from tidings.service import Service
from tidings.store import StoreUnavailable
from tidings.validation import WholeNumber, check_muted, check_user_id, exactly_one, whole

__all__ = [
    "add_error_handlers",
    "document",
    "operations_router",
    "publisher_router",
    "user_router",
]

log = logging.getLogger("tidings.api")

READY_TIMEOUT = 2.0
MAX_PAGE = 100
# Seqs are 64-bit integers in every store; a larger number is a client error, not a crash.
MAX_SEQ = 2**63 - 1

Seq = Annotated[int, Field(strict=True, ge=-MAX_SEQ, le=MAX_SEQ), BeforeValidator(whole)]


# Dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
# thread hop per request that cost more than the whole publish.


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def service_of(request: Request) -> Service:
    return _service(request)


ServiceDep = Annotated[Service, Depends(service_of)]


# For /openapi.json only: they put the security schemes on the routes. The checks below read
# the header themselves (and the cookie); these never refuse anything.
user_token = HTTPBearer(
    scheme_name="userToken",
    description="a user token (or the tidings_session cookie)",
    auto_error=False,
)
publisher_key = HTTPBearer(
    scheme_name="publisherKey", description="one of TIDINGS_PUBLISHER_KEYS", auto_error=False
)
UserTokenDoc = Annotated[HTTPAuthorizationCredentials | None, Security(user_token)]
PublisherKeyDoc = Annotated[HTTPAuthorizationCredentials | None, Security(publisher_key)]


async def current_user(request: Request, _: UserTokenDoc) -> UserCredential:
    return read_user(request, _service(request).settings)


UserDep = Annotated[UserCredential, Depends(current_user)]


async def changing_user(request: Request, _: UserTokenDoc) -> UserCredential:
    return _changing_user(request)


def _changing_user(request: Request) -> UserCredential:
    """A user for a state-changing route: with the cookie, only from an allowed origin."""
    service = _service(request)
    user = read_user(request, service.settings)
    if user.via_cookie:
        check_origin(request, service.settings)
        # A cross-site form can post urlencoded or multipart, but JSON only after a preflight.
        if request.method == "POST" and not is_json_media(request.headers.get("content-type", "")):
            raise unsupported_media_type()
    return user


ChangingUserDep = Annotated[UserCredential, Depends(changing_user)]


async def publisher(request: Request, _: PublisherKeyDoc) -> None:
    check_publisher(request, _service(request).settings)


# --- user routes -------------------------------------------------------------------------------

user_router = APIRouter(tags=["user"])


class ActorOut(BaseModel):
    name: str
    avatar_url: str | None


class ActionOut(BaseModel):
    label: str
    url: str


class NotificationOut(BaseModel):
    id: int
    user_id: str
    message: str
    link: str | None
    kind: str | None
    data: dict[str, Any]
    category: str | None
    actor: ActorOut | None
    actions: list[ActionOut]
    group: str | None
    created_at: str
    expires_at: str | None
    read_at: str | None
    seen_at: str | None
    archived_at: str | None
    snoozed_until: str | None = Field(
        default=None, description="set while snoozed: hidden until then (design v3)"
    )
    group_count: int | None = Field(
        default=None,
        description="with grouped=1: how many unread notifications this row stands for",
    )


class CategoryCountOut(BaseModel):
    unread: int
    unseen: int


class UnreadOut(BaseModel):
    unread: int
    unseen: int
    last_seq: int
    categories: dict[str, CategoryCountOut]


class SeenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    up_to: Seq


class SeenOut(BaseModel):
    up_to: int
    unseen: int


class ArchiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Seq] = Field(max_length=10_000)


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    muted_categories: list[StrictStr] = Field(default_factory=list)
    channels: ChannelsIn = Field(default_factory=ChannelsIn)


class PreferencesOut(BaseModel):
    muted_categories: list[str]
    channels: ChannelsOut


class ArchiveOut(BaseModel):
    ids: list[int]
    unread: int
    unseen: int


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one("ids", "up_to"))
    ids: list[Seq] | None = Field(default=None, max_length=10_000)
    up_to: Seq | None = None


class ReadOut(BaseModel):
    unread: int
    ids: list[int] | None = None
    up_to: int | None = None


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: StrictStr


class SessionOut(BaseModel):
    user_id: str
    expires_at: int


@user_router.get(
    "/notifications",
    response_model=list[NotificationOut],
    responses=error_responses((401, 422, 503)),
)
async def list_notifications(
    request: Request,
    user: UserDep,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
    before: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
    unread: Annotated[bool, Query()] = False,
    category: Annotated[
        str | None, Query(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")
    ] = None,
    archived: Annotated[bool, Query()] = False,
    grouped: Annotated[bool, Query()] = False,
    snoozed: Annotated[bool, Query()] = False,
) -> Response:
    """The caller's notifications, newest first; `Link: rel="next"` when there are more.

    Archived ones only with `archived=1`, and then only those; `category` keeps one tab;
    `grouped=1` folds unread notifications sharing a `group` into the newest (`group_count`).
    Snoozed ones only with `snoozed=1`, and then only those (never folded).
    """
    items: list[dict[str, Any]]
    if grouped and not snoozed:
        rows, next_before = await service.grouped_page(
            user.user_id,
            limit=limit,
            before=before,
            unread_only=unread,
            category=category,
            archived=archived,
        )
        items = [{**n.to_json(), "group_count": count} for n, count in rows]
    else:
        found = await service.store.page(
            user.user_id,
            limit=limit + 1,
            before=before,
            unread_only=unread,
            category=category,
            archived=archived,
            snoozed=snoozed,
        )
        next_before = found[limit - 1].seq if len(found) > limit else None
        items = [n.to_json() for n in found[:limit]]
    headers = {}
    if next_before is not None:
        query: dict[str, str | int] = {"limit": limit, "before": next_before}
        named = (("unread", unread), ("archived", archived), ("grouped", grouped))
        for name, given in (*named, ("snoozed", snoozed)):
            if given:
                query[name] = 1
        if category is not None:
            query["category"] = category
        headers["link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return JSONResponse(items, headers=headers)


@user_router.get(
    "/notifications/unread-count", response_model=UnreadOut, responses=error_responses((401, 503))
)
async def unread_count(user: UserDep, service: ServiceDep) -> UnreadOut:
    """Unread and unseen (the badge), in all and per category; archived ones are not counted."""
    counts = await service.store.counts(user.user_id)
    position = await service.store.position(user.user_id)
    return UnreadOut(
        unread=counts.unread,
        unseen=counts.unseen,
        last_seq=position.last_seq,
        categories={
            c: CategoryCountOut(unread=unread, unseen=unseen)
            for c, (unread, unseen) in counts.categories.items()
        },
    )


@user_router.post(
    "/notifications/seen",
    response_model=SeenOut,
    responses=error_responses((400, 401, 403, 413, 415, 422, 503)),
)
async def mark_seen(body: SeenIn, user: ChangingUserDep, service: ServiceDep) -> SeenOut:
    """Mark everything up to and including `up_to` seen (the bell was opened), never newer."""
    event = await service.mark_seen(user.user_id, body.up_to)
    return SeenOut(up_to=event.up_to, unseen=event.unseen)


@user_router.post(
    "/notifications/archive",
    response_model=ArchiveOut,
    responses=error_responses((400, 401, 403, 413, 415, 422, 503)),
)
async def archive(body: ArchiveIn, user: ChangingUserDep, service: ServiceDep) -> ArchiveOut:
    """Archive the caller's notifications among `ids`; `ids` in the answer are those changed."""
    event = await service.archive(user.user_id, body.ids, archived=True)
    return ArchiveOut(ids=list(event.ids), unread=event.unread, unseen=event.unseen)


@user_router.post(
    "/notifications/unarchive",
    response_model=ArchiveOut,
    responses=error_responses((400, 401, 403, 413, 415, 422, 503)),
)
async def unarchive(body: ArchiveIn, user: ChangingUserDep, service: ServiceDep) -> ArchiveOut:
    """Bring archived notifications among `ids` back to the list."""
    event = await service.archive(user.user_id, body.ids, archived=False)
    return ArchiveOut(ids=list(event.ids), unread=event.unread, unseen=event.unseen)


@user_router.post(
    "/notifications/read",
    response_model=ReadOut,
    response_model_exclude_none=True,
    responses=error_responses((400, 401, 403, 413, 415, 422, 503)),
)
async def mark_read(body: ReadIn, user: ChangingUserDep, service: ServiceDep) -> ReadOut:
    """Mark read by `ids`, or everything up to and including `up_to` (never anything newer)."""
    if (body.ids is None) == (body.up_to is None):
        raise ApiError(422, "invalid_request", "give exactly one of ids or up_to")
    event = await service.mark_read(user.user_id, ids=body.ids, up_to=body.up_to)
    return ReadOut(
        unread=event.unread,
        ids=None if event.ids is None else list(event.ids),
        up_to=event.up_to,
    )


@user_router.get(
    "/notifications/preferences",
    response_model=PreferencesOut,
    responses=error_responses((401, 503)),
)
async def get_preferences(user: UserDep, service: ServiceDep) -> dict[str, Any]:
    """The caller's muted categories and channels (all on, nothing muted, until set)."""
    return (await service.store.preferences(user.user_id)).to_json(CHANNEL_NAMES)


@user_router.put(
    "/notifications/preferences",
    response_model=PreferencesOut,
    responses=error_responses((400, 401, 403, 413, 415, 422, 503)),
)
async def put_preferences(
    body: PreferencesIn, user: ChangingUserDep, service: ServiceDep
) -> dict[str, Any]:
    """Replace the caller's preferences. A muted category is not stored for the caller: a
    publish in it skips them."""
    preferences = Preferences.of(
        check_muted(body.muted_categories, service.settings), body.channels.model_dump()
    )
    return (await service.set_preferences(user.user_id, preferences)).to_json(CHANNEL_NAMES)


@user_router.post(
    "/notifications/session",
    response_model=SessionOut,
    responses=error_responses((400, 401, 403, 413, 415, 422)),
)
async def open_session(
    body: SessionIn, request: Request, response: Response, service: ServiceDep
) -> SessionOut:
    """Exchange a user token for the HttpOnly session cookie that EventSource sends."""
    check_origin(request, service.settings)
    user_id, expires = decode_token(service.settings.secret, body.token)
    set_session_cookie(response, service, body.token, int(expires))
    return SessionOut(user_id=user_id, expires_at=int(expires))


@user_router.delete("/notifications/session", status_code=204, responses=error_responses((403,)))
async def close_session(request: Request, service: ServiceDep) -> Response:
    check_origin(request, service.settings)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


# After the session routes: "/notifications/{seq}" would otherwise shadow DELETE .../session.
@user_router.delete(
    "/notifications/{seq}", status_code=204, responses=error_responses((401, 403, 404, 422, 503))
)
async def delete_notification(
    seq: Annotated[int, Path(ge=-MAX_SEQ, le=MAX_SEQ)], user: ChangingUserDep, service: ServiceDep
) -> Response:
    if await service.delete(user.user_id, seq) is None:
        raise ApiError(404, "not_found", f"you have no notification {seq}")
    return Response(status_code=204)


def set_session_cookie(response: Response, service: Service, token: str, expires: int) -> None:
    cross_site = bool(service.settings.cors_origins)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=max(0, expires - int(time.time())),
        path="/",
        httponly=True,
        samesite="none" if cross_site else "lax",
        secure=cross_site,
    )


# --- publisher routes --------------------------------------------------------------------------

publisher_router = APIRouter(tags=["publisher"], dependencies=[Depends(publisher)])


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: StrictStr | WholeNumber
    ttl: Annotated[int, Field(strict=True, ge=1), BeforeValidator(whole)] = 3600


class TokenOut(BaseModel):
    token: str
    expires_at: int


@publisher_router.post(
    "/api/tokens",
    response_model=TokenOut,
    responses=error_responses((400, 401, 403, 413, 415, 422)),
)
async def create_token(body: TokenIn, service: ServiceDep) -> TokenOut:
    """Mint a user token, for host apps without a JWT library."""
    try:
        user_id = check_user_id(body.user_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", {"field": "user_id", "problem": str(exc)}) from None
    if body.ttl > service.settings.max_token_ttl:
        raise ApiError(
            422,
            "invalid_request",
            {"field": "ttl", "problem": f"at most {service.settings.max_token_ttl} seconds"},
        )
    token, expires = mint_token(service.settings.secret, user_id, body.ttl)
    return TokenOut(token=token, expires_at=expires)


# --- scheduled notifications ------------------------------------------------------------------

# What a key's rows being in a state means, for the 404 that cancels nothing.
_NOT_PENDING = {
    "delivered": "it was delivered already",
    "cancelled": "it was cancelled already",
    "muted": "it was due and skipped (the user muted its category)",
    "pending": "it is being delivered right now",
}


@publisher_router.delete(
    "/api/notifications/scheduled/{idempotency_key:path}",
    status_code=204,
    responses=error_responses((401, 403, 404, 422, 503)),
)
async def cancel_scheduled(
    idempotency_key: Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00]+$")],
    service: ServiceDep,
) -> Response:
    """Cancel a scheduled notification (a publish with a future `deliver_at`) before it is due,
    for every user it was scheduled for: 204. The key is URL-encoded; it may contain `/`.
    404 `not_scheduled` when nothing is pending under the key: unknown, delivered or cancelled
    already (the detail says which)."""
    cancelled, states = await service.cancel_scheduled(idempotency_key)
    if cancelled:
        return Response(status_code=204)
    why = "; ".join(_NOT_PENDING.get(s, s) for s in states) or "no publish was scheduled with it"
    raise ApiError(
        404,
        "not_scheduled",
        f"nothing is pending under idempotency key {idempotency_key!r}: {why}",
    )


# --- operations --------------------------------------------------------------------------------

operations_router = APIRouter(tags=["operations"])


@operations_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]


@operations_router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"description": "not ready: the failing check", "model": ReadyOut}},
)
async def readyz(service: ServiceDep) -> Response:
    """Ready when the store answers and the bus subscription is live."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await service.store.ping()
        checks["store"] = "ok"
    except (StoreUnavailable, TimeoutError) as exc:
        checks["store"] = f"unavailable: {exc}" if str(exc) else "unavailable: timeout"
    checks["bus"] = "ok" if service.bus.ready() else "unavailable"
    if service.hub.draining:
        checks["node"] = "draining"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@operations_router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")


# --- errors ------------------------------------------------------------------------------------

# The framework's own HTTPExceptions (unknown path, an unreadable body) by status.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def _authenticate(request: Request) -> None:
    """Run the credential check of the matched route (by its router's tag) again."""
    route = request.scope.get("route")
    tags = getattr(route, "tags", None) or ()
    service = _service(request)
    if "publisher" in tags:
        check_publisher(request, service.settings)
    elif "user" in tags and getattr(route, "path", "") != "/notifications/session":
        if request.method in {"GET", "HEAD"}:
            read_user(request, service.settings)
        else:
            _changing_user(request)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of the framework's routes as an `ApiError` (tidings.app: raw routes)."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def store_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreUnavailable)
        log.warning("store unavailable: %s", exc)
        return error_response(store_unavailable(exc))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # FastAPI parses the body before it runs the credential checks: a caller without a
        # valid credential learns that first, not what a valid body looks like.
        try:
            _authenticate(request)
        except ApiError as refused:
            return error_response(refused)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(invalid_json())
        if not is_json_media(request.headers.get("content-type", "")) and any(
            tuple(e.get("loc", ())) == ("body",) for e in errors
        ):
            # `curl -d` sends a form content type; say what is wrong instead of "not an object".
            return error_response(unsupported_media_type())
        detail = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in errors
        ]
        return error_response(ApiError(422, "invalid_request", detail))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = STATUS_CODES.get(exc.status_code, "error")
        headers = (exc.headers or {}).items()
        return error_response(ApiError(exc.status_code, code, exc.detail, headers))

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(internal_error())

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StoreUnavailable, store_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated schema, with the error shape every error answer refers to."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    _integer_bounds(schema)
    return schema


# FastAPI's OpenAPI model holds `maximum` as a float, which turns 2**63 - 1 into 2**63.
_EXACT_BOUNDS = {float(MAX_SEQ): MAX_SEQ, float(-MAX_SEQ): -MAX_SEQ}


def _integer_bounds(node: object) -> None:
    """Give every integer's bounds back as exact integers."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
                value = node.get(key)
                if isinstance(value, float):
                    node[key] = _EXACT_BOUNDS.get(value, int(value))
        for child in node.values():
            _integer_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _integer_bounds(child)
