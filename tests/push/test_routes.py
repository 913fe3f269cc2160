"""The Web Push routes: the key, subscribing and unsubscribing, and what they refuse."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ServerFactory
from tests.push.helpers import PUBLIC_KEY, PUSH_ENV
from tests.push.standin import Browser
from tests.support import HTTP, Server, make_token, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = {**PUSH_ENV, "TIDINGS_MAX_PUSH_SUBSCRIPTIONS": "3"}
    with serving(tmp_path_factory.mktemp("push-routes"), extra) as started:
        yield started


def post(server: Server, user: str | None, body: Any) -> Any:
    headers = {} if user is None else {"authorization": f"Bearer {make_token(user)}"}
    return HTTP.post(f"{server.url}/notifications/push-subscriptions", json=body, headers=headers)


def delete(server: Server, user: str, endpoint: str) -> Any:
    return HTTP.request(
        "DELETE",
        f"{server.url}/notifications/push-subscriptions",
        json={"endpoint": endpoint},
        headers={"authorization": f"Bearer {make_token(user)}"},
    )


def test_the_key_is_the_servers_vapid_public_key(server: Server) -> None:
    response = HTTP.get(
        f"{server.url}/notifications/push/key",
        headers={"authorization": f"Bearer {make_token('k')}"},
    )
    assert response.status_code == 200
    assert response.json() == {"public_key": PUBLIC_KEY}
    raw = base64.urlsafe_b64decode(PUBLIC_KEY + "=")
    assert len(raw) == 65
    assert raw[0] == 4
    assert HTTP.get(f"{server.url}/notifications/push/key").status_code == 401


def test_subscribe_is_idempotent_by_endpoint_and_delete_removes_it(server: Server) -> None:
    browser = Browser("https://push.example/send/abc")
    first = post(server, "sub-1", browser.to_json())
    again = post(server, "sub-1", browser.to_json())
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json() == {"endpoint": browser.endpoint}
    assert delete(server, "sub-2", browser.endpoint).status_code == 404  # not theirs
    assert delete(server, "sub-1", browser.endpoint).status_code == 204
    gone = delete(server, "sub-1", browser.endpoint)
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_found"
    assert post(server, None, browser.to_json()).status_code == 401


def test_a_user_has_at_most_the_cap(server: Server) -> None:
    for n in range(3):
        assert (
            post(server, "many", Browser(f"https://push.example/{n}").to_json()).status_code == 201
        )
    refused = post(server, "many", Browser("https://push.example/3").to_json())
    assert refused.status_code == 409
    assert refused.json()["error"] == "push_subscriptions_full"
    # The same endpoint again is no new one; after a removal there is room.
    assert post(server, "many", Browser("https://push.example/0").to_json()).status_code == 201
    assert delete(server, "many", "https://push.example/0").status_code == 204
    assert post(server, "many", Browser("https://push.example/3").to_json()).status_code == 201


def _broken(**change: Any) -> dict[str, Any]:
    body = Browser("https://push.example/x").to_json()
    for key, value in change.items():
        if key in ("p256dh", "auth"):
            body["keys"][key] = value
        else:
            body[key] = value
    return body


NOT_ON_CURVE = base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_broken(endpoint="ftp://push.example/x"), "endpoint"),
        (_broken(endpoint="/relative/path"), "endpoint"),
        (_broken(endpoint="https:///no-host"), "endpoint"),
        (_broken(endpoint="https://push.example/" + "a" * 3000), "endpoint"),
        (_broken(endpoint="https://user:pw@push.example/x"), "endpoint"),
        (_broken(endpoint="https://[::1]/x"), "endpoint"),
        (_broken(p256dh="not base64 !"), "keys.p256dh"),
        (_broken(p256dh=base64.urlsafe_b64encode(b"\x04" * 33).decode()), "keys.p256dh"),
        (_broken(p256dh=NOT_ON_CURVE), "keys.p256dh"),
        (_broken(auth=base64.urlsafe_b64encode(b"short").decode()), "keys.auth"),
    ],
)
def test_a_broken_subscription_is_refused_naming_the_field(
    server: Server, body: dict[str, Any], field: str
) -> None:
    response = post(server, "broken", body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_subscription"
    assert response.json()["detail"]["field"] == field


def test_a_body_that_is_no_subscription_is_422(server: Server) -> None:
    assert post(server, "broken", {"endpoint": "https://push.example/x"}).status_code == 422
    assert post(server, "broken", {**_broken(), "extra": 1}).status_code == 422


def test_plain_http_endpoints_are_refused_unless_allowed(make_server: ServerFactory) -> None:
    strict = {k: v for k, v in PUSH_ENV.items() if k != "TIDINGS_PUSH_ALLOW_HTTP"}
    server = make_server(**strict)
    response = post(server, "plain", Browser("http://127.0.0.1:9/push").to_json())
    assert response.status_code == 422
    assert response.json()["detail"] == {
        "field": "endpoint",
        "problem": "not an absolute https:// URL",
    }


def test_without_a_key_the_push_routes_say_push_is_off(make_server: ServerFactory) -> None:
    server = make_server()
    token = {"authorization": f"Bearer {make_token('off')}"}
    answers = [
        HTTP.get(f"{server.url}/notifications/push/key", headers=token),
        HTTP.post(
            f"{server.url}/notifications/push-subscriptions",
            json=Browser("https://push.example/x").to_json(),
            headers=token,
        ),
        HTTP.request(
            "DELETE",
            f"{server.url}/notifications/push-subscriptions",
            json={"endpoint": "https://push.example/x"},
            headers=token,
        ),
    ]
    for response in answers:
        assert response.status_code == 404
        assert response.json() == {
            "error": "push_disabled",
            "detail": "Web Push is off on this server: TIDINGS_VAPID_PRIVATE_KEY is not set",
        }
