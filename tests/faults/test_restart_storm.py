"""Issue 22, item 4: a node on MongoDB (FerretDB) with open streams is killed with kill -9 and
started again; the reconnect storm's catch-up reads must not keep the node answering 503 "store
is busy": it answers a publish within seconds of starting, and every stream gets what it
missed, in order, as the storm is admitted.

Lean by design. The streams open on a small store (their first position reads are cheap) and
receive one notification live; only then is the store filled with other users' notifications,
so every catch-up read after the restart is a scan of a few thousand documents (FerretDB v1
scans for every filter but an `_id` equality), and a small `TIDINGS_STORE_MAX_CONCURRENCY`
makes the storm outnumber the slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.contract.conftest import fresh_database
from tests.multinode.client import ReconnectingClient, running
from tests.multinode.cluster import Cluster
from tests.support import PUBLISHER_KEY, make_token
from tidings.models import Draft
from tidings.store import create_store

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STREAMS = 100
FILL = 2_000
# Seconds from the restarted node's /readyz to its first answer to a publish.
ANSWERS_WITHIN = 10.0
# Before the catch-up reads were batched (one scan for a hundred streams), the last streams
# caught up over a minute after the restart on a loaded machine; now in seconds.
CAUGHT_UP_WITHIN = 30.0


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with fresh_database("mongodb", tmp_path) as url:
        yield url


async def add(url: str, *drafts: tuple[Draft, str]) -> None:
    """Publish through the store itself, as a node that is down cannot."""
    store = create_store(url)
    await store.open()
    try:
        for draft, key in drafts:
            await store.add(draft, key)
    finally:
        await store.close()


async def test_a_restarted_node_answers_within_seconds_while_the_storm_catches_up(
    tmp_path: Path, database: str, tag: str
) -> None:
    users = [f"storm-{tag}-{i}" for i in range(STREAMS)]
    others = tuple(f"other-{i}" for i in range(1000))
    cluster = Cluster(tmp_path, database, "local://", store_max_concurrency="8")
    try:
        [node] = await asyncio.to_thread(cluster.start, 1)
        clients = [ReconnectingClient(node.url, make_token(u)) for u in users]
        async with (
            running(*clients, timeout=60),
            httpx.AsyncClient(
                headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=30
            ) as http,
        ):
            before = {"user_ids": users, "message": "before"}
            response = await http.post(f"{node.url}/api/notifications", json=before)
            assert response.status_code == 201, response.text
            await asyncio.gather(*(c.wait_for(1, 30) for c in clients))
            assert all(c.seqs == [1] for c in clients), cluster.logs()
            rounds = range(FILL // len(others))
            fill = [(Draft(user_ids=others, message=f"fill {i}"), f"fill-{i}") for i in rounds]
            await add(database, *fill)
            node.kill()
            # Published while the node is down: every stream has one to catch up on.
            await add(database, (Draft(user_ids=tuple(users), message="missed"), "missed"))
            await asyncio.to_thread(node.start)  # ready: its store answers
            ready = time.monotonic()
            statuses: list[int] = []
            while True:
                probe = {"user_id": f"probe-{tag}", "message": f"probe {len(statuses)}"}
                response = await http.post(f"{node.url}/api/notifications", json=probe)
                statuses.append(response.status_code)
                if response.status_code != 503:
                    break
                assert time.monotonic() - ready < 60, cluster.logs()
                await asyncio.sleep(0.1)
            answered = time.monotonic() - ready
            print(f"first answer {answered:.2f} s after ready; {len(statuses) - 1} refused")
            assert statuses[-1] == 201, response.text
            assert answered < ANSWERS_WITHIN, f"{answered:.1f} s; {statuses}"
            await asyncio.gather(*(c.wait_for(2, CAUGHT_UP_WITHIN) for c in clients))
            caught_up = time.monotonic() - ready
            print(f"every stream caught up {caught_up:.2f} s after ready")
        for client in clients:
            assert [r.message for r in client.received] == ["before", "missed"], cluster.logs()
            assert client.seqs == [1, 2]
    finally:
        cluster.close()
