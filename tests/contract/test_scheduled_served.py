"""Scheduled notifications and expiry end to end once per store: `tidings serve` on SQLite,
PostgreSQL and MongoDB, real streams. The scheduler looks every 0.1 s; a notification is
scheduled two seconds ahead, and each test waits for the event, not for the time."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import HTTP, PUBLISHER_KEY, SENTINEL, Server, make_token, open_stream

pytestmark = pytest.mark.anyio

AHEAD = timedelta(seconds=2)
# Generous: the scheduler runs every 0.1 s, but the machine may be busy.
ARRIVAL = 20.0
FAST = {"TIDINGS_SCHEDULER_INTERVAL": "0.1"}


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cancel(server: Server, key: str) -> httpx.Response:
    return HTTP.delete(
        f"{server.url}/api/notifications/scheduled/{key}",
        headers={"authorization": f"Bearer {PUBLISHER_KEY}"},
        timeout=10,
    )


def counts(server: Server, user: str) -> dict[str, Any]:
    response = HTTP.get(
        f"{server.url}/notifications/unread-count",
        headers={"authorization": f"Bearer {make_token(user)}"},
        timeout=10,
    )
    body: dict[str, Any] = response.json()
    return body


async def test_a_scheduled_notification_arrives_live_when_due_with_the_next_seq(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url, thread=True, **FAST)
    async with open_stream(server.url, make_token("alice")) as stream:
        assert server.publish("alice", "now").status_code == 201
        due = datetime.now(UTC) + AHEAD
        fields = {"deliver_at": iso(due), "idempotency_key": "k-later", "category": "billing"}
        answer = server.publish("alice", "later", **fields)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {
            "idempotency_key": "k-later",
            "deliver_at": iso(due),
            "user_ids": ["alice"],
        }
        again = server.publish("alice", "later", **fields)
        assert (again.status_code, again.json()) == (202, answer.json())
        assert again.headers["idempotent-replayed"] == "true"
        # Before it is due: not listed, not counted, no seq handed out.
        assert [n["id"] for n in server.listed("alice")] == [1]
        before = counts(server, "alice")
        assert (before["unread"], before["last_seq"]) == (1, 1)
        [now] = await stream.notifications(1)
        assert now["message"] == "now"
        [later] = await stream.notifications(1, timeout=ARRIVAL)
        arrived = datetime.now(UTC)
    assert arrived >= due
    assert (later["id"], later["message"], later["category"]) == (2, "later", "billing")
    assert later["created_at"] >= iso(due)
    assert [n["id"] for n in server.listed("alice")] == [2, 1]
    assert server.metric("tidings_scheduled_total") == 1
    assert server.metric("tidings_scheduled_delivered_total") == 1
    # Delivered: nothing to cancel any more, and the detail says why.
    gone = cancel(server, "k-later")
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_scheduled"
    assert "delivered already" in gone.json()["detail"]


async def test_a_cancelled_notification_is_never_delivered(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url, thread=True, **FAST)
    async with (
        open_stream(server.url, make_token("bob")) as bob,
        open_stream(server.url, make_token("carol")) as carol,
    ):
        # Taken once the streams are open: opening them may take seconds on a busy machine.
        due = iso(datetime.now(UTC) + AHEAD)
        for message, key in (("cancelled", "k-cancel"), ("kept", "k-kept")):
            response = server.publish(
                ["bob", "carol"], message, deliver_at=due, idempotency_key=key
            )
            assert response.status_code == 202, response.text
        assert cancel(server, "k-cancel").status_code == 204
        twice = cancel(server, "k-cancel")
        assert twice.status_code == 404
        assert twice.json() == {
            "error": "not_scheduled",
            "detail": "nothing is pending under idempotency key 'k-cancel': "
            "it was cancelled already",
        }
        unknown = cancel(server, "k-unknown")
        assert unknown.status_code == 404
        assert "no publish was scheduled with it" in unknown.json()["detail"]
        # Both were due at once, the cancelled one scheduled first: had it been delivered, it
        # would have come before the kept one.
        for stream in (bob, carol):
            event = await stream.next(timeout=ARRIVAL)
            assert event.event == "new-notification"
            assert (event.json()["message"], event.id) == ("kept", "1")
    assert [n["message"] for n in server.listed("carol")] == ["kept"]
    assert server.metric("tidings_scheduled_cancelled_total") == 2


async def test_a_category_muted_by_delivery_time_is_skipped(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url, thread=True, **FAST)
    token = make_token("dave")
    due = iso(datetime.now(UTC) + AHEAD)
    assert server.publish("dave", "news", category="news", deliver_at=due).status_code == 202
    assert server.publish("dave", SENTINEL, deliver_at=due).status_code == 202
    # Muted after it was scheduled: the preference at delivery time counts.
    muted = HTTP.put(
        f"{server.url}/notifications/preferences",
        json={"muted_categories": ["news"]},
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert muted.status_code == 200, muted.text
    async with open_stream(server.url, token) as stream:
        await stream.expect_sentinel(timeout=ARRIVAL)
    assert [n["message"] for n in server.listed("dave")] == [SENTINEL]
    assert server.metric("tidings_scheduled_skipped_total", 'reason="muted"') == 1


async def test_expiry_reaches_an_open_stream_and_leaves_the_list_counts_and_replay(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url, thread=True, **FAST)
    token = make_token("erin")
    expires = iso(datetime.now(UTC) + AHEAD)
    async with open_stream(server.url, token) as stream:
        assert server.publish("erin", "short-lived", expires_at=expires).status_code == 201
        assert server.publish("erin", "stays").status_code == 201
        assert [n["id"] for n in await stream.notifications(2)] == [1, 2]
        event = await stream.next(timeout=ARRIVAL)
    assert event.event == "notifications-expired"
    assert event.json() == {"ids": [1], "unread": 1, "unseen": 1}
    assert [n["id"] for n in server.listed("erin")] == [2]
    assert (counts(server, "erin")["unread"], counts(server, "erin")["unseen"]) == (1, 1)
    # A stream resuming from before it replays only what has not expired.
    async with open_stream(server.url, token, last_event_id="0") as replay:
        first = await replay.next()
        assert (first.event, first.id) == ("new-notification", "2")
    assert server.metric("tidings_expired_events_total") == 1


async def test_each_of_many_due_at_once_is_delivered_once_in_order(
    make_server: ServerFactory, served_url: str
) -> None:
    # Batches of 5: the scheduler claims again and again, as it would under a real backlog.
    server = make_server(database=served_url, thread=True, SCHEDULER_BATCH="5", **FAST)
    users = ["u1", "u2", "u3"]
    async with contextlib.AsyncExitStack() as streams:
        opened = [
            await streams.enter_async_context(open_stream(server.url, make_token(u))) for u in users
        ]
        # Taken once the streams are open: opening them may take seconds on a busy machine.
        due = iso(datetime.now(UTC) + AHEAD + AHEAD)
        for i in range(12):
            response = server.publish(users, f"m{i}", deliver_at=due, idempotency_key=f"k{i}")
            assert response.status_code == 202, response.text
        for stream in opened:
            got = await stream.notifications(12, timeout=ARRIVAL)
            assert [(n["id"], n["message"]) for n in got] == [(i + 1, f"m{i}") for i in range(12)]
    for user in users:
        listed = await asyncio.to_thread(_every, server, user)
        assert [(n["id"], n["message"]) for n in listed] == [
            (i, f"m{i - 1}") for i in range(12, 0, -1)
        ]


def _every(server: Server, user: str) -> list[dict[str, Any]]:
    response = HTTP.get(
        f"{server.url}/notifications?limit=100",
        headers={"authorization": f"Bearer {make_token(user)}"},
        timeout=10,
    )
    body: list[dict[str, Any]] = response.json()
    return body
