"""Bad input: a clear JSON error with the right status, nothing stored, nothing lost.

One test per bad input of the contract. Each checks the error shape `{"error", "detail"}`, the
status, that no traceback leaks, and that the user's list and unread count did not change.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import (
    HTTP,
    PUBLISHER_KEY,
    Server,
    make_token,
    open_stream,
    serving,
)

pytestmark = pytest.mark.anyio


MAX_MESSAGE = 200
MAX_LINK = 100
MAX_DATA = 150
MAX_KIND = 20
MAX_USER_IDS = 3
MAX_BODY = 8192


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with small limits, so going over each of them is cheap."""
    limits = {
        "TIDINGS_MAX_MESSAGE_BYTES": str(MAX_MESSAGE),
        "TIDINGS_MAX_LINK_BYTES": str(MAX_LINK),
        "TIDINGS_MAX_DATA_BYTES": str(MAX_DATA),
        "TIDINGS_MAX_KIND_BYTES": str(MAX_KIND),
        "TIDINGS_MAX_USER_IDS": str(MAX_USER_IDS),
        "TIDINGS_MAX_BODY_BYTES": str(MAX_BODY),
    }
    with serving(tmp_path_factory.mktemp("bad-input"), limits) as started:
        yield started


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def post(
    server: Server, path: str, body: Any = None, *, raw: bytes | None = None, key: str | None = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key if key is not None else PUBLISHER_KEY}"}
    if raw is not None:
        headers["content-type"] = "application/json"
        return HTTP.post(f"{server.url}{path}", content=raw, headers=headers, timeout=10)
    return HTTP.post(f"{server.url}{path}", json=body, headers=headers, timeout=10)


def publish(server: Server, body: dict[str, Any]) -> httpx.Response:
    return post(server, "/api/notifications", body)


def as_user(server: Server, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {make_token(user)}"}
    return HTTP.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> Any:
    """The response is the JSON error shape with `status` (and `error`), and leaks nothing."""
    assert response.status_code == status, response.text
    assert "traceback" not in response.text.lower()
    assert 'file "' not in response.text.lower()
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["detail"]
    if error is not None:
        assert body["error"] == error, body
    return body["detail"]


def assert_nothing_stored(server: Server, *users: str) -> None:
    for user in users:
        listed = as_user(server, user, "GET", "/notifications")
        assert listed.status_code == 200
        assert listed.json() == []
        count = as_user(server, user, "GET", "/notifications/unread-count")
        assert count.json() == {"unread": 0, "unseen": 0, "last_seq": 0, "categories": {}}


def field_of(detail: Any) -> str:
    """The field an `invalid_notification` error names."""
    assert isinstance(detail, dict), detail
    field: str = detail["field"]
    assert detail["problem"]
    return field


# --- malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"user_id": "u", "message": "hi",}', b"not json", b"\xff\xfe", b""],
    ids=["unclosed", "trailing-comma", "text", "not-utf8", "empty"],
)
def test_invalid_json_is_400(server: Server, raw: bytes) -> None:
    response = post(server, "/api/notifications", raw=raw)
    detail = assert_error(response, 400 if raw else 422)
    if raw:
        assert response.json()["error"] == "invalid_json"
        assert "JSON" in detail


@pytest.mark.parametrize("body", [[], "text", 42, None], ids=["array", "string", "number", "null"])
def test_a_json_body_that_is_not_an_object_is_422(server: Server, body: Any) -> None:
    response = post(server, "/api/notifications", raw=json.dumps(body).encode())
    assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    "content_type", [None, "application/x-www-form-urlencoded", "text/plain"], ids=str
)
def test_a_body_that_is_not_sent_as_json_is_415(server: Server, content_type: str | None) -> None:
    # `curl -d '{...}'` sends a form content type: say so, rather than "not an object".
    user = new_user()
    headers = {"authorization": f"Bearer {PUBLISHER_KEY}"}
    if content_type is not None:
        headers["content-type"] = content_type
    body = json.dumps({"user_id": user, "message": "hi"}).encode()
    response = HTTP.post(f"{server.url}/api/notifications", content=body, headers=headers)
    assert "application/json" in assert_error(response, 415, "unsupported_media_type")
    assert_nothing_stored(server, user)


