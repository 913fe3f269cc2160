"""A SQLite node killed with kill -9 while it delivers scheduled notifications, and started
again: each is delivered exactly once, every user's seqs gapless.

The node delivers in small batches (5 rows) so the kill lands in the middle of the work: it is
sent as soon as the first delivery reaches a stream, and the database then shows rows still
pending (a try in which the node was faster is made again). A lease of one second lets the
restarted node take over the rows the dead one had claimed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.multinode.client import ReconnectingClient, running
from tests.multinode.cluster import Cluster, Node
from tests.support import PUBLISHER_KEY, make_token, schedule_each

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

USERS = 10
PER_USER = 30
ARRIVAL = 60.0
TRIES = 3


async def start_and_kill(folder: Path, tag: str) -> tuple[Cluster, Node, list[str], int]:
    """A node with PER_USER publishes scheduled for USERS users, killed with kill -9 as soon as
    the first is delivered; and how many rows were still pending then (read from the database)."""
    await asyncio.to_thread(folder.mkdir)
    database = folder / "tidings.db"
    cluster = Cluster(
        folder,
        f"sqlite:///{database}",
        "local://",
        scheduler_interval="0.1",
        scheduler_batch="5",
        scheduler_lease="1",
    )
    try:
        [node] = cluster.start(1)
        users = [f"kill-{tag}-{i}" for i in range(USERS)]
        due = datetime.now(UTC) + timedelta(seconds=4)
        await schedule_each([node.url], users, due.isoformat(), tag, PER_USER)
        first = ReconnectingClient(node.url, make_token(users[0]), last_event_id="0")
        async with running(first):
            await first.wait_for(1, ARRIVAL)
            assert first.received, cluster.logs()
            node.kill()
        with contextlib.closing(sqlite3.connect(database)) as db:
            (pending,) = db.execute(
                "SELECT count(*) FROM scheduled WHERE state = 'pending'"
            ).fetchone()
    except BaseException:
        cluster.close()
        raise
    return cluster, node, users, int(pending)


async def test_kill_9_on_sqlite_while_delivering_scheduled_notifications(
    tmp_path: Path, tag: str
) -> None:
    # The kill must land while rows are pending. On a loaded machine the node may deliver all
    # of them before this process gets to send it (it did once in CI): then that try tested
    # nothing, and a new node with new rows tries again.
    for attempt in range(TRIES):
        cluster, node, users, pending = await start_and_kill(
            tmp_path / f"try-{attempt}", f"{tag}-{attempt}"
        )
        if pending:
            break
        cluster.close()
    else:
        pytest.fail(f"in {TRIES} tries the node delivered every row before the kill reached it")
    try:
        await asyncio.to_thread(node.start)
        # Some rows were still pending when the node died: the restarted one delivered them.
        clients = [
            ReconnectingClient(node.url, make_token(user), last_event_id="0") for user in users
        ]
        async with running(*clients):
            await asyncio.gather(*(c.wait_for(PER_USER, ARRIVAL) for c in clients))
            async with httpx.AsyncClient(
                headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10
            ) as http:
                sentinel = {"user_ids": users, "message": "sentinel"}
                response = await http.post(f"{node.url}/api/notifications", json=sentinel)
                assert response.status_code == 201, response.text
            await asyncio.gather(*(c.wait_for(PER_USER + 1, ARRIVAL) for c in clients))
        assert node.metric("tidings_scheduled_delivered_total") > 0, cluster.logs()
        messages = sorted(f"m{i}" for i in range(PER_USER))
        for client in clients:
            assert client.seqs == list(range(1, PER_USER + 2)), cluster.logs()
            got = [r.message for r in client.received]
            assert sorted(got[:-1]) == messages
            assert got[-1] == "sentinel"
    finally:
        cluster.close()
