"""The HTTP API as a user and a publisher see it: routes, credentials, CSRF, CORS, operations."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import (
    HTTP,
    PUBLISHER_KEY,
    Server,
    make_token,
    open_stream,
    publish_sentinel,
    serving,
)

pytestmark = pytest.mark.anyio


ALLOWED_ORIGIN = "https://app.example"
FOREIGN_ORIGIN = "https://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: every test uses users of its own."""
    with serving(
        tmp_path_factory.mktemp("api"), {"TIDINGS_CORS_ORIGINS": ALLOWED_ORIGIN}
    ) as started:
        yield started


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def as_user(server: Server, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**bearer(make_token(user)), **kwargs.pop("headers", {})}
    return HTTP.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


def with_cookie(
    server: Server, token: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    # The cookie goes in by hand: with CORS origins set it is `Secure`, which a client's cookie
    # jar would keep from plain-HTTP 127.0.0.1.
    headers = {"cookie": f"tidings_session={token}", **kwargs.pop("headers", {})}
    return HTTP.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


def publish_many(server: Server, user: str, count: int) -> None:
    for index in range(1, count + 1):
        response = server.publish(user, f"message {index}")
        assert response.status_code == 201, response.text


def unread(server: Server, user: str) -> dict[str, Any]:
    """The read-state part of the counts (unseen and categories: tests/test_inbox.py)."""
    response = as_user(server, user, "GET", "/notifications/unread-count")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return {"unread": body["unread"], "last_seq": body["last_seq"]}


def listed(server: Server, user: str, query: str = "") -> list[dict[str, Any]]:
    response = as_user(server, user, "GET", f"/notifications{query}")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def get(url: str, **kwargs: Any) -> httpx.Response:
    """A plain GET; blocking on purpose (the server is another process)."""
    return HTTP.get(url, timeout=10, **kwargs)


def next_link(response: httpx.Response) -> str | None:
    header = response.headers.get("link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', header)
    assert match is not None, header
    return match.group(1)


# --- listing -----------------------------------------------------------------------------------


def test_list_is_newest_first_with_default_limit_and_notification_shape(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 12)
    response = as_user(server, user, "GET", "/notifications")
    assert response.status_code == 200
    items = response.json()
    assert [n["id"] for n in items] == list(range(12, 2, -1))
    first = items[0]
    assert set(first) == {
        "id",
        "user_id",
        "message",
        "link",
        "kind",
        "data",
        "category",
        "actor",
        "actions",
        "group",
        "created_at",
        "expires_at",
        "read_at",
        "seen_at",
        "archived_at",
        "snoozed_until",
    }
    assert first["user_id"] == user
    assert first["message"] == "message 12"
    assert first["read_at"] is None
    assert first["data"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["created_at"])


def test_list_pages_follow_the_link_header_to_the_end(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 7)
    seen: list[int] = []
    path: str | None = "/notifications?limit=3"
    pages = 0
    while path is not None:
        response = as_user(server, user, "GET", path)
        assert response.status_code == 200
        seen.extend(n["id"] for n in response.json())
        path = next_link(response)
        pages += 1
        assert pages <= 3
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert pages == 3


def test_no_link_header_when_nothing_more(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 3)
    response = as_user(server, user, "GET", "/notifications?limit=3")
    assert [n["id"] for n in response.json()] == [3, 2, 1]
    assert "link" not in response.headers


def test_list_before_and_unread_filter(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 5)
    assert [n["id"] for n in listed(server, user, "?before=4")] == [3, 2, 1]
    as_user(server, user, "POST", "/notifications/read", json={"ids": [2, 4]})
    assert [n["id"] for n in listed(server, user, "?unread=1")] == [5, 3, 1]
    response = as_user(server, user, "GET", "/notifications?unread=1&limit=2")
    assert [n["id"] for n in response.json()] == [5, 3]
    link = next_link(response)
    assert link is not None
    assert "unread=1" in link
    assert [n["id"] for n in as_user(server, user, "GET", link).json()] == [1]


def test_list_limit_is_bounded(server: Server) -> None:
    user = new_user()
    for query in ("?limit=0", "?limit=101", "?limit=abc", "?before=0"):
        response = as_user(server, user, "GET", f"/notifications{query}")
        assert response.status_code == 422, query
        assert response.json()["error"] == "invalid_request"
    assert as_user(server, user, "GET", "/notifications?limit=100").status_code == 200


def test_list_needs_a_user_credential(server: Server) -> None:
    response = HTTP.get(f"{server.url}/notifications", timeout=10)
    assert response.status_code == 401
    assert set(response.json()) == {"error", "detail"}


# --- unread count and mark read -----------------------------------------------------------------


def test_unread_count_of_a_new_user_is_zero(server: Server) -> None:
    assert unread(server, new_user()) == {"unread": 0, "last_seq": 0}


def test_unread_count_follows_publishing_and_reading(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 3)
    assert unread(server, user) == {"unread": 3, "last_seq": 3}
    as_user(server, user, "POST", "/notifications/read", json={"ids": [1]})
    assert unread(server, user) == {"unread": 2, "last_seq": 3}


def test_mark_read_by_ids(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 3)
    response = as_user(server, user, "POST", "/notifications/read", json={"ids": [1, 3]})
    assert response.status_code == 200
    assert response.json() == {"unread": 1, "ids": [1, 3]}
    read = {n["id"]: n["read_at"] for n in listed(server, user)}
    assert read[2] is None
    assert read[1] is not None
    assert read[3] is not None
    # Marking again changes nothing and says so.
    again = as_user(server, user, "POST", "/notifications/read", json={"ids": [1]})
    assert again.json() == {"unread": 1, "ids": []}


def test_mark_read_up_to_never_marks_a_newer_one(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 2)
    # The client saw 1..2 and sends "mark all read"; meanwhile 3 arrives.
    publish_many(server, user, 1)
    response = as_user(server, user, "POST", "/notifications/read", json={"up_to": 2})
    assert response.status_code == 200
    assert response.json() == {"unread": 1, "up_to": 2}
    assert [n["id"] for n in listed(server, user, "?unread=1")] == [3]


async def test_mark_read_is_announced_on_every_stream_of_the_user(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 3)
    token = make_token(user)
    async with open_stream(server.url, token) as one, open_stream(server.url, token) as two:
        assert (one.status, two.status) == (200, 200)
        as_user(server, user, "POST", "/notifications/read", json={"ids": [2]})
        as_user(server, user, "POST", "/notifications/read", json={"up_to": 3})
        for stream in (one, two):
            first = await stream.next()
            assert (first.event, first.json()) == ("notifications-read", {"ids": [2], "unread": 2})
            second = await stream.next()
            assert (second.event, second.json()) == (
                "notifications-read",
                {"up_to": 3, "unread": 0},
            )


def test_mark_read_of_another_users_ids_changes_nothing(server: Server) -> None:
    owner, other = new_user(), new_user()
    publish_many(server, owner, 2)
    publish_many(server, other, 2)
    response = as_user(server, other, "POST", "/notifications/read", json={"ids": [1]})
    assert response.status_code == 200
    # `other` marked its own seq 1 (ids are per user); the owner's stay unread.
    assert unread(server, owner) == {"unread": 2, "last_seq": 2}
    stranger = new_user()
    response = as_user(server, stranger, "POST", "/notifications/read", json={"ids": [1, 2]})
    assert response.json() == {"unread": 0, "ids": []}
    response = as_user(server, stranger, "POST", "/notifications/read", json={"up_to": 2})
    assert response.json() == {"unread": 0, "up_to": 2}
    assert unread(server, owner) == {"unread": 2, "last_seq": 2}


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": [1], "up_to": 1}, {"ids": ["1"]}, {"up_to": "x"}, {"ids": [1], "extra": 1}],
)
def test_mark_read_wants_exactly_one_of_ids_or_up_to(server: Server, body: Any) -> None:
    user = new_user()
    publish_many(server, user, 1)
    response = as_user(server, user, "POST", "/notifications/read", json=body)
    assert response.status_code == 422
    assert set(response.json()) == {"error", "detail"}
    assert unread(server, user)["unread"] == 1


# --- delete --------------------------------------------------------------------------------------


def test_delete_removes_one_notification(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 3)
    response = as_user(server, user, "DELETE", "/notifications/2")
    assert response.status_code == 204
    assert response.content == b""
    assert [n["id"] for n in listed(server, user)] == [3, 1]
    assert unread(server, user) == {"unread": 2, "last_seq": 3}
    again = as_user(server, user, "DELETE", "/notifications/2")
    assert again.status_code == 404
    assert again.json()["error"] == "not_found"


def test_delete_of_another_users_or_a_missing_id_is_404(server: Server) -> None:
    owner, other = new_user(), new_user()
    publish_many(server, owner, 1)
    response = as_user(server, other, "DELETE", "/notifications/1")
    assert response.status_code == 404
    assert set(response.json()) == {"error", "detail"}
    assert [n["id"] for n in listed(server, owner)] == [1]
    assert as_user(server, owner, "DELETE", "/notifications/99").status_code == 404
    assert as_user(server, owner, "DELETE", "/notifications/abc").status_code == 422


async def test_delete_is_announced_on_the_stream(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 2)
    async with open_stream(server.url, make_token(user)) as stream:
        assert as_user(server, user, "DELETE", "/notifications/1").status_code == 204
        event = await stream.next()
        assert event.event == "notification-deleted"
        assert event.json() == {"id": 1, "unread": 1}


# --- the session cookie ------------------------------------------------------------------------


def open_session(server: Server, token: str, **headers: str) -> httpx.Response:
    return HTTP.post(
        f"{server.url}/notifications/session", json={"token": token}, headers=headers, timeout=10
    )


def test_session_sets_an_httponly_cookie(server: Server) -> None:
    user = new_user()
    token = make_token(user)
    response = open_session(server, token)
    assert response.status_code == 200
    assert response.json()["user_id"] == user
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"tidings_session={token};")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert "httponly" in attributes
    assert "path" in attributes
    assert "max-age" in attributes
    # Cross-site origins are configured: the cookie must travel on credentialed CORS requests.
    assert "samesite=none" in cookie.lower()
    assert "secure" in attributes