def test_a_json_media_type_with_a_suffix_or_charset_is_json(server: Server) -> None:
    user = new_user()
    body = json.dumps({"user_id": user, "message": "hi"}).encode()
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = HTTP.post(
            f"{server.url}/api/notifications",
            content=body,
            headers={"authorization": f"Bearer {PUBLISHER_KEY}", "content-type": content_type},
        )
        assert response.status_code == 201, response.text


def test_invalid_json_on_a_user_route_is_400(server: Server) -> None:
    user = new_user()
    server.publish(user, "one")
    response = HTTP.post(
        f"{server.url}/notifications/read",
        content=b'{"up_to": ',
        headers={"authorization": f"Bearer {make_token(user)}", "content-type": "application/json"},
        timeout=10,
    )
    assert_error(response, 400, "invalid_json")
    assert as_user(server, user, "GET", "/notifications/unread-count").json()["unread"] == 1


def test_unknown_field_is_422(server: Server) -> None:
    user = new_user()
    response = publish(server, {"user_id": user, "message": "hi", "mesage": "typo"})
    detail = assert_error(response, 422, "invalid_request")
    assert "mesage" in json.dumps(detail)
    assert_nothing_stored(server, user)


# --- message ------------------------------------------------------------------------------------


def test_missing_message_is_422(server: Server) -> None:
    user = new_user()
    detail = assert_error(publish(server, {"user_id": user}), 422, "invalid_request")
    assert "message" in json.dumps(detail)
    assert_nothing_stored(server, user)


@pytest.mark.parametrize("message", ["", "   ", "\n\t"], ids=["empty", "spaces", "whitespace"])
def test_empty_message_is_422(server: Server, message: str) -> None:
    user = new_user()
    detail = assert_error(
        publish(server, {"user_id": user, "message": message}), 422, "invalid_notification"
    )
    assert field_of(detail) == "message"
    assert_nothing_stored(server, user)


@pytest.mark.parametrize("message", [42, None, ["hi"], {"text": "hi"}])
def test_message_that_is_not_a_string_is_422(server: Server, message: Any) -> None:
    user = new_user()
    assert_error(publish(server, {"user_id": user, "message": message}), 422)
    assert_nothing_stored(server, user)


def test_message_over_the_limit_is_422(server: Server) -> None:
    user = new_user()
    response = publish(server, {"user_id": user, "message": "x" * (MAX_MESSAGE + 1)})
    detail = assert_error(response, 422, "invalid_notification")
    assert field_of(detail) == "message"
    assert "TIDINGS_MAX_MESSAGE_BYTES" in detail["problem"]
    assert_nothing_stored(server, user)


