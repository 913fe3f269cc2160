"""The user's routes: the list with its filters and groups, counts, read, seen, archive,
preferences, delete, and the session cookie. Each declares the credential it needs
(`UserDep` to read, `ChangingUserDep` to change; see `tidings.http.deps`)."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from tidings.auth import COOKIE_NAME, check_origin, decode_token
from tidings.channels import NAMES as CHANNEL_NAMES
from tidings.errors import ApiError, error_responses
from tidings.http.deps import ChangingUserDep, ServiceDep, UserDep
from tidings.http.schemas import (
    MAX_PAGE,
    MAX_SEQ,
    ArchiveIn,
    ArchiveOut,
    CategoryCountOut,
    NotificationOut,
    PreferencesIn,
    PreferencesOut,
    ReadIn,
    ReadOut,
    SeenIn,
    SeenOut,
    SessionIn,
    SessionOut,
    UnreadOut,
)
from tidings.models import Preferences
from tidings.service import Service
from tidings.validation import check_muted

__all__ = ["set_session_cookie", "user_router"]

user_router = APIRouter(tags=["user"])


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
