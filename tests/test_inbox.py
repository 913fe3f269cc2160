"""The inbox, as a publisher and a user see it against a real server: the inbox fields of a
notification (category, actor, actions, group, expiry), their validation, and how they come back
from the publish answer, the list and the stream."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import HTTP, Server, make_token, open_stream, serving

pytestmark = pytest.mark.anyio

LIMITS = {
    "TIDINGS_MAX_CATEGORY_BYTES": "10",
    "TIDINGS_MAX_GROUP_BYTES": "12",
    "TIDINGS_MAX_ACTOR_NAME_BYTES": "8",
    "TIDINGS_MAX_ACTION_LABEL_BYTES": "6",
    "TIDINGS_MAX_LINK_BYTES": "40",
}

INBOX = {
    "category": "billing",
    "actor": {"name": "Ada", "avatar_url": "https://cdn.example/a.png"},
    "actions": [
        {"label": "Pay", "url": "https://shop.example/pay"},
        {"label": "Later", "url": "/invoices/7"},
    ],
    "group": "invoice-7",
    "expires_at": "2030-01-02T03:04:05.678+01:00",
}
# What the API answers for INBOX: the time in UTC, to the millisecond.
INBOX_OUT = {**INBOX, "expires_at": "2030-01-02T02:04:05.678Z"}
UNSET: dict[str, Any] = {
    "category": None,
    "actor": None,
    "actions": [],
    "group": None,
    "expires_at": None,
    "seen_at": None,
    "archived_at": None,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("inbox"), LIMITS) as started:
        yield started


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def listed(server: Server, user: str) -> list[dict[str, Any]]:
    response = HTTP.get(
        f"{server.url}/notifications",
        headers={"authorization": f"Bearer {make_token(user)}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def refused(response: httpx.Response, field: str, problem: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_notification", body
    assert body["detail"]["field"] == field, body
    assert problem in body["detail"]["problem"], body


async def test_the_inbox_fields_come_back_from_the_publish_the_list_and_the_stream(
    server: Server,
) -> None:
    user = new_user()
    async with open_stream(server.url, make_token(user)) as stream:
        response = server.publish(user, "Invoice 7 is due", **INBOX)
        assert response.status_code == 201, response.text
        answer = response.json()
        [live] = await stream.notifications(1)
    assert {k: answer[k] for k in INBOX_OUT} == INBOX_OUT
    assert (answer["seen_at"], answer["archived_at"], answer["read_at"]) == (None, None, None)
    assert live == answer
    [stored] = listed(server, user)
    assert stored == answer


async def test_a_notification_without_them_has_nulls_and_no_actions(server: Server) -> None:
    user = new_user()
    async with open_stream(server.url, make_token(user)) as stream:
        answer = server.publish(user, "plain").json()
        [live] = await stream.notifications(1)
    assert {k: answer[k] for k in UNSET} == UNSET
    assert live == answer == listed(server, user)[0]


def test_empty_texts_mean_none(server: Server) -> None:
    user = new_user()
    answer = server.publish(
        user, "x", category="", group="", actor={"name": "Bo", "avatar_url": ""}, actions=[]
    ).json()
    assert (answer["category"], answer["group"], answer["actions"]) == (None, None, [])
    assert answer["actor"] == {"name": "Bo", "avatar_url": None}


def test_an_idempotency_key_covers_the_inbox_fields(server: Server) -> None:
    user = new_user()
    key = f"k-{uuid.uuid4().hex}"
    first = server.publish(user, "hi", category="billing", idempotency_key=key)
    assert first.status_code == 201
    again = server.publish(user, "hi", category="billing", idempotency_key=key)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = server.publish(user, "hi", category="mentions", idempotency_key=key)
    assert other.status_code == 409, other.text
    assert other.json()["error"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"category": "x" * 11}, "category", "at most 10 bytes (TIDINGS_MAX_CATEGORY_BYTES)"),
        ({"category": "é" * 6}, "category", "at most 10 bytes"),
        ({"category": "   "}, "category", "must not be blank"),
        ({"category": "a\nb"}, "category", "control characters"),
        ({"group": "g" * 13}, "group", "at most 12 bytes (TIDINGS_MAX_GROUP_BYTES)"),
        ({"group": "a\x00b"}, "group", "control characters"),
        ({"actor": {"name": ""}}, "actor.name", "must not be empty"),
        ({"actor": {"name": "n" * 9}}, "actor.name", "TIDINGS_MAX_ACTOR_NAME_BYTES"),
        (
            {"actor": {"name": "Ada", "avatar_url": "javascript:alert(1)"}},
            "actor.avatar_url",
            "must be an http(s) URL or a path starting with /",
        ),
        (
            {"actor": {"name": "Ada", "avatar_url": "//evil.example/a.png"}},
            "actor.avatar_url",
            "must be an http(s) URL",
        ),
        (
            {"actor": {"name": "Ada", "avatar_url": "https://cdn.example/" + "a" * 30}},
            "actor.avatar_url",
            "at most 40 bytes (TIDINGS_MAX_LINK_BYTES)",
        ),
        (
            {"actions": [{"label": "a", "url": "/a"}] * 3},
            "actions",
            "at most 2 actions",
        ),
        (
            {"actions": [{"label": "Ok", "url": "/a"}, {"label": "Go", "url": "http://[x"}]},
            "actions[1].url",
            "its host does not parse",
        ),
        ({"actions": [{"label": "Ok", "url": ""}]}, "actions[0].url", "must not be empty"),
        ({"actions": [{"label": "", "url": "/a"}]}, "actions[0].label", "must not be empty"),
        (
            {"actions": [{"label": "Approve", "url": "/a"}]},
            "actions[0].label",
            "at most 6 bytes (TIDINGS_MAX_ACTION_LABEL_BYTES)",
        ),
        ({"expires_at": "tomorrow"}, "expires_at", "ISO 8601 time with an offset"),
        ({"expires_at": "2030-01-02T03:04:05"}, "expires_at", "with an offset"),
        ({"expires_at": "2030-02-30T00:00:00Z"}, "expires_at", "a real date"),
        ({"expires_at": "2030-01-02T03:04:05+24:00"}, "expires_at", "a real offset"),
    ],
)
def test_a_bad_inbox_field_is_refused_with_its_name(
    server: Server, fields: dict[str, Any], field: str, problem: str
) -> None:
    refused(server.publish(new_user(), "x", **fields), field, problem)


@pytest.mark.parametrize(
    "fields",
    [
        {"actor": {"name": "Ada", "colour": "red"}},
        {"actions": [{"label": "Ok"}]},
        {"actor": "Ada"},
        {"category": 7},
        {"expires_at": 1_900_000_000},
    ],
)
def test_a_malformed_inbox_field_is_refused(server: Server, fields: dict[str, Any]) -> None:
    response = server.publish(new_user(), "x", **fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"] in ("invalid_notification", "invalid_request"), response.text


def test_the_schema_states_the_inbox_limits(server: Server) -> None:
    schema = HTTP.get(f"{server.url}/openapi.json", timeout=10).json()["components"]["schemas"]
    props = schema["PublishIn"]["properties"]
    assert props["category"]["anyOf"][0]["format"] == "utf8-max-10"
    assert props["group"]["anyOf"][0]["format"] == "utf8-max-12"
    assert props["actions"]["anyOf"][0]["maxItems"] == 2
    assert props["expires_at"]["anyOf"][0]["format"] == "date-time"
    assert schema["ActorIn"]["properties"]["name"]["format"] == "utf8-max-8"
    assert schema["ActionIn"]["properties"]["label"]["format"] == "utf8-max-6"
    assert schema["ActionIn"]["properties"]["url"]["format"] == "utf8-max-40"
