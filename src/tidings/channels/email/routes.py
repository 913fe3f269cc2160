"""The email digest's routes: a user's address (publisher) and the unsubscribe link (anyone
holding its signature: the link is the credential, it comes from the user's own mailbox)."""

from __future__ import annotations

import html
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tidings.channels.email.digest import CHANNEL, UNSUBSCRIBE_PATH, check_unsubscribe
from tidings.errors import ApiError, error_responses
from tidings.http.deps import ServiceDep, publisher
from tidings.settings import Settings
from tidings.validation import check_user_id

__all__ = ["check_email", "describe", "email_router", "unsubscribe_router"]

# The part before the @: RFC 5321's dot-atom characters (no quoted local parts, no spaces, no
# angle brackets or line breaks that could end up in a header).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(\.{_ATOM})*")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# The same rule for the OpenAPI schema (`describe`).
EMAIL_PATTERN = rf"^{_LOCAL.pattern}@{_LABEL.pattern}(\.{_LABEL.pattern})+$"


def check_email(value: str, settings: Settings) -> str:
    """An ASCII address `local@domain.tld`, or ApiError 422 saying what is wrong."""

    def refuse(problem: str) -> ApiError:
        return ApiError(422, "invalid_request", {"field": "email", "problem": problem})

    if len(value.encode(errors="replace")) > settings.max_email_bytes:
        raise refuse(f"at most {settings.max_email_bytes} bytes (TIDINGS_MAX_EMAIL_BYTES)")
    local, at, domain = value.rpartition("@")
    if not at or not value.isascii():
        raise refuse("an ASCII address like name@example.com")
    if not _LOCAL.fullmatch(local):
        raise refuse("the part before @ is not a plain address (letters, digits, . + - _ …)")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise refuse("the part after @ is not a domain name like example.com")
    return value


def describe(schemas: dict[str, Any], settings: Settings) -> None:
    """Put the address rule and its running limit into the OpenAPI schema of `UserIn`."""
    email = schemas["UserIn"]["properties"]["email"]
    email["anyOf"] = [
        {"type": "string", "pattern": EMAIL_PATTERN, "maxLength": settings.max_email_bytes},
        {"type": "null"},
    ]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: StrictStr | None = Field(
        description="the address digests go to; null removes it (no digests)"
    )


class UserOut(BaseModel):
    user_id: str
    email: str | None
    updated_at: str


# The rules of check_user_id, in the schema: 1–128 characters, no control characters.
UserIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]

email_router = APIRouter(tags=["publisher"], dependencies=[Depends(publisher)])


def _user_id(raw: str) -> str:
    try:
        return check_user_id(raw)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", {"field": "user_id", "problem": str(exc)}) from None


@email_router.put(
    "/api/users/{user_id:path}",
    response_model=UserOut,
    responses=error_responses((400, 401, 403, 413, 415, 422, 503)),
)
async def put_user(user_id: UserIdPath, body: UserIn, service: ServiceDep) -> dict[str, Any]:
    """Set the user's email address (for the digest of what they did not see), or remove it
    with `null`. A new address gets what is published from now on, not what came before."""
    uid = _user_id(user_id)
    email = None if body.email is None else check_email(body.email, service.settings)
    return (await service.store.set_user_email(uid, email)).to_json()


@email_router.get(
    "/api/users/{user_id:path}",
    response_model=UserOut,
    # 403: a bearer credential that is no publisher key (as on every publisher route).
    responses=error_responses((401, 403, 404, 422, 503)),
)
async def get_user(user_id: UserIdPath, service: ServiceDep) -> dict[str, Any]:
    """What tidings knows about the user: their email address (404 when never set)."""
    uid = _user_id(user_id)
    record = await service.store.user(uid)
    if record is None:
        raise ApiError(404, "not_found", f"no record for user {uid!r}")
    return record.to_json()


# --- the unsubscribe link ----------------------------------------------------------------------

unsubscribe_router = APIRouter(tags=["email"])

UserQuery = Annotated[str, Query(min_length=1, max_length=512, description="the user id")]
SigQuery = Annotated[str, Query(min_length=1, max_length=128, description="the link's signature")]

# The link carries its credential: keep it out of other sites' logs and out of caches.
_PAGE_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-robots-tag": "noindex",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_HTML: dict[int | str, dict[str, Any]] = {
    200: {"description": "a small HTML page", "content": {"text/html": {}}}
}


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;'
        f'padding:0 1rem"><h1 style="font-size:1.4rem">{html.escape(title)}</h1>{body}'
        "</body></html>\n",
        headers=_PAGE_HEADERS,
    )


def _checked(settings: Settings, user: str, sig: str) -> str:
    if not check_unsubscribe(settings, user, sig):
        raise ApiError(403, "forbidden", "this unsubscribe link is not valid (changed or mistyped)")
    return user


@unsubscribe_router.get(
    UNSUBSCRIBE_PATH,
    response_class=HTMLResponse,
    responses={**_HTML, **error_responses((403, 422))},
)
async def unsubscribe_page(user: UserQuery, sig: SigQuery, service: ServiceDep) -> HTMLResponse:
    """The page an emailed unsubscribe link opens: a button that POSTs. Opening the link
    changes nothing (mail scanners open links)."""
    _checked(service.settings, user, sig)
    return _page(
        "Stop notification emails?",
        "<p>You will no longer get emails about notifications you have not seen. They still "
        "appear in the app.</p>"
        '<form method=post><input type=hidden name="List-Unsubscribe" value="One-Click">'
        '<button type=submit style="font-size:1rem;padding:.5rem 1rem">Unsubscribe</button>'
        "</form>",
    )


@unsubscribe_router.post(
    UNSUBSCRIBE_PATH,
    response_class=HTMLResponse,
    responses={**_HTML, **error_responses((403, 413, 422, 503))},
)
async def unsubscribe(user: UserQuery, sig: SigQuery, service: ServiceDep) -> HTMLResponse:
    """Turn email off for the link's user (`channels.email` = false): the page's button, and
    the one-click POST of RFC 8058 that mail clients send (`List-Unsubscribe=One-Click`)."""
    user_id = _checked(service.settings, user, sig)
    current = await service.store.preferences(user_id)
    if current.allows(CHANNEL):
        await service.set_preferences(user_id, current.turned_off(CHANNEL))
    return _page(
        "Unsubscribed",
        "<p>You will get no more notification emails. You can turn them on again in your "
        "notification settings.</p>",
    )
