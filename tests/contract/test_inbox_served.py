"""The inbox routes and events end to end once per store: `tidings serve` on SQLite,
PostgreSQL and MongoDB, a real stream, every new route."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory, service_url
from tests.contract.conftest import fresh_database
from tests.support import make_token, open_stream, publish_sentinel

pytestmark = pytest.mark.anyio


async def test_every_inbox_route_and_event_on_every_store(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url, thread=True)
    token = make_token("alice")
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as api:

        async def counts() -> dict[str, Any]:
            body: dict[str, Any] = (await api.get("/notifications/unread-count")).json()
            return body

        put = await api.put("/notifications/preferences", json={"muted_categories": ["news"]})
        assert put.status_code == 200, put.text
        async with open_stream(server.url, token) as stream:
            skipped = server.publish("alice", "news", category="news")
            assert skipped.json() == {"skipped": [{"user_id": "alice", "reason": "muted"}]}
            actor = {"name": "Ada", "avatar_url": "https://cdn.example/a.png"}
            for i in range(3):
                published = server.publish(
                    "alice",
                    f"comment {i}",
                    category="mentions",
                    group="thread",
                    actor=actor,
                    actions=[{"label": "Reply", "url": "/reply"}],
                )
                assert published.status_code == 201, published.text
            assert server.publish("alice", "invoice", category="billing").status_code == 201
            live = await stream.notifications(4)
            assert [n["id"] for n in live] == [1, 2, 3, 4]
            assert live[0]["actor"] == actor
            assert live[0]["actions"] == [{"label": "Reply", "url": "/reply"}]

            seen = await api.post("/notifications/seen", json={"up_to": 3})
            assert seen.json() == {"up_to": 3, "unseen": 1}
            event = await stream.next()
            assert (event.event, event.json()) == ("notifications-seen", {"up_to": 3, "unseen": 1})

            archived = await api.post("/notifications/archive", json={"ids": [4]})
            assert archived.json() == {"ids": [4], "unread": 3, "unseen": 0}
            event = await stream.next()
            assert event.event == "notifications-archived"
            assert event.json() == {"ids": [4], "unread": 3, "unseen": 0}
            restored = await api.post("/notifications/unarchive", json={"ids": [4]})
            assert restored.json() == {"ids": [4], "unread": 4, "unseen": 1}
            event = await stream.next()
            assert event.event == "notifications-unarchived"
            await publish_sentinel(server, "alice", stream)

        assert await counts() == {
            "unread": 5,
            "unseen": 2,
            "last_seq": 5,
            "categories": {
                "billing": {"unread": 1, "unseen": 1},
                "mentions": {"unread": 3, "unseen": 0},
            },
        }
        grouped = (await api.get("/notifications", params={"grouped": 1})).json()
        assert [(n["id"], n["group_count"]) for n in grouped] == [(5, 1), (4, 1), (3, 3)]
        tab = (await api.get("/notifications", params={"category": "mentions"})).json()
        assert [n["id"] for n in tab] == [3, 2, 1]
        await api.post("/notifications/archive", json={"ids": [1, 2]})
        shelf = (await api.get("/notifications", params={"archived": 1})).json()
        assert [(n["id"], n["archived_at"] is not None) for n in shelf] == [(2, True), (1, True)]
        prefs = (await api.get("/notifications/preferences")).json()
        assert prefs == {"muted_categories": ["news"], "channels": {"push": True, "email": True}}


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path, migrated=True) as url:
        yield url


@pytest.mark.parametrize("bus", ["redis", "postgres"])
async def test_inbox_events_cross_nodes_through_the_bus(
    make_server: ServerFactory, postgres_url: str, bus: str
) -> None:
    database = postgres_url
    # A channel of its own on the shared Redis: no other test's nodes hear these (pytest -n).
    channel = f"inbox_{secrets.token_hex(5)}"
    bus_url = f"{service_url('REDIS')}?channel={channel}" if bus == "redis" else database
    here = make_server(database=database, TIDINGS_BUS_URL=bus_url)
    there = make_server(database=database, TIDINGS_BUS_URL=bus_url)
    token = make_token("alice")
    headers = {"authorization": f"Bearer {token}"}
    async with (
        open_stream(here.url, token) as stream,
        httpx.AsyncClient(base_url=there.url, headers=headers, timeout=10) as api,
    ):
        actor = {"name": "Ada", "avatar_url": None}
        published = there.publish("alice", "hi", category="c", actor=actor, group="g")
        assert published.status_code == 201, published.text
        [live] = await stream.notifications(1)
        assert live == published.json()
        await api.post("/notifications/seen", json={"up_to": 1})
        await api.post("/notifications/archive", json={"ids": [1]})
        await api.post("/notifications/unarchive", json={"ids": [1]})
        names = [(await stream.next()).event for _ in range(3)]
        assert names == [
            "notifications-seen",
            "notifications-archived",
            "notifications-unarchived",
        ]
        await publish_sentinel(there, "alice", stream)
