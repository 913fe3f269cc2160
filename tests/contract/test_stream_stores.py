"""The end-to-end stream path once per store: `tidings serve` on SQLite, PostgreSQL, MongoDB."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.contract.conftest import services
from tests.support import make_token, open_stream, publish_sentinel

pytestmark = pytest.mark.anyio


async def test_a_stream_receives_live_and_replays_after_reconnect(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url, thread=True)
    token = make_token("alice")
    async with open_stream(server.url, token) as stream:
        assert stream.status == 200
        for i in range(3):
            assert server.publish("alice", f"live {i}", data={"a.b": [[i]]}).status_code == 201
        got = await stream.notifications(3)
        assert [n["id"] for n in got] == [1, 2, 3]
        assert got[2]["data"] == {"a.b": [[2]]}
    # Missed while away: published with no stream open, replayed after Last-Event-ID.
    assert server.publish(["alice", "bob"], "missed").status_code == 201
    assert server.publish("alice", "missed too").status_code == 201
    async with open_stream(server.url, token, last_event_id="2") as stream:
        replayed = await stream.notifications(3)
        assert [(n["id"], n["message"]) for n in replayed] == [
            (3, "live 2"),
            (4, "missed"),
            (5, "missed too"),
        ]
        async with httpx.AsyncClient(timeout=10) as client:
            listed = await client.get(
                f"{server.url}/notifications?limit=2", headers={"authorization": f"Bearer {token}"}
            )
        assert [n["id"] for n in listed.json()] == [5, 4]
        await publish_sentinel(server, "alice", stream)


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url)


async def test_a_lost_database_answers_503_keeps_streams_and_catches_up(
    make_server: ServerFactory, private_postgres: tuple[str, Path]
) -> None:
    url, state = private_postgres
    server = make_server(database=url, TIDINGS_HEARTBEAT="1")
    token = make_token("alice")
    async with open_stream(server.url, token) as stream:
        assert server.publish("alice", "before").status_code == 201
        assert [n["id"] for n in await stream.notifications(1)] == [1]

        await asyncio.to_thread(services, state, "stop", "postgres")
        response = server.publish("alice", "while down")
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
        ready = await get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"].startswith("unavailable")
        # The stream stays open: heartbeats keep coming, nothing else.
        ping = await stream.next(timeout=5, skip_pings=False)
        assert ping.event == "ping"
        assert not stream.ended.is_set()

        await asyncio.to_thread(services, state, "start", "postgres")
        deadline = time.monotonic() + 20
        while True:
            # The first query on a pooled connection may still meet the old, dead socket.
            response = server.publish("alice", "after")
            if response.status_code == 201 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert response.status_code == 201, response.text
        got = await stream.notifications(1)
        assert [(n["id"], n["message"]) for n in got] == [(2, "after")]
        assert (await get(f"{server.url}/readyz")).status_code == 200
    async with open_stream(server.url, token, last_event_id="0") as again:
        assert [n["message"] for n in await again.notifications(2)] == ["before", "after"]
