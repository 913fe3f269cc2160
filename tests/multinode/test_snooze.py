"""Snooze on two nodes (PostgreSQL store, Redis bus): a notification snoozed on node A comes
back once when due, on a stream of node B as on A's; and when A is gone by then, B's loop, woken
by the snooze's hint over the bus (it had looked at start and found nothing), wakes it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.multinode.cluster import Cluster
from tests.support import SENTINEL, Stream, make_token, open_stream

# Waits on timers (a grace window, a lease, a token's lifetime) more than it computes: in the
# lane of its own beside the parallel pass (scripts/test).
pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.serial]

AHEAD = timedelta(seconds=3)
ARRIVAL = 30.0


async def user_post(url: str, user: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{url}{path}", json=body, headers={"authorization": f"Bearer {make_token(user)}"}
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def snooze(url: str, user: str, seq: int) -> str:
    until = (datetime.now(UTC) + AHEAD).isoformat(timespec="milliseconds")
    answer = await user_post(url, user, "/notifications/snooze", {"ids": [seq], "until": until})
    assert answer["ids"] == [seq]
    return str(answer["until"])


async def events_until_sentinel(stream: Stream) -> list[str]:
    """The names of the stream's events up to the sentinel notification (which ends them)."""
    names: list[str] = []
    while True:
        event = await stream.next(ARRIVAL)
        if event.event == "new-notification" and event.json()["message"] == SENTINEL:
            return names
        names.append(event.event)
        if event.event == "notifications-unsnoozed":
            [woken] = event.json()["notifications"]
            assert (woken["read_at"], woken["seen_at"], woken["snoozed_until"]) == (
                None,
                None,
                None,
            )


async def test_snoozed_on_one_node_it_comes_back_once_on_the_other(
    tmp_path: Path, postgres_url: str, redis_bus: str, tag: str
) -> None:
    cluster = Cluster(tmp_path, postgres_url, redis_bus, scheduler_interval="0.1")
    try:
        a, b = cluster.start(2)
        user = f"snooze-{tag}"
        assert a.publish(user, "first").status_code == 201
        assert a.publish(user, "second").status_code == 201
        await user_post(a.url, user, "/notifications/read", {"ids": [1]})
        token = make_token(user)
        async with (
            open_stream(a.url, token) as on_a,
            open_stream(b.url, token) as on_b,
        ):
            await snooze(a.url, user, 1)
            for stream in (on_a, on_b):
                assert (await stream.next()).event == "notifications-snoozed"
            # Both nodes' loops compete for it; each stream hears of it once.
            for stream in (on_a, on_b):
                event = await stream.next(ARRIVAL)
                assert event.event == "notifications-unsnoozed", event
                body = event.json()
                assert [n["id"] for n in body["notifications"]] == [1]
                assert (body["unread"], body["unseen"]) == (2, 2)
            assert a.publish(user, SENTINEL).status_code == 201
            for stream in (on_a, on_b):
                assert await events_until_sentinel(stream) == []

        # Snoozed on A, and A gone before it is due: B wakes it, told of it by A's hint.
        async with open_stream(b.url, token) as on_b:
            await snooze(a.url, user, 2)
            assert (await on_b.next()).event == "notifications-snoozed"
            await asyncio.to_thread(a.stop)
            event = await on_b.next(ARRIVAL)
            assert event.event == "notifications-unsnoozed", (event, cluster.logs())
            assert [n["id"] for n in event.json()["notifications"]] == [2]
            assert b.publish(user, SENTINEL).status_code == 201
            assert await events_until_sentinel(on_b) == []
    finally:
        cluster.close()
