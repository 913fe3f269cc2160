"""`deliver_at` as a publisher sees it against a real server: what is refused and why, what is
published at once, and the cancel route's answers. Delivery itself is tested on every store in
tests/contract/test_scheduled_served.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import HTTP, PUBLISHER_KEY, Server, make_token, open_stream, serving

TIME_RULE = "must be an ISO 8601 time with an offset, like 2026-12-01T09:00:00Z"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("scheduled")
    settings = {
        "TIDINGS_MAX_SCHEDULE_DAYS": "2",
        # Fast beats for the idle test, and a short interval that would show any polling.
        "TIDINGS_HEARTBEAT": "0.5",
        "TIDINGS_SCHEDULER_INTERVAL": "0.1",
    }
    with serving(folder, settings) as running:
        yield running


def user() -> str:
    return f"sched-{uuid.uuid4().hex[:8]}"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("deliver_at", "problem"),
    [
        (iso(datetime.now(UTC) + timedelta(days=2, hours=1)), "at most 2 days ahead"),
        ("2030-01-01T00:00:00", TIME_RULE),
        ("tomorrow", TIME_RULE),
        ("2026-02-30T09:00:00Z", f"{TIME_RULE} (and a real date)"),
    ],
    ids=["too-far", "no-offset", "words", "no-such-day"],
)
def test_a_bad_deliver_at_is_refused_and_says_why(
    server: Server, deliver_at: str, problem: str
) -> None:
    who = user()
    response = server.publish(who, "later", deliver_at=deliver_at)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_notification"
    assert body["detail"]["field"] == "deliver_at"
    assert body["detail"]["problem"].startswith(problem)
    if problem.startswith("at most"):
        assert "TIDINGS_MAX_SCHEDULE_DAYS" in body["detail"]["problem"]
    assert server.listed(who) == []


def test_deliver_at_in_the_past_or_now_publishes_at_once(server: Server) -> None:
    who = user()
    past = iso(datetime.now(UTC) - timedelta(minutes=5))
    published = server.publish(who, "overdue", deliver_at=past, idempotency_key=f"{who}-k")
    assert published.status_code == 201, published.text
    assert published.json()["id"] == 1
    # A retry of that publish replays it, as any keyed publish.
    again = server.publish(who, "overdue", deliver_at=past, idempotency_key=f"{who}-k")
    assert (again.status_code, again.json()) == (200, published.json())
    assert [n["message"] for n in server.listed(who)] == ["overdue"]


def test_a_scheduled_key_reused_for_another_publish_is_a_conflict(server: Server) -> None:
    who = user()
    soon = iso(datetime.now(UTC) + timedelta(hours=1))
    first = server.publish(who, "a", deliver_at=soon, idempotency_key=f"{who}-k")
    assert first.status_code == 202, first.text
    other = server.publish(who, "b", deliver_at=soon, idempotency_key=f"{who}-k")
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict"


def test_cancel_needs_the_publisher_key(server: Server) -> None:
    url = f"{server.url}/api/notifications/scheduled/some-key"
    assert HTTP.delete(url, timeout=10).status_code == 401
    wrong = HTTP.delete(url, headers={"authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 403
    right = HTTP.delete(url, headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10)
    assert right.status_code == 404
    assert right.json()["error"] == "not_scheduled"


def store_queries(server: Server) -> tuple[float, float]:
    """All store queries, and the re-announcing sweep's, from one scrape (no sweep between)."""
    total = swept = 0.0
    for line in HTTP.get(f"{server.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("tidings_store_queries_total{"):
            value = float(line.rpartition(" ")[2])
            total += value
            if 'op="delivered_between"' in line:
                swept += value
    return total, swept


@pytest.mark.anyio
async def test_a_pending_schedule_expiry_and_snooze_cost_an_idle_node_no_query(
    server: Server,
) -> None:
    who = user()
    hour = iso(datetime.now(UTC) + timedelta(hours=1))
    assert server.publish(who, "in an hour", deliver_at=hour).status_code == 202
    assert server.publish(who, "gone in an hour", expires_at=hour).status_code == 201
    # And a snooze an hour ahead: the delivery loop sleeps until it too.
    assert server.publish(who, "snoozed for an hour").status_code == 201
    snoozed = HTTP.post(
        f"{server.url}/notifications/snooze",
        json={"ids": [2], "until": hour},
        headers={"authorization": f"Bearer {make_token(who)}"},
    )
    assert snoozed.json()["ids"] == [2]
    async with open_stream(server.url, make_token(who), last_event_id="1") as stream:
        first = await stream.next(5, skip_pings=False)
        assert first.event == "ping"
        queries, swept = store_queries(server)
        began = time.monotonic()
        # Four heartbeats: the scheduler and the expiry sweep (interval 0.1 s) would have
        # looked some 20 times each if they polled.
        for _ in range(4):
            assert (await stream.next(2.5, skip_pings=False)).event == "ping"
        assert time.monotonic() - began >= 1.5
        # Only the re-announcing sweep queries, once per TIDINGS_SCHEDULER_SWEEP (2 s), while
        # the node has open streams: nothing else could tell it of a delivery whose node died.
        took = time.monotonic() - began
        queries_after, swept_after = store_queries(server)
        sweeps = swept_after - swept
        assert sweeps <= took / 2 + 1
        assert queries_after - queries == sweeps
