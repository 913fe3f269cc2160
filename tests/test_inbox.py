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
    "snoozed_until": None,
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


# --- seen, archive, filters, groups, counts ------------------------------------------------------


def as_user(server: Server, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {make_token(user)}"}
    return HTTP.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


def ids_of(server: Server, user: str, query: str = "") -> list[int]:
    response = as_user(server, user, "GET", f"/notifications{query}")
    assert response.status_code == 200, response.text
    return [n["id"] for n in response.json()]


def counts(server: Server, user: str) -> dict[str, Any]:
    response = as_user(server, user, "GET", "/notifications/unread-count")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_seen_is_told_to_every_stream_and_leaves_newer_ones_unseen(server: Server) -> None:
    user = new_user()
    for i in range(3):
        assert server.publish(user, f"n{i}", category="billing").status_code == 201
    token = make_token(user)
    async with open_stream(server.url, token) as one, open_stream(server.url, token) as two:
        # Published after the bell showed seq 2: seen up to 2 leaves it unseen.
        response = as_user(server, user, "POST", "/notifications/seen", json={"up_to": 2})
        assert response.status_code == 200, response.text
        assert response.json() == {"up_to": 2, "unseen": 1}
        for stream in (one, two):
            event = await stream.next()
            assert (event.event, event.json()) == ("notifications-seen", {"up_to": 2, "unseen": 1})
    body = counts(server, user)
    assert (body["unread"], body["unseen"]) == (3, 1)
    assert body["categories"] == {"billing": {"unread": 3, "unseen": 1}}
    listed_seen = [n["seen_at"] is not None for n in listed(server, user)]
    assert listed_seen == [False, True, True]


async def test_archive_and_unarchive_move_notifications_and_tell_every_stream(
    server: Server,
) -> None:
    user = new_user()
    for i in range(3):
        server.publish(user, f"n{i}", category="billing" if i else "mentions")
    token = make_token(user)
    async with open_stream(server.url, token) as one, open_stream(server.url, token) as two:
        response = as_user(server, user, "POST", "/notifications/archive", json={"ids": [1, 2, 99]})
        assert response.status_code == 200, response.text
        assert response.json() == {"ids": [1, 2], "unread": 1, "unseen": 1}
        back = as_user(server, user, "POST", "/notifications/unarchive", json={"ids": [2]})
        assert back.json() == {"ids": [2], "unread": 2, "unseen": 2}
        for stream in (one, two):
            first, second = await stream.next(), await stream.next()
            assert (first.event, first.json()) == (
                "notifications-archived",
                {"ids": [1, 2], "unread": 1, "unseen": 1},
            )
            assert (second.event, second.json()) == (
                "notifications-unarchived",
                {"ids": [2], "unread": 2, "unseen": 2},
            )
    assert ids_of(server, user) == [3, 2]
    assert ids_of(server, user, "?archived=1") == [1]
    assert ids_of(server, user, "?category=mentions") == []
    assert ids_of(server, user, "?category=mentions&archived=1") == [1]
    assert ids_of(server, user, "?category=billing") == [3, 2]
    assert counts(server, user)["categories"] == {"billing": {"unread": 2, "unseen": 2}}
    # Another user's ids change nothing of this user's.
    other = as_user(server, new_user(), "POST", "/notifications/archive", json={"ids": [3]})
    assert other.json() == {"ids": [], "unread": 0, "unseen": 0}
    assert ids_of(server, user) == [3, 2]


def test_grouped_folds_unread_ones_into_the_newest_across_pages(server: Server) -> None:
    user = new_user()
    # 1 a, 2 b, 3 a, 4 (none), 5 a, 6 b, 7 a (read)
    for group in ("a", "b", "a", None, "a", "b", "a"):
        fields = {} if group is None else {"group": group}
        assert server.publish(user, f"group {group}", **fields).status_code == 201
    as_user(server, user, "POST", "/notifications/read", json={"ids": [7]})
    first = as_user(server, user, "GET", "/notifications?grouped=1&limit=2")
    assert first.status_code == 200, first.text
    # The read one stands alone; "b" folds 6 and 2, "a" folds 5, 3 and 1.
    assert [(n["id"], n["group_count"]) for n in first.json()] == [(7, 1), (6, 2)]
    link = first.headers["link"]
    assert "grouped=1" in link
    path = link[1 : link.index(">")]
    second = as_user(server, user, "GET", path)
    assert [(n["id"], n["group_count"]) for n in second.json()] == [(5, 3), (4, 1)]
    assert "link" not in second.headers
    plain = listed(server, user)
    assert [n["id"] for n in plain] == [7, 6, 5, 4, 3, 2, 1]
    assert "group_count" not in plain[0]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/notifications/seen", {}),
        ("/notifications/seen", {"up_to": "3"}),
        ("/notifications/seen", {"up_to": 3, "ids": [1]}),
        ("/notifications/archive", {}),
        ("/notifications/archive", {"ids": "1"}),
        ("/notifications/unarchive", {"ids": [1.5]}),
    ],
)
def test_a_malformed_seen_or_archive_body_is_refused(
    server: Server, path: str, body: dict[str, Any]
) -> None:
    response = as_user(server, new_user(), "POST", path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


def test_a_category_filter_with_nul_is_refused(server: Server) -> None:
    response = as_user(server, new_user(), "GET", "/notifications?category=a%00b")
    assert response.status_code == 422, response.text


# --- preferences ---------------------------------------------------------------------------------

DEFAULTS = {"muted_categories": [], "channels": {"push": True, "email": True}}


def set_preferences(server: Server, user: str, body: dict[str, Any]) -> httpx.Response:
    return as_user(server, user, "PUT", "/notifications/preferences", json=body)


def test_preferences_start_as_defaults_and_are_replaced_whole(server: Server) -> None:
    user = new_user()
    assert as_user(server, user, "GET", "/notifications/preferences").json() == DEFAULTS
    body = {"muted_categories": ["billing", "billing", "news"], "channels": {"email": False}}
    response = set_preferences(server, user, body)
    assert response.status_code == 200, response.text
    stored = {"muted_categories": ["billing", "news"], "channels": {"push": True, "email": False}}
    assert response.json() == stored
    assert as_user(server, user, "GET", "/notifications/preferences").json() == stored
    assert set_preferences(server, user, {}).json() == DEFAULTS


async def test_a_muted_category_is_not_stored_and_the_publish_answer_says_so(
    server: Server,
) -> None:
    muting, other = new_user(), new_user()
    assert set_preferences(server, muting, {"muted_categories": ["news"]}).status_code == 200
    async with open_stream(server.url, make_token(muting)) as stream:
        alone = server.publish(muting, "weekly news", category="news")
        assert alone.status_code == 200, alone.text
        assert alone.json() == {"skipped": [{"user_id": muting, "reason": "muted"}]}
        both = server.publish([muting, other], "more news", category="news")
        assert both.status_code == 201, both.text
        assert [n["user_id"] for n in both.json()] == [other]
        assert both.headers["tidings-skipped"] == "1"
        # Other categories, and none, still arrive: the next event is this one.
        billed = server.publish(muting, "invoice", category="billing")
        assert billed.status_code == 201
        [live] = await stream.notifications(1)
        assert live == billed.json()
    assert ids_of(server, muting) == [1]
    assert ids_of(server, other) == [1]


def test_a_retry_after_muting_replays_what_the_first_publish_stored(server: Server) -> None:
    first_user, second_user = new_user(), new_user()
    key = f"k-{uuid.uuid4().hex}"
    first = server.publish([first_user, second_user], "news", category="news", idempotency_key=key)
    assert first.status_code == 201
    set_preferences(server, second_user, {"muted_categories": ["news"]})
    again = server.publish([first_user, second_user], "news", category="news", idempotency_key=key)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"muted_categories": [""]}, "muted_categories[0]"),
        ({"muted_categories": ["ok", "x" * 11]}, "muted_categories[1]"),
        ({"muted_categories": ["a\tb"]}, "muted_categories[0]"),
    ],
)
def test_a_bad_muted_category_is_refused(server: Server, body: dict[str, Any], field: str) -> None:
    response = set_preferences(server, new_user(), body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_preferences"
    assert response.json()["detail"]["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        {"muted_categories": "news"},
        {"channels": {"push": "yes"}},
        {"channels": {"sms": True}},
        {"mute": ["news"]},
    ],
)
def test_a_malformed_preferences_body_is_refused(server: Server, body: dict[str, Any]) -> None:
    response = set_preferences(server, new_user(), body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


def test_an_expired_notification_is_gone_from_the_list_and_the_counts(server: Server) -> None:
    user = new_user()
    assert server.publish(user, "lasting").status_code == 201
    past = server.publish(user, "over", expires_at="2020-01-01T00:00:00Z")
    assert past.status_code == 201, past.text
    assert past.json()["expires_at"] == "2020-01-01T00:00:00.000Z"
    assert ids_of(server, user) == [1]
    assert (counts(server, user)["unread"], counts(server, user)["unseen"]) == (1, 1)
