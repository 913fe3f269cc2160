"""Demo mode (`tidings serve --demo`): a page to log in as a demo user and send notifications.

These routes exist only in demo mode: /demo/login hands out a session for a fixed set of users
without any password, which is the point of a demo and never acceptable otherwise.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, StrictStr

from tidings.auth import check_origin, mint_token
from tidings.http.deps import ServiceDep
from tidings.http.user import set_session_cookie
from tidings.models import Stored
from tidings.validation import ActionIn, ActorIn, PublishIn, make_draft

__all__ = ["DEMO_USERS", "demo_router"]

DEMO_USERS = ("alice", "bob", "carol")
# The demo's avatars: an initial on a colour, served by the demo itself so the page needs no
# other site. Each colour has at least 4.5:1 contrast with white text.
AVATAR_COLOURS = {"alice": "#1d4ed8", "bob": "#047857", "carol": "#b91c1c"}
DEMO_TOKEN_TTL = 12 * 3600

demo_router = APIRouter(tags=["demo"], include_in_schema=False)

DemoUser = Literal["alice", "bob", "carol"]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: DemoUser


class SendIn(BaseModel):
    """The demo form: the fields of a publish, each checked by the same rules (make_draft)."""

    model_config = ConfigDict(extra="forbid")
    user_id: DemoUser
    message: StrictStr
    link: StrictStr | None = None
    category: StrictStr | None = None
    actor: ActorIn | None = None
    actions: list[ActionIn] | None = None
    group: StrictStr | None = None
    deliver_at: StrictStr | None = None


@demo_router.get("/", response_class=HTMLResponse)
async def demo_page() -> HTMLResponse:
    page = (resources.files("tidings") / "web" / "demo.html").read_text(encoding="utf-8")
    return HTMLResponse(page)


@demo_router.get("/demo/vue", response_class=HTMLResponse)
async def demo_vue_page() -> HTMLResponse:
    """The Vue 2.7 and Vue 3 bells side by side (Vue from /static/vendor/)."""
    page = (resources.files("tidings") / "web" / "demo-vue.html").read_text(encoding="utf-8")
    return HTMLResponse(page)


@demo_router.get("/demo/avatars/{name}.svg")
async def demo_avatar(name: DemoUser) -> Response:
    """A demo user's avatar (the form's actor picker links to these)."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" rx="32" fill="{AVATAR_COLOURS[name]}"/>'
        '<text x="32" y="42" font-family="sans-serif" font-size="28" font-weight="700" '
        f'fill="#fff" text-anchor="middle">{name[0].upper()}</text></svg>'
    )
    return Response(svg, media_type="image/svg+xml", headers={"cache-control": "max-age=3600"})


# The demo's own service worker, at the root so its scope is the whole demo: what a host app
# serves from its origin, importing the Web Push side from tidings.
DEMO_WORKER = 'importScripts("/static/tidings-sw.js");\n'


@demo_router.get("/demo-sw.js")
async def demo_worker() -> Response:
    return Response(
        DEMO_WORKER,
        media_type="text/javascript",
        headers={"cache-control": "no-cache"},
    )


@demo_router.post("/demo/login")
async def demo_login(
    body: LoginIn, request: Request, response: Response, service: ServiceDep
) -> dict[str, object]:
    check_origin(request, service.settings)
    token, expires = mint_token(service.settings.secret, body.user_id, DEMO_TOKEN_TTL)
    set_session_cookie(response, service, token, expires)
    # The token too, so the demo page can show the credential-refresh flow (getToken).
    return {"user_id": body.user_id, "expires_at": expires, "token": token}


@demo_router.post("/demo/send", status_code=201)
async def demo_send(
    body: SendIn, request: Request, response: Response, service: ServiceDep
) -> dict[str, object]:
    """Publish as the HTTP API does: now (201, the notification) or, with a future
    `deliver_at`, scheduled (202, what was scheduled and its key)."""
    check_origin(request, service.settings)
    publish = PublishIn(
        user_id=body.user_id,
        message=body.message,
        link=body.link or None,
        category=body.category or None,
        actor=body.actor,
        actions=body.actions or None,
        group=body.group or None,
        deliver_at=body.deliver_at or None,
    )
    draft = make_draft(publish, service.settings)
    if draft.deliver_ms is None:
        stored = await service.publish(draft)
        return stored.notifications[0].to_json()
    outcome = await service.schedule(draft, None)
    if isinstance(outcome, Stored):  # due already: published now
        return outcome.notifications[0].to_json()
    response.status_code = 202
    return outcome.to_json()