def test_session_refuses_a_bad_token_and_sets_no_cookie(server: Server) -> None:
    response = open_session(server, make_token(new_user(), secret="another-secret-" * 4))
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert set(response.json()) == {"error", "detail"}


def test_session_from_a_foreign_origin_is_refused(server: Server) -> None:
    response = open_session(server, make_token(new_user()), origin=FOREIGN_ORIGIN)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_session_cookie_works_for_rest_and_the_stream(server: Server) -> None:
    user = new_user()
    token = make_token(user)
    cookie = open_session(server, token).cookies["tidings_session"]
    assert cookie == token
    publish_many(server, user, 2)
    response = with_cookie(server, cookie, "GET", "/notifications")
    assert [n["id"] for n in response.json()] == [2, 1]
    assert with_cookie(server, cookie, "GET", "/notifications/unread-count").json() == {
        "unread": 2,
        "unseen": 2,
        "last_seq": 2,
        "categories": {},
    }
    read = with_cookie(
        server, cookie, "POST", "/notifications/read", json={"ids": [1]}
    )  # no Origin: not a cross-site browser request
    assert read.status_code == 200
    assert with_cookie(server, cookie, "DELETE", "/notifications/2").status_code == 204
    async with open_stream(
        server.url, None, headers={"cookie": f"tidings_session={cookie}"}
    ) as stream:
        assert stream.status == 200
        server.publish(user, "over the cookie stream")
        [got] = await stream.notifications(1)
        assert (got["id"], got["message"]) == (3, "over the cookie stream")


