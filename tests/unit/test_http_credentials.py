"""The auth policy rides on the credential dependency: a route that declares one has its
credential checked before anything is said about its body, whatever its router or tag."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from tests.support import make_token
from tests.unit.conftest import Node
from tidings.app import create_app
from tidings.http.deps import ChangingUserDep, PublisherDep, UserDep

pytestmark = pytest.mark.anyio


class WidgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


# A router nobody has heard of: a new tag, no registration anywhere but the dependencies.
widgets = APIRouter(tags=["widgets"])


@widgets.post("/widgets")
async def add_widget(body: WidgetIn, user: ChangingUserDep) -> dict[str, str]:
    return {"owner": user.user_id, "name": body.name}


@widgets.get("/widgets/mine")
async def my_widgets(user: UserDep) -> dict[str, str]:
    return {"owner": user.user_id}


@widgets.post("/widgets/open")
async def open_widget(body: WidgetIn) -> dict[str, str]:
    return {"name": body.name}


publishers = APIRouter(tags=["gadgets"], dependencies=[PublisherDep])


@publishers.post("/gadgets")
async def add_gadget(body: WidgetIn) -> dict[str, str]:
    return {"name": body.name}


@pytest.fixture
async def client(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(node.service.settings, node.service)
    app.api.include_router(widgets)
    app.api.include_router(publishers)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tidings.test") as client:
        yield client


JSON = {"content-type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {**JSON, "authorization": f"Bearer {token}"}


async def test_a_new_router_checks_the_user_token_before_the_body(
    client: httpx.AsyncClient,
) -> None:
    for headers, error in (
        (JSON, "unauthorized"),
        (bearer(make_token("ann", ttl=-60)), "token_expired"),
        (bearer("not.a.jwt"), "invalid_token"),
    ):
        for body in (b"{", b'{"name": 7, "extra": 1}'):
            response = await client.post("/widgets", content=body, headers=headers)
            assert (response.status_code, response.json()["error"]) == (401, error), body
    # With a valid token, the body's faults are told.
    token = make_token("ann")
    response = await client.post("/widgets", content=b"{", headers=bearer(token))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")
    response = await client.post("/widgets", json={"name": "w"}, headers=bearer(token))
    assert (response.status_code, response.json()) == (200, {"owner": "ann", "name": "w"})


async def test_a_new_router_applies_the_cookie_rules_of_a_changing_route(
    client: httpx.AsyncClient,
) -> None:
    cookie = {"cookie": f"tidings_session={make_token('ann')}"}
    # A foreign origin is refused before the unparsable body is looked at …
    response = await client.post(
        "/widgets", content=b"{", headers={**JSON, **cookie, "origin": "https://evil.example"}
    )
    assert (response.status_code, response.json()["error"]) == (403, "forbidden_origin")
    # … and a cross-site form's content type is 415, not a complaint about the body.
    response = await client.post(
        "/widgets", content=b"name=w", headers={**cookie, "content-type": "text/plain"}
    )
    assert (response.status_code, response.json()["error"]) == (415, "unsupported_media_type")
    response = await client.get("/widgets/mine", headers=cookie)
    assert response.json() == {"owner": "ann"}


async def test_a_new_router_with_the_publisher_dependency_checks_the_key_first(
    client: httpx.AsyncClient,
) -> None:
    for headers, status in ((JSON, 401), (bearer("wrong"), 403), (bearer(make_token("x")), 403)):
        response = await client.post("/gadgets", content=b"{", headers=headers)
        assert response.status_code == status
    response = await client.post("/gadgets", content=b"{", headers=bearer("key"))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")


async def test_a_route_without_a_credential_is_answered_on_its_body_alone(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/widgets/open", content=b"{", headers=JSON)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")
    response = await client.post("/widgets/open", json={"name": "w"})
    assert response.json() == {"name": "w"}


async def test_the_built_in_routes_check_the_credential_before_the_body(
    client: httpx.AsyncClient,
) -> None:
    for path in (
        "/notifications/read",
        "/notifications/snooze",
        "/notifications/push-subscriptions",
    ):
        response = await client.post(path, content=b"{", headers=JSON)
        assert (response.status_code, response.json()["error"]) == (401, "unauthorized"), path
    for path in ("/api/tokens", "/api/users/ann"):
        method = "PUT" if path.startswith("/api/users") else "POST"
        response = await client.request(method, path, content=b"{", headers=bearer("wrong"))
        assert (response.status_code, response.json()["error"]) == (403, "forbidden"), path
    # The session route takes its token in the body: no credential to check first.
    response = await client.post("/notifications/session", content=b"{", headers=JSON)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")
