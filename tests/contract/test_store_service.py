"""Store faults seen through `tidings serve`, once per store: a publish committed but never
announced, a PostgreSQL that stops under load, a reconnect storm on a slow database."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ServerFactory
from tests.contract.conftest import fresh_database, services
from tests.support import PUBLISHER_KEY, make_token, open_stream
from tidings.models import Draft
from tidings.store import create_store

pytestmark = pytest.mark.anyio

PUBLISH_HEADERS = {"authorization": f"Bearer {PUBLISHER_KEY}"}


async def test_a_retried_publish_that_was_committed_but_never_announced_is_pushed_live(
    make_server: ServerFactory, served_url: str
) -> None:
    server = make_server(database=served_url, thread=True)
    async with open_stream(server.url, make_token("alice")) as stream:
        assert stream.status == 200
        # What a node that died between commit and announce leaves behind: the notification is
        # in the store, and no node ever told the streams.
        dead_node = create_store(served_url)
        await dead_node.open()
        try:
            await dead_node.add(Draft(user_ids=("alice",), message="lost"), "order-7")
        finally:
            await dead_node.close()

        retry = server.publish("alice", "lost", idempotency_key="order-7")
        assert retry.status_code == 200, retry.text
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.json()["id"] == 1
        got = await stream.notifications(1, timeout=5)
        assert [(n["id"], n["message"]) for n in got] == [(1, "lost")]

        # The same key for another notification is refused, and nothing is stored or pushed:
        # the next publish is seq 2 and is the next event on the stream.
        reused = server.publish("alice", "something else", idempotency_key="order-7")
        assert reused.status_code == 409, reused.text
        assert reused.json()["error"] == "idempotency_conflict"
        assert "order-7" in reused.json()["detail"]
        assert server.publish("alice", "next").status_code == 201
        got = await stream.notifications(1, timeout=5)
        assert [(n["id"], n["message"]) for n in got] == [(2, "next")]


async def test_publishing_while_postgresql_stops_answers_201_or_503_never_500(
    make_server: ServerFactory, private_postgres: tuple[str, Path]
) -> None:
    url, state = private_postgres
    server = make_server(database=url)
    statuses: dict[str, int] = {}
    stopped = asyncio.Event()

    async def publisher(client: httpx.AsyncClient, name: str) -> None:
        # Keep publishing until a while after the stop, each with a key of its own.
        i = 0
        after_stop = 0
        while after_stop < 5:
            key = f"{name}-{i}"
            response = await client.post(
                f"{server.url}/api/notifications",
                json={"user_id": "alice", "message": key, "idempotency_key": key},
                headers=PUBLISH_HEADERS,
            )
            statuses[key] = response.status_code
            if response.status_code == 503:
                assert response.headers["retry-after"]
                assert response.json()["error"] == "store_unavailable"
            i += 1
            after_stop += stopped.is_set()

    async with httpx.AsyncClient(timeout=60) as client:
        publishers = asyncio.gather(*(publisher(client, f"p{n}") for n in range(4)))
        await asyncio.to_thread(services, state, "stop", "postgres")
        stopped.set()
        await publishers
        assert set(statuses.values()) <= {201, 503}, statuses
        assert 503 in statuses.values(), "PostgreSQL stopped, yet every publish succeeded"

        await asyncio.to_thread(services, state, "start", "postgres")
        # Recovered: every key that was refused goes through when retried, and is stored once.
        deadline = time.monotonic() + 30
        for key in sorted(k for k, status in statuses.items() if status == 503):
            while True:
                response = await client.post(
                    f"{server.url}/api/notifications",
                    json={"user_id": "alice", "message": key, "idempotency_key": key},
                    headers=PUBLISH_HEADERS,
                )
                assert response.status_code in (200, 201, 503), response.text
                if response.status_code != 503:
                    break
                assert time.monotonic() < deadline, "no recovery after PostgreSQL restarted"
                await asyncio.sleep(0.2)
    async with open_stream(server.url, make_token("alice"), last_event_id="0") as stream:
        got = await stream.notifications(len(statuses), timeout=20)
    assert sorted(n["message"] for n in got) == sorted(statuses)
    assert [n["id"] for n in got] == list(range(1, len(statuses) + 1))


@contextlib.asynccontextmanager
async def writes_blocked(url: str) -> AsyncIterator[None]:
    """Hold the database's write lock from outside tidings, as a stalled database would:
    reads go on, every write waits."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    else:
        pg = await asyncpg.connect(url, timeout=10)
        try:
            tx = pg.transaction()
            await tx.start()
            # Blocks inserts and updates of the users' counters, not plain reads.
            await pg.execute("LOCK TABLE tidings_users IN SHARE ROW EXCLUSIVE MODE", timeout=10)
            yield
            await tx.rollback()
        finally:
            await pg.close(timeout=5)


@pytest.fixture(params=["sqlite", "postgres"])
def stallable_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The stores whose write lock a test can hold from outside (FerretDB offers no such lock)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


async def test_a_storm_on_a_stalled_database_is_answered_within_seconds(
    make_server: ServerFactory, stallable_url: str
) -> None:
    served_url = stallable_url
    limit = 2
    server = make_server(
        database=served_url,
        thread=True,
        store_max_concurrency=str(limit),
        store_queue_timeout="0.2",
    )
    token = make_token("alice")
    assert server.publish("alice", "before").status_code == 201
    answers: list[tuple[str, int, float]] = []
    began = time.monotonic()

    async def open_stream_once(client: httpx.AsyncClient, i: int) -> None:
        # A user each: the per-user stream cap is not what this test is about.
        headers = {"authorization": f"Bearer {make_token(f'u{i}')}", "last-event-id": "0"}
        async with client.stream("GET", f"{server.url}/notifications/stream", headers=headers) as r:
            answers.append(("stream", r.status_code, time.monotonic() - began))
            if r.status_code == 503:
                assert r.headers["retry-after"]

    async def publish_once(client: httpx.AsyncClient, i: int) -> None:
        body = {"user_id": f"u{i % 7}", "message": f"storm {i}", "idempotency_key": f"s{i}"}
        r = await client.post(f"{server.url}/api/notifications", json=body, headers=PUBLISH_HEADERS)
        answers.append(("publish", r.status_code, time.monotonic() - began))
        if r.status_code == 503:
            assert r.headers["retry-after"]

    requests = 120
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async with writes_blocked(served_url):
            began = time.monotonic()
            tasks: list[asyncio.Task[Any]] = []
            for i in range(requests // 2):
                tasks.append(asyncio.create_task(open_stream_once(client, i)))
                tasks.append(asyncio.create_task(publish_once(client, i)))
            # Everything but the `limit` publishes holding the slots is answered, stalled
            # database or not, within seconds.
            deadline = time.monotonic() + 8
            while len(answers) < requests - limit:
                assert time.monotonic() < deadline, (
                    f"{len(answers)} of {requests} answered in 8 s: work queued on the store"
                )
                await asyncio.sleep(0.05)
        # The stall ends: the publishes that held the slots finish.
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert {status for _, status, _ in answers} <= {200, 201, 503}, answers
    refused = [a for a in answers if a[1] == 503]
    assert refused, "a stalled database refused nothing"
    assert max(seconds for _, status, seconds in answers if status == 503) < 8

    # Right after, the node serves normally.
    async with open_stream(server.url, token) as stream:
        assert stream.status == 200
        assert server.publish("alice", "after").status_code == 201
        got = await stream.notifications(1, timeout=5)
        assert [n["message"] for n in got] == ["after"]