def test_closing_the_session_clears_the_cookie(server: Server) -> None:
    response = HTTP.delete(f"{server.url}/notifications/session", timeout=10)
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("tidings_session=")
    assert "max-age=0" in cookie.lower()


def test_an_explicit_bearer_token_wins_over_a_stale_cookie(server: Server) -> None:
    user = new_user()
    server.publish(user, "one")
    stale = make_token(user, secret="the-secret-before-rotation-0123456789")
    response = HTTP.get(
        f"{server.url}/notifications/unread-count",
        headers={"cookie": f"tidings_session={stale}", **bearer(make_token(user))},
    )
    assert response.status_code == 200
    assert response.json() == {"unread": 1, "unseen": 1, "last_seq": 1, "categories": {}}
    # And a wrong bearer token is reported, not papered over by a good cookie.
    response = HTTP.get(
        f"{server.url}/notifications/unread-count",
        headers={"cookie": f"tidings_session={make_token(user)}", **bearer(stale)},
    )
    assert response.status_code == 401


# --- CSRF and CORS ------------------------------------------------------------------------------


def test_cookie_post_from_a_foreign_origin_is_403_and_changes_nothing(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 2)
    token = make_token(user)
    response = with_cookie(
        server,
        token,
        "POST",
        "/notifications/read",
        json={"up_to": 2},
        headers={"origin": FOREIGN_ORIGIN},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden_origin"
    deleted = with_cookie(
        server, token, "DELETE", "/notifications/1", headers={"origin": FOREIGN_ORIGIN}
    )
    assert deleted.status_code == 403
    assert unread(server, user) == {"unread": 2, "last_seq": 2}
    assert len(listed(server, user)) == 2


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]
)
def test_cookie_post_with_a_form_content_type_is_415(server: Server, content_type: str) -> None:
    user = new_user()
    publish_many(server, user, 1)
    response = with_cookie(
        server,
        make_token(user),
        "POST",
        "/notifications/read",
        content=b'{"up_to": 1}',
        headers={"content-type": content_type, "origin": server.url},
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert unread(server, user)["unread"] == 1


@pytest.mark.parametrize("origin", ["http://[x", "https://[", "http://a]b", "http://\uff03x"])
def test_cookie_post_from_an_origin_the_url_parser_rejects_is_403(
    server: Server, origin: str
) -> None:
    # Sent as UTF-8 bytes: httpx refuses a non-ASCII str header, a raw client sends anything.
    user = new_user()
    publish_many(server, user, 1)
    response = with_cookie(
        server,
        make_token(user),
        "POST",
        "/notifications/read",
        json={"up_to": 1},
        headers={"origin": origin.encode()},
    )
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden_origin"
    assert unread(server, user) == {"unread": 1, "last_seq": 1}


def test_cookie_post_from_the_own_or_an_allowed_origin_works(server: Server) -> None:
    user = new_user()
    publish_many(server, user, 2)
    token = make_token(user)
    own = with_cookie(
        server,
        token,
        "POST",
        "/notifications/read",
        json={"ids": [1]},
        headers={"origin": server.url},
    )
    assert own.status_code == 200
    allowed = with_cookie(
        server,
        token,
        "POST",
        "/notifications/read",
        json={"ids": [2]},
        headers={"origin": ALLOWED_ORIGIN},
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert unread(server, user)["unread"] == 0


def test_bearer_requests_are_not_subject_to_the_origin_rule(server: Server) -> None:
    # A bearer token is not sent by the browser on its own, so it cannot be forged cross-site.
    user = new_user()
    publish_many(server, user, 1)
    response = as_user(
        server, user, "POST", "/notifications/read", json={"ids": [1]}, headers={"origin": "x"}
    )
    assert response.status_code == 200


def test_cors_preflight_for_an_allowed_origin(server: Server) -> None:
    response = HTTP.options(
        f"{server.url}/notifications/read",
        headers={
            "origin": ALLOWED_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    refused = HTTP.options(
        f"{server.url}/notifications/read",
        headers={"origin": FOREIGN_ORIGIN, "access-control-request-method": "POST"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in refused.headers


async def test_the_stream_gets_cors_headers_for_an_allowed_origin(server: Server) -> None:
    user = new_user()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        request = client.build_request(
            "GET",
            f"{server.url}/notifications/stream",
            headers={**bearer(make_token(user)), "origin": ALLOWED_ORIGIN},
        )
        response = await client.send(request, stream=True)
        try:
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
            assert response.headers["access-control-allow-credentials"] == "true"
        finally:
            await response.aclose()


# --- query tokens --------------------------------------------------------------------------------


async def test_query_tokens_are_refused_by_default(server: Server) -> None:
    user = new_user()
    token = make_token(user)
    response = get(f"{server.url}/notifications", params={"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "query_token_refused"
    async with open_stream(server.url, None, query=f"?token={token}") as stream:
        assert stream.status == 401


async def test_query_tokens_work_when_allowed(make_server: ServerFactory) -> None:
    allowed = make_server(allow_query_token="1")
    user = new_user()
    token = make_token(user)
    allowed.publish(user, "one")
    response = get(f"{allowed.url}/notifications", params={"token": token})
    assert response.status_code == 200
    assert [n["message"] for n in response.json()] == ["one"]
    async with open_stream(allowed.url, None, query=f"?token={token}") as stream:
        assert stream.status == 200
        allowed.publish(user, "two")
        [got] = await stream.notifications(1)
        assert got["message"] == "two"


# --- publisher routes ----------------------------------------------------------------------------


def as_publisher(server: Server, path: str, body: Any) -> httpx.Response:
    return HTTP.post(f"{server.url}{path}", json=body, headers=bearer(PUBLISHER_KEY), timeout=10)


def test_api_tokens_mints_a_token_the_server_accepts(server: Server) -> None:
    user = new_user()
    response = as_publisher(server, "/api/tokens", {"user_id": user, "ttl": 60})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    server.publish(user, "for the minted token")
    listing = HTTP.get(f"{server.url}/notifications", headers=bearer(body["token"]), timeout=10)
    assert listing.status_code == 200
    assert [n["message"] for n in listing.json()] == ["for the minted token"]


def test_api_tokens_accepts_an_integer_user_id_and_default_ttl(server: Server) -> None:
    response = as_publisher(server, "/api/tokens", {"user_id": 4242})
    assert response.status_code == 200
    token = response.json()["token"]
    listing = HTTP.get(f"{server.url}/notifications", headers=bearer(token), timeout=10)
    assert listing.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": ""},
        {"user_id": "x" * 129},
        {"user_id": "42", "ttl": 0},
        {"user_id": "42", "ttl": 10**9},
        {},
        {"user_id": None},
    ],
)
def test_api_tokens_refuses_bad_input(server: Server, body: Any) -> None:
    response = as_publisher(server, "/api/tokens", body)
    assert response.status_code == 422
    assert set(response.json()) == {"error", "detail"}


def test_api_tokens_needs_the_publisher_key(server: Server) -> None:
    response = HTTP.post(f"{server.url}/api/tokens", json={"user_id": "42"}, timeout=10)
    assert response.status_code == 401
    user_token = HTTP.post(
        f"{server.url}/api/tokens",
        json={"user_id": "42"},
        headers=bearer(make_token("42")),
        timeout=10,
    )
    assert user_token.status_code == 403


def test_publish_to_one_user_returns_the_notification(server: Server) -> None:
    user = new_user()
    response = as_publisher(
        server,
        "/api/notifications",
        {
            "user_id": user,
            "message": "Your order shipped",
            "link": "https://shop.example/orders/7",
            "kind": "order.shipped",
            "data": {"order": 7},
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == 1
    assert body["user_id"] == user
    assert body["link"] == "https://shop.example/orders/7"
    assert body["kind"] == "order.shipped"
    assert body["data"] == {"order": 7}
    assert listed(server, user) == [body]


def test_publish_accepts_an_integer_user_id_as_its_decimal_string(server: Server) -> None:
    number = int(uuid.uuid4().int % 10**12)
    response = as_publisher(server, "/api/notifications", {"user_id": number, "message": "hi"})
    assert response.status_code == 201
    assert response.json()["user_id"] == str(number)
    assert len(listed(server, str(number))) == 1


def test_publish_to_user_ids_returns_an_array(server: Server) -> None:
    users = [new_user() for _ in range(3)]
    server.publish(users[1], "earlier")
    response = server.publish(users, "to all three")
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body, list)
    assert [(n["user_id"], n["id"]) for n in body] == [
        (users[0], 1),
        (users[1], 2),
        (users[2], 1),
    ]
    for user in users:
        assert listed(server, user)[0]["message"] == "to all three"


def test_publish_to_user_ids_with_one_user_still_returns_an_array(server: Server) -> None:
    user = new_user()
    response = server.publish([user], "alone")
    assert response.status_code == 201
    assert [n["user_id"] for n in response.json()] == [user]


def test_publish_to_user_ids_stores_a_repeated_id_once(server: Server) -> None:
    user = new_user()
    response = server.publish([user, user], "twice named")
    assert response.status_code == 201
    assert len(response.json()) == 1
    assert unread(server, user) == {"unread": 1, "last_seq": 1}


def test_repeated_idempotency_key_returns_the_original_and_stores_nothing(
    server: Server,
) -> None:
    user = new_user()
    key = f"order-7-shipped-{uuid.uuid4().hex}"
    first = server.publish(user, "Your order shipped", idempotency_key=key)
    assert first.status_code == 201
    again = server.publish(user, "Your order shipped", idempotency_key=key)
    assert again.status_code == 200
    assert again.json() == first.json()
    # A different body under the same key is a client bug, refused rather than answered with
    # the first notification (as payment APIs do).
    other = server.publish(user, "something else", idempotency_key=key)
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict"
    assert unread(server, user) == {"unread": 1, "last_seq": 1}
    assert len(listed(server, user)) == 1


def test_repeated_idempotency_key_for_user_ids_returns_the_original_array(
    server: Server,
) -> None:
    users = [new_user(), new_user()]
    key = f"batch-{uuid.uuid4().hex}"
    first = server.publish(users, "batch", idempotency_key=key)
    assert first.status_code == 201
    again = server.publish(users, "batch", idempotency_key=key)
    assert again.status_code == 200
    assert again.json() == first.json()
    for user in users:
        assert unread(server, user) == {"unread": 1, "last_seq": 1}


async def test_a_repeated_idempotency_key_sends_nothing_to_the_stream(server: Server) -> None:
    user = new_user()
    key = f"once-{uuid.uuid4().hex}"
    async with open_stream(server.url, make_token(user)) as stream:
        server.publish(user, "once", idempotency_key=key)
        [got] = await stream.notifications(1)
        assert got["id"] == 1
        assert server.publish(user, "once", idempotency_key=key).status_code == 200
        await publish_sentinel(server, user, stream)


# --- operations ------------------------------------------------------------------------------


def test_healthz_and_readyz(server: Server) -> None:
    health = HTTP.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = HTTP.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"] == {"store": "ok", "bus": "ok"}


async def test_metrics_names_the_service_measures(server: Server) -> None:
    user = new_user()
    async with open_stream(server.url, make_token(user)) as stream:
        server.publish(user, "measured")
        await stream.notifications(1)
    # This test's own stream ending is what makes the disconnect counter appear (it must not
    # depend on an earlier test's): wait until the server has counted it.
    deadline = time.monotonic() + 10
    while "tidings_stream_disconnects_total{" not in get(f"{server.url}/metrics").text:
        assert time.monotonic() < deadline, "the stream's end was never counted"
        await anyio.sleep(0.05)
    response = get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "tidings_streams_open",
        "tidings_notifications_published_total",
        "tidings_notifications_delivered_total",
        "tidings_delivery_latency_seconds_bucket",
        "tidings_delivery_latency_seconds_count",
        "tidings_stream_disconnects_total",
    ):
        assert re.search(rf"^{name}[{{ ]", text, re.MULTILINE), name
    assert server.metric("tidings_notifications_published_total") >= 1
    assert server.metric("tidings_delivery_latency_seconds_count") >= 1


def test_openapi_lists_every_route_of_the_contract(server: Server) -> None:
    response = HTTP.get(f"{server.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        ("/notifications/stream", "get"),
        ("/notifications", "get"),
        ("/notifications/unread-count", "get"),
        ("/notifications/read", "post"),
        ("/notifications/{seq}", "delete"),
        ("/notifications/session", "post"),
        ("/api/notifications", "post"),
        ("/api/tokens", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    }
    present = {(path, method) for path, ops in paths.items() for method in ops}
    assert expected <= present, expected - present


def test_unknown_route_and_wrong_method_use_the_error_shape(server: Server) -> None:
    missing = HTTP.get(f"{server.url}/nope", timeout=10)
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "detail"}
    wrong = HTTP.get(f"{server.url}/api/notifications", timeout=10)
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


def test_a_token_whose_sub_is_an_integer_is_that_users_decimal_string(server: Server) -> None:
    # Host apps often mint `"sub": 42` (their primary key); it is user "42".
    user_number = int(uuid.uuid4().int % 10**12)
    assert server.publish(str(user_number), "for the integer user").status_code == 201
    token = make_token(user_number)  # type: ignore[arg-type]
    response = HTTP.get(f"{server.url}/notifications", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert [n["message"] for n in response.json()] == ["for the integer user"]
