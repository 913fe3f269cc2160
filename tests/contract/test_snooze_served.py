"""Snooze end to end once per store: `tidings serve` on SQLite, PostgreSQL and MongoDB, real
HTTP and SSE. A notification is snoozed a few seconds ahead; each test waits for the event,
not for the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import HTTP, Server, make_token, open_stream, publish_sentinel

pytestmark = pytest.mark.anyio

AHEAD = timedelta(seconds=2)
# Generous: the loop sleeps until the snooze is due, but the machine may be busy.
ARRIVAL = 20.0
FOREIGN_ORIGIN = "https://evil.example"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post(server: Server, user: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return HTTP.post(
        f"{server.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {make_token(user)}"},
        timeout=10,
    )


def get(server: Server, user: str, path: str) -> Any:
    response = HTTP.get(
        f"{server.url}{path}",
        headers={"authorization": f"Bearer {make_token(user)}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_snoozed_notification_leaves_and_comes_back_live_once_when_due(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url)
    for i in range(3):
        assert server.publish("alice", f"m{i + 1}", group="t").status_code == 201
    assert server.publish("bob", "bob's").status_code == 201
    assert post(server, "alice", "/notifications/read", {"ids": [2]}).status_code == 200
    async with open_stream(server.url, make_token("alice")) as stream:
        until = datetime.now(UTC) + AHEAD
        # Bob's seq 1 is not alice's to snooze; alice's 1 is hers, as are 2 and 3.
        answer = post(
            server, "alice", "/notifications/snooze", {"ids": [2, 3], "until": iso(until)}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ids": [2, 3], "until": iso(until), "unread": 1, "unseen": 1}
        event = await stream.next()
        assert event.event == "notifications-snoozed"
        assert event.json() == answer.json()
        # Gone from the list, the counts and the folded list; there with ?snoozed=1.
        assert [n["id"] for n in get(server, "alice", "/notifications")] == [1]
        assert [n["id"] for n in get(server, "alice", "/notifications?grouped=1")] == [1]
        snoozed = get(server, "alice", "/notifications?snoozed=1")
        assert [(n["id"], n["snoozed_until"]) for n in snoozed] == [
            (3, iso(until)),
            (2, iso(until)),
        ]
        counts = get(server, "alice", "/notifications/unread-count")
        assert (counts["unread"], counts["unseen"], counts["last_seq"]) == (1, 1, 3)
        # Bob's list is his own, untouched.
        assert [n["id"] for n in get(server, "bob", "/notifications")] == [1]

        event = await stream.next(timeout=ARRIVAL)
        back = datetime.now(UTC)
        assert event.event == "notifications-unsnoozed"
        body = event.json()
        assert [
            (n["id"], n["message"], n["read_at"], n["seen_at"]) for n in body["notifications"]
        ] == [
            (2, "m2", None, None),
            (3, "m3", None, None),
        ]
        assert all(n["snoozed_until"] is None for n in body["notifications"])
        assert (body["unread"], body["unseen"]) == (3, 3)
        # Once: the next event on the stream is the sentinel published after it.
        await publish_sentinel(server, "alice", stream)
    assert back >= until
    assert [n["id"] for n in get(server, "alice", "/notifications")] == [4, 3, 2, 1]
    assert get(server, "alice", "/notifications?snoozed=1") == []


async def test_unsnooze_brings_them_back_now_and_only_the_callers_own(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url)
    assert server.publish(["alice", "bob"], "hello").status_code == 201
    until = iso(datetime.now(UTC) + timedelta(days=1))
    for user in ("alice", "bob"):
        assert post(server, user, "/notifications/snooze", {"ids": [1], "until": until}).json()[
            "ids"
        ] == [1]
    async with open_stream(server.url, make_token("alice")) as stream:
        answer = post(server, "alice", "/notifications/unsnooze", {"ids": [1, 7]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [n["id"] for n in body["notifications"]] == [1]
        assert (body["unread"], body["unseen"]) == (1, 1)
        event = await stream.next()
        assert event.event == "notifications-unsnoozed"
        assert event.json() == body
        # Again: nothing snoozed any more, nothing sent.
        again = post(server, "alice", "/notifications/unsnooze", {"ids": [1]}).json()
        assert again == {"notifications": [], "unread": 1, "unseen": 1}
        await publish_sentinel(server, "alice", stream)
    # Bob's stays snoozed: alice's ids are hers only.
    assert get(server, "bob", "/notifications") == []
    assert [n["id"] for n in get(server, "bob", "/notifications?snoozed=1")] == [1]


async def test_a_snooze_with_a_bad_until_is_422_naming_the_field(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url, TIDINGS_MAX_SCHEDULE_DAYS="2")
    assert server.publish("alice", "hello").status_code == 201
    now = datetime.now(UTC)
    cases = {
        iso(now - timedelta(minutes=1)): "must be in the future",
        iso(now + timedelta(days=3)): "at most 2 days ahead (TIDINGS_MAX_SCHEDULE_DAYS)",
        "2026-12-01T09:00:00": "with an offset",
        "2027-02-30T09:00:00Z": "a real date",
        "tomorrow": "ISO 8601",
    }
    for until, problem in cases.items():
        answer = post(server, "alice", "/notifications/snooze", {"ids": [1], "until": until})
        assert answer.status_code == 422, (until, answer.text)
        body = answer.json()
        assert body["error"] == "invalid_request"
        assert body["detail"]["field"] == "until"
        assert problem in body["detail"]["problem"], (until, body)
    missing = post(server, "alice", "/notifications/snooze", {"ids": [1]})
    assert missing.status_code == 422
    assert get(server, "alice", "/notifications/unread-count")["unread"] == 1


async def test_a_cookie_snooze_from_a_foreign_origin_is_refused(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url)
    assert server.publish("alice", "hello").status_code == 201
    cookie = {"cookie": f"tidings_session={make_token('alice')}"}
    until = iso(datetime.now(UTC) + timedelta(hours=1))
    for path, body in (
        ("/notifications/snooze", {"ids": [1], "until": until}),
        ("/notifications/unsnooze", {"ids": [1]}),
    ):
        foreign = HTTP.post(
            f"{server.url}{path}", json=body, headers={**cookie, "origin": FOREIGN_ORIGIN}
        )
        assert foreign.status_code == 403, foreign.text
        assert foreign.json()["error"] == "forbidden_origin"
        form = HTTP.post(
            f"{server.url}{path}",
            content=b"ids=1",
            headers={**cookie, "content-type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415, form.text
    assert [n["id"] for n in get(server, "alice", "/notifications")] == [1]