def test_message_limit_counts_bytes_not_characters(server: Server) -> None:
    user = new_user()
    # 101 two-byte characters: within the limit in characters, over it in UTF-8 bytes.
    response = publish(server, {"user_id": user, "message": "é" * (MAX_MESSAGE // 2 + 1)})
    assert field_of(assert_error(response, 422)) == "message"
    assert_nothing_stored(server, user)
    exactly = publish(server, {"user_id": user, "message": "é" * (MAX_MESSAGE // 2)})
    assert exactly.status_code == 201


@pytest.mark.parametrize(
    "field", ["message", "link", "kind", "data-key", "data-value", "idempotency_key"]
)
def test_a_lone_surrogate_in_any_field_is_422(server: Server, field: str) -> None:
    # JSON may escape one ("\\ud800"); UTF-8 and the store cannot hold it.
    user = new_user()
    body = {"user_id": user, "message": "hi", "link": "/x", "kind": "k", "data": {"a": "b"}}
    broken = "broken \ud800"
    if field == "data-key":
        body["data"] = {broken: 1}
    elif field == "data-value":
        body["data"] = {"a": broken}
    else:
        body[field] = broken if field != "link" else f"/{broken}"
    raw = json.dumps(body).encode()
    assert b"\\ud800" in raw
    detail = assert_error(post(server, "/api/notifications", raw=raw), 422)
    assert field.partition("-")[0] in json.dumps(detail)
    assert_nothing_stored(server, user)


def test_a_lone_surrogate_in_a_user_id_is_422(server: Server) -> None:
    raw = json.dumps({"user_id": "u\udc00", "message": "hi"}).encode()
    assert_error(post(server, "/api/notifications", raw=raw), 422, "invalid_notification")
    raw = json.dumps({"user_id": "u\udc00"}).encode()
    assert_error(post(server, "/api/tokens", raw=raw), 422)


def test_a_lone_surrogate_as_session_token_is_401(server: Server) -> None:
    raw = json.dumps({"token": "a.b\ud800.c"}).encode()
    response = HTTP.post(
        f"{server.url}/notifications/session",
        content=raw,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert_error(response, 401, "invalid_token")


# --- link, kind, data -------------------------------------------------------------------------


def test_link_over_the_limit_is_422(server: Server) -> None:
    user = new_user()
    link = "https://example.com/" + "a" * MAX_LINK
    response = publish(server, {"user_id": user, "message": "hi", "link": link})
    detail = assert_error(response, 422, "invalid_notification")
    assert field_of(detail) == "link"
    assert_nothing_stored(server, user)


def assert_link_refused(server: Server, link: str) -> Any:
    """A publish with `link` is 422 on the field `link` and stores nothing; returns the detail."""
    user = new_user()
    response = publish(server, {"user_id": user, "message": "hi", "link": link})
    detail = assert_error(response, 422, "invalid_notification")
    assert field_of(detail) == "link"
    assert_nothing_stored(server, user)
    return detail


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://files.example/x",
        "//evil.example/path",
        "/\\evil.example",
        "https://",
        "http:/x",
        "vbscript:msgbox(1)",
        "https://exa mple.com",
        "relative/path",
    ],
)
def test_link_that_is_not_http_is_422(server: Server, link: str) -> None:
    assert_link_refused(server, link)


@pytest.mark.parametrize(
    "link",
    [
        "http://[x",
        "https://[",
        "http://a]b/",
        "http://[v1.x]/",
        "http://\uff03x/",  # a fullwidth number sign: NFKC turns it into "#"
        "http://a\u2100b/",  # "℀" becomes "a/c" under NFKC
        "http://a:b/",
        "http://a:99999/",
        "http://\u00e9" + "x" * 60 + ".example/",  # an IDNA label over 63 bytes
    ],
    ids=[
        "unclosed-bracket",
        "lone-bracket",
        "closing-bracket",
        "not-ipv6",
        "nfkc-number-sign",
        "nfkc-account-of",
        "port-not-a-number",
        "port-too-large",
        "idna-label-too-long",
    ],
)
def test_link_the_url_parser_rejects_is_422(server: Server, link: str) -> None:
    assert "URL" in assert_link_refused(server, link)["problem"]


@pytest.mark.parametrize(
    "link",
    [
        "https://example.com/a?b=c#d",
        "http://localhost:8000/x",
        "/orders/7",
        "http://[::1]:8000/x",
        "https://m\u00fcnchen.example/",
    ],
)
def test_http_links_and_paths_are_accepted(server: Server, link: str) -> None:
    user = new_user()
    response = publish(server, {"user_id": user, "message": "hi", "link": link})
    assert response.status_code == 201
    assert response.json()["link"] == link


def test_kind_over_the_limit_is_422(server: Server) -> None:
    user = new_user()
    response = publish(server, {"user_id": user, "message": "hi", "kind": "k" * (MAX_KIND + 1)})
    assert field_of(assert_error(response, 422, "invalid_notification")) == "kind"
    assert_nothing_stored(server, user)


def test_data_over_the_limit_is_422(server: Server) -> None:
    user = new_user()
    response = publish(server, {"user_id": user, "message": "hi", "data": {"x": "y" * MAX_DATA}})
    detail = assert_error(response, 422, "invalid_notification")
    assert field_of(detail) == "data"
    assert "TIDINGS_MAX_DATA_BYTES" in detail["problem"]
    assert_nothing_stored(server, user)


@pytest.mark.parametrize("data", [[1, 2], "text", 3])
def test_data_that_is_not_an_object_is_422(server: Server, data: Any) -> None:
    user = new_user()
    assert_error(publish(server, {"user_id": user, "message": "hi", "data": data}), 422)
    assert_nothing_stored(server, user)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_data_with_nan_or_infinity_is_422(server: Server, literal: bytes) -> None:
    # Python's JSON parser takes these; browsers' JSON.parse does not, so they must not be stored.
    user = new_user()
    raw = b'{"user_id": "%s", "message": "hi", "data": {"x": %s}}' % (user.encode(), literal)
    detail = assert_error(post(server, "/api/notifications", raw=raw), 422, "invalid_notification")
    assert field_of(detail) == "data"
    assert_nothing_stored(server, user)


def nested_data(user: str, lists: int) -> bytes:
    """A body whose `data` nests `lists + 1` levels: {"a": [[...[1]...]]}."""
    data = b'{"a":' + b"[" * lists + b"1" + b"]" * lists + b"}"
    return b'{"user_id": "%s", "message": "hi", "data": %s}' % (user.encode(), data)


def test_data_nested_too_deeply_is_422(server: Server) -> None:
    user = new_user()
    response = post(server, "/api/notifications", raw=nested_data(user, 32))
    detail = assert_error(response, 422, "invalid_notification")
    assert field_of(detail) == "data"
    assert_nothing_stored(server, user)
    assert post(server, "/api/notifications", raw=nested_data(user, 31)).status_code == 201
    assert as_user(server, user, "GET", "/notifications").status_code == 200


def test_data_nested_beyond_the_parser_is_400(server: Server) -> None:
    user = new_user()
    response = post(server, "/api/notifications", raw=nested_data(user, 3000))
    assert_error(response, 400)
    assert_nothing_stored(server, user)


# --- user ids -----------------------------------------------------------------------------------


def test_too_many_user_ids_is_422(server: Server) -> None:
    users = [new_user() for _ in range(MAX_USER_IDS + 1)]
    response = publish(server, {"user_ids": users, "message": "hi"})
    detail = assert_error(response, 422, "invalid_notification")
    assert field_of(detail) == "user_ids"
    assert "TIDINGS_MAX_USER_IDS" in detail["problem"]
    assert_nothing_stored(server, *users)


def test_empty_user_ids_is_422(server: Server) -> None:
    response = publish(server, {"user_ids": [], "message": "hi"})
    assert field_of(assert_error(response, 422, "invalid_notification")) == "user_ids"


def test_both_or_neither_user_id_and_user_ids_is_422(server: Server) -> None:
    user = new_user()
    both = publish(server, {"user_id": user, "user_ids": [user], "message": "hi"})
    assert_error(both, 422, "invalid_notification")
    neither = publish(server, {"message": "hi"})
    assert_error(neither, 422, "invalid_notification")
    assert_nothing_stored(server, user)


@pytest.mark.parametrize(
    "bad", ["", "u" * 129, "tab\there", "new\nline", "nul\x00"], ids=lambda v: repr(v)[:12]
)
def test_bad_user_id_is_422(server: Server, bad: str) -> None:
    response = publish(server, {"user_id": bad, "message": "hi"})
    assert field_of(assert_error(response, 422, "invalid_notification")) == "user_id"


def test_one_bad_user_id_among_user_ids_stores_nothing_for_anyone(server: Server) -> None:
    good = new_user()
    response = publish(server, {"user_ids": [good, ""], "message": "hi"})
    assert_error(response, 422, "invalid_notification")
    response = publish(server, {"user_ids": [good, "u" * 129], "message": "hi"})
    assert_error(response, 422, "invalid_notification")
    assert_nothing_stored(server, good)


def test_user_id_of_128_characters_is_fine(server: Server) -> None:
    user = "u" + uuid.uuid4().hex + "x" * (127 - 32)
    assert len(user) == 128
    response = publish(server, {"user_id": user, "message": "hi"})
    assert response.status_code == 201
    assert response.json()["user_id"] == user


@pytest.mark.parametrize("bad", [True, 1.5, None, {"id": 1}], ids=str)
def test_user_id_of_the_wrong_type_is_422(server: Server, bad: Any) -> None:
    assert_error(publish(server, {"user_id": bad, "message": "hi"}), 422)


def test_idempotency_key_empty_or_too_long_is_422(server: Server) -> None:
    user = new_user()
    for key in ("", "k" * 201):
        response = publish(server, {"user_id": user, "message": "hi", "idempotency_key": key})
        assert_error(response, 422, "invalid_request")
    assert_nothing_stored(server, user)


# --- publisher key --------------------------------------------------------------------------


def test_missing_publisher_key_is_401(server: Server) -> None:
    user = new_user()
    body = {"user_id": user, "message": "hi"}
    response = HTTP.post(f"{server.url}/api/notifications", json=body, timeout=10)
    assert_error(response, 401, "unauthorized")
    for header in ("Basic abc", "Bearer", PUBLISHER_KEY, f"Basic {PUBLISHER_KEY}"):
        response = HTTP.post(
            f"{server.url}/api/notifications",
            json=body,
            headers={"authorization": header},
            timeout=10,
        )
        assert_error(response, 401, "unauthorized")
    assert_nothing_stored(server, user)


@pytest.mark.parametrize(
    "key", ["wrong-key", PUBLISHER_KEY + "x", PUBLISHER_KEY[:-1], "é-not-ascii"]
)
def test_wrong_publisher_key_is_403(server: Server, key: str) -> None:
    user = new_user()
    response = HTTP.post(
        f"{server.url}/api/notifications",
        json={"user_id": user, "message": "hi"},
        headers={b"authorization": f"Bearer {key}".encode()},
        timeout=10,
    )
    assert_error(response, 403, "forbidden")
    assert_nothing_stored(server, user)


def test_a_user_token_is_not_a_publisher_key(server: Server) -> None:
    user = new_user()
    response = post(
        server, "/api/notifications", {"user_id": user, "message": "hi"}, key=make_token(user)
    )
    assert_error(response, 403)
    assert_nothing_stored(server, user)


def test_the_publisher_key_is_checked_before_the_body(server: Server) -> None:
    # An unauthenticated caller learns nothing about what a valid body looks like.
    response = HTTP.post(
        f"{server.url}/api/notifications",
        content=b"{",
        headers={"authorization": "Bearer wrong", "content-type": "application/json"},
        timeout=10,
    )
    assert_error(response, 403)


# --- user tokens -------------------------------------------------------------------------------


def expired_token(user: str) -> str:
    return make_token(user, ttl=-60)


def badly_signed_token(user: str) -> str:
    return make_token(user, secret="not-the-secret-0123456789-abcdefghijk")


def token_without_sub(user: str) -> str:
    return _encode({"exp": 4102444800, "name": user})


def token_without_exp(user: str) -> str:
    return _encode({"sub": user})


def token_with_alg_none(user: str) -> str:
    import base64

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': user, 'exp': 4102444800})}."


def token_with_a_long_sub(user: str) -> str:
    return make_token(user + "x" * 129)


def token_with_an_object_sub(user: str) -> str:
    return make_token(user, sub={"id": user})


def garbage_token(user: str) -> str:
    return "not.a.jwt"


def token_with_a_non_numeric_exp(user: str) -> str:
    return _encode({"sub": user, "exp": "tomorrow"})


def token_with_another_algorithm(user: str) -> str:
    import warnings

    import jwt

    from tests.support import SECRET

    with warnings.catch_warnings():
        # The server's secret is short for HS512; the token only needs to be well formed.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode({"sub": user, "exp": 4102444800}, SECRET, algorithm="HS512")


def _encode(claims: dict[str, Any]) -> str:
    import jwt

    from tests.support import SECRET

    return jwt.encode(claims, SECRET, algorithm="HS256")


BAD_TOKENS = {
    "expired": (expired_token, "token_expired"),
    "badly-signed": (badly_signed_token, "invalid_token"),
    "without-sub": (token_without_sub, "invalid_token"),
    "without-exp": (token_without_exp, "invalid_token"),
    "alg-none": (token_with_alg_none, "invalid_token"),
    "sub-too-long": (token_with_a_long_sub, "invalid_token"),
    "sub-object": (token_with_an_object_sub, "invalid_token"),
    "garbage": (garbage_token, "invalid_token"),
    "exp-not-a-number": (token_with_a_non_numeric_exp, "invalid_token"),
    "hs512": (token_with_another_algorithm, "invalid_token"),
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_bad_user_token_is_401_on_every_user_route(server: Server, kind: str) -> None:
    user = new_user()
    server.publish(user, "mine")
    make, error = BAD_TOKENS[kind]
    token = make(user)
    headers = {"authorization": f"Bearer {token}"}
    for method, path, body in (
        ("GET", "/notifications", None),
        ("GET", "/notifications/unread-count", None),
        ("POST", "/notifications/read", {"up_to": 1}),
        ("DELETE", "/notifications/1", None),
        ("POST", "/notifications/session", {"token": token}),
    ):
        response = HTTP.request(
            method, f"{server.url}{path}", json=body, headers=headers, timeout=10
        )
        assert_error(response, 401, error)
        assert "set-cookie" not in response.headers
    # The same token as a cookie is no better.
    response = HTTP.get(
        f"{server.url}/notifications", headers={"cookie": f"tidings_session={token}"}, timeout=10
    )
    assert_error(response, 401, error)
    # Nothing was read or deleted.
    assert as_user(server, user, "GET", "/notifications/unread-count").json() == {
        "unread": 1,
        "unseen": 1,
        "last_seq": 1,
        "categories": {},
    }


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_user_token_is_401_on_the_stream(server: Server, kind: str) -> None:
    make, error = BAD_TOKENS[kind]
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            f"{server.url}/notifications/stream",
            headers={"authorization": f"Bearer {make(new_user())}"},
        )
    assert_error(response, 401, error)


def test_a_token_error_names_the_problem(server: Server) -> None:
    response = HTTP.get(
        f"{server.url}/notifications",
        headers={"authorization": f"Bearer {token_without_sub('u')}"},
        timeout=10,
    )
    assert "sub" in assert_error(response, 401)
    response = HTTP.get(
        f"{server.url}/notifications",
        headers={"authorization": f"Bearer {token_without_exp('u')}"},
        timeout=10,
    )
    assert "exp" in assert_error(response, 401)


async def test_a_token_that_expires_in_ten_to_the_400_works(server: Server) -> None:
    # Nonsense, but valid: it must not crash the server on REST or on the stream.
    user = new_user()
    server.publish(user, "one")
    token = _encode({"sub": user, "exp": 10**400})
    async with httpx.AsyncClient(timeout=10) as client:
        listed = await client.get(
            f"{server.url}/notifications", headers={"authorization": f"Bearer {token}"}
        )
        assert listed.status_code == 200
        session = await client.post(f"{server.url}/notifications/session", json={"token": token})
        assert session.status_code == 200
    async with open_stream(server.url, token, last_event_id="0") as stream:
        assert stream.status == 200
        [got] = await stream.notifications(1)
        assert got["message"] == "one"


# --- ids that are not the caller's -----------------------------------------------------------


def test_deleting_another_users_notification_is_404(server: Server) -> None:
    owner, other = new_user(), new_user()
    server.publish(owner, "the owner's")
    assert_error(as_user(server, other, "DELETE", "/notifications/1"), 404, "not_found")
    assert [n["message"] for n in as_user(server, owner, "GET", "/notifications").json()] == [
        "the owner's"
    ]
    assert_nothing_stored(server, other)


def test_deleting_a_nonexistent_notification_is_404(server: Server) -> None:
    user = new_user()
    server.publish(user, "one")
    for seq in ("2", "0", "-1", "99999"):
        assert_error(as_user(server, user, "DELETE", f"/notifications/{seq}"), 404, "not_found")
    assert len(as_user(server, user, "GET", "/notifications").json()) == 1


def test_marking_another_users_notification_read_changes_nothing(server: Server) -> None:
    owner, other = new_user(), new_user()
    server.publish(owner, "the owner's")
    response = as_user(server, other, "POST", "/notifications/read", json={"ids": [1]})
    assert response.status_code == 200
    assert response.json() == {"unread": 0, "ids": []}
    assert as_user(server, owner, "GET", "/notifications/unread-count").json() == {
        "unread": 1,
        "unseen": 1,
        "last_seq": 1,
        "categories": {},
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/notifications/99999999999999999999999", None),
        ("GET", "/notifications?before=99999999999999999999999", None),
        ("POST", "/notifications/read", {"ids": [99999999999999999999999]}),
        ("POST", "/notifications/read", {"up_to": 99999999999999999999999}),
    ],
    ids=["delete", "before", "ids", "up_to"],
)
def test_a_seq_too_large_for_the_store_is_a_client_error(
    server: Server, method: str, path: str, body: Any
) -> None:
    user = new_user()
    server.publish(user, "one")
    response = as_user(server, user, method, path, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert_error(response, response.status_code)
    assert as_user(server, user, "GET", "/notifications/unread-count").json()["unread"] == 1


# --- a message that looks like SSE framing ----------------------------------------------------

TRICKY = (
    "line one\nevent: x\ndata: y\nid: 99\n\nretry: 1\r\nevent: evil\rdata: injected\r\n\r\n"
    ": comment\n"
    "event: new-notification\ndata: {}\n\nend"
)


async def test_a_message_with_sse_lines_arrives_intact_as_one_event(server: Server) -> None:
    user = new_user()
    server.publish(user, "before")
    async with open_stream(server.url, make_token(user)) as stream:
        response = publish(server, {"user_id": user, "message": TRICKY, "data": {"note": TRICKY}})
        assert response.status_code == 201
        assert response.json()["message"] == TRICKY
        event = await stream.next()
        assert event.event == "new-notification"
        assert event.id == "2"
        body = event.json()
        assert body["id"] == 2
        assert body["message"] == TRICKY
        assert body["data"] == {"note": TRICKY}
        server.publish(user, "after")
        following = await stream.next()
        assert (following.event, following.id, following.json()["message"]) == (
            "new-notification",
            "3",
            "after",
        )
        # "after" is the sentinel: anything the tricky message could inject would come before.
    assert as_user(server, user, "GET", "/notifications").json()[1]["message"] == TRICKY


@pytest.mark.parametrize(
    "message",
    ["a\u2028b\u2029c", "next\x85line", "tab\x0bform\x0cfeed\x1cfs"],
    ids=["line-separators", "nel", "other-breaks"],
)
async def test_a_message_with_unicode_line_breaks_arrives_intact(
    server: Server, message: str
) -> None:
    # Python clients (httpx-sse and others) split lines like str.splitlines(): these characters
    # must not appear raw in a data line either.
    user = new_user()
    async with open_stream(server.url, make_token(user)) as stream:
        assert publish(server, {"user_id": user, "message": message}).status_code == 201
        event = await stream.next()
        assert event.event == "new-notification"
        assert event.json()["message"] == message


@pytest.mark.parametrize("field", ["message", "kind", "idempotency_key"])
def test_a_nul_character_is_422_on_every_store(server: Server, field: str) -> None:
    # PostgreSQL text cannot hold NUL: refused everywhere, so every store behaves alike.
    user = new_user()
    body = {"user_id": user, "message": "hi", field: "nul\x00byte"}
    response = publish(server, body)
    assert assert_error(response, 422, "invalid_notification")["field"] == field
    assert_nothing_stored(server, user)


def parse_frames(raw: bytes) -> list[list[str]]:
    """Split an SSE byte stream into its blocks of lines, by the spec's line endings."""
    text = raw.decode("utf-8")
    lines = re.split(r"\r\n|\r|\n", text)
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line == "":
            if blocks[-1]:
                blocks.append([])
        else:
            blocks[-1].append(line)
    return [b for b in blocks if b]


async def test_the_raw_stream_bytes_carry_the_message_as_one_data_line(server: Server) -> None:
    user = new_user()
    headers = {"authorization": f"Bearer {make_token(user)}"}
    raw = b""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", f"{server.url}/notifications/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        chunks = response.aiter_raw()
        raw += await anext(chunks)  # the retry: line, so the stream is open
        async with httpx.AsyncClient(timeout=10) as publisher:
            stored = await publisher.post(
                f"{server.url}/api/notifications",
                json={"user_id": user, "message": TRICKY},
                headers={"authorization": f"Bearer {PUBLISHER_KEY}"},
            )
            assert stored.status_code == 201
            await publisher.post(
                f"{server.url}/api/notifications",
                json={"user_id": user, "message": "sentinel"},
                headers={"authorization": f"Bearer {PUBLISHER_KEY}"},
            )
        while b"sentinel" not in raw:
            raw += await anext(chunks)
    assert b"\r" not in raw
    blocks = [b for b in parse_frames(raw) if not b[0].startswith("retry:")]
    blocks = [b for b in blocks if b[0] != "event: ping"]
    assert len(blocks) == 2, blocks
    first, second = blocks
    assert first[:2] == ["id: 1", "event: new-notification"]
    assert len(first) == 3
    assert first[2].startswith("data: ")
    assert json.loads(first[2][len("data: ") :])["message"] == TRICKY
    assert second[:2] == ["id: 2", "event: new-notification"]
    # No line anywhere, other than the two frames' own, names an event or an id.
    all_lines = [line for block in blocks for line in block]
    assert [line for line in all_lines if line.startswith("event:")] == [
        "event: new-notification"
    ] * 2
    assert [line for line in all_lines if line.startswith("id:")] == ["id: 1", "id: 2"]


# --- an oversized body ------------------------------------------------------------------------


def test_an_oversized_body_is_413(server: Server) -> None:
    user = new_user()
    body = {"user_id": user, "message": "hi", "data": {"blob": "x" * MAX_BODY}}
    assert_error(publish(server, body), 413, "too_large")
    assert_nothing_stored(server, user)


def test_an_oversized_chunked_body_without_length_is_413(server: Server) -> None:
    user = new_user()
    payload = json.dumps({"user_id": user, "message": "hi", "data": {"blob": "x" * MAX_BODY}})

    def chunks() -> Iterator[bytes]:
        data = payload.encode()
        for start in range(0, len(data), 1024):
            yield data[start : start + 1024]

    response = HTTP.post(
        f"{server.url}/api/notifications",
        content=chunks(),
        headers={"authorization": f"Bearer {PUBLISHER_KEY}", "content-type": "application/json"},
        timeout=10,
    )
    assert_error(response, 413, "too_large")
    assert_nothing_stored(server, user)


def test_an_oversized_body_on_a_user_route_is_413(server: Server) -> None:
    user = new_user()
    server.publish(user, "one")
    response = as_user(
        server, user, "POST", "/notifications/read", json={"ids": list(range(1, 3000))}
    )
    assert_error(response, 413, "too_large")
    assert as_user(server, user, "GET", "/notifications/unread-count").json()["unread"] == 1


# --- what Schemathesis found where the answers differed from the schema (issue 22, item 6) ----


def test_an_empty_deliver_at_publishes_now_as_the_schema_allows(server: Server) -> None:
    response = server.publish(
        "schema-empty-deliver", "now", deliver_at="", expires_at="2020-01-01T00:00:00Z"
    )
    assert response.status_code == 201, response.text
    assert response.json()["expires_at"] == "2020-01-01T00:00:00.000Z"


def test_a_muted_category_is_limited_in_characters_as_the_schema_says(server: Server) -> None:
    headers = {"authorization": f"Bearer {make_token('schema-muted')}"}
    url = f"{server.url}/notifications/preferences"
    schema = HTTP.get(f"{server.url}/openapi.json", timeout=10).json()
    items = schema["components"]["schemas"]["PreferencesIn"]["properties"]["muted_categories"]
    limit = items["items"]["maxLength"]
    # As many characters as maxLength, more bytes than that: the schema allows it.
    wide = "é" * limit
    answer = HTTP.put(url, json={"muted_categories": [wide]}, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["muted_categories"] == [wide]
    over = HTTP.put(url, json={"muted_categories": ["x" * (limit + 1)]}, headers=headers)
    assert over.status_code == 422
    assert f"at most {limit} characters" in over.json()["detail"]["problem"]


def test_a_wrong_bearer_on_get_user_is_the_documented_403(server: Server) -> None:
    schema = HTTP.get(f"{server.url}/openapi.json", timeout=10).json()
    assert "403" in schema["paths"]["/api/users/{user_id}"]["get"]["responses"]
    answer = HTTP.get(
        f"{server.url}/api/users/7", headers={"authorization": "Bearer not-a-key"}, timeout=10
    )
    assert answer.status_code == 403
