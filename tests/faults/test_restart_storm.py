"""Issue 22, item 4: a node on MongoDB (FerretDB) with many open streams is killed with kill -9
and started again; the reconnect storm's catch-up reads must not keep the node answering 503
"store is busy": it answers an ordinary request within seconds of starting, and every stream
gets what it missed, in order, as the storm is admitted.

Lean by design: 100 streams, a store of 3,000 notifications (a scan of it is what used to fill
every store slot), a small `TIDINGS_STORE_MAX_CONCURRENCY` so the storm outnumbers the slots."""

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

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    # Not yet: on FerretDB v1 on a loaded machine the first connect of 100 streams alone kept
    # the catch-up share busy for over two minutes (each stream's position and its reads are
    # slow there: see bench/growth-and-soak.md). Strict: it fails CI once it passes.
    pytest.mark.xfail(strict=True, reason="issue 22 item 4: the storm on FerretDB is not fixed"),
]

STREAMS = 100
FILL = 3_000
# Seconds from the restarted node's /readyz to its first answer to an ordinary request.
ANSWERS_WITHIN = 10.0
CAUGHT_UP_WITHIN = 30.0


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with fresh_database("mongodb", tmp_path) as url:
        yield url


async def fill(url: str, users: list[str]) -> None:
    """Other users' notifications, so the store is large; one for each stream's user."""
    store = create_store(url)
    await store.open()
    try:
        others = tuple(f"other-{i}" for i in range(1000))
        for i in range(FILL // len(others)):
            await store.add(Draft(user_ids=others, message=f"fill {i}"), f"fill-{i}")
        await store.add(Draft(user_ids=tuple(users), message="before"), "before")
    finally:
        await store.close()


async def test_a_restarted_node_answers_within_seconds_while_the_storm_catches_up(
    tmp_path: Path, database: str, tag: str
) -> None:
    users = [f"storm-{tag}-{i}" for i in range(STREAMS)]
    await fill(database, users)
    cluster = Cluster(tmp_path, database, "local://", store_max_concurrency="8")
    try:
        [node] = await asyncio.to_thread(cluster.start, 1)
        clients = [ReconnectingClient(node.url, make_token(u), last_event_id="1") for u in users]
        async with (
            running(*clients, timeout=30),
            httpx.AsyncClient(
                headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=30
            ) as http,
        ):
            node.kill()
            # Published while the node is down (through the store: no node runs): every stream
            # has one to catch up on when it reconnects.
            store = create_store(database)
            await store.open()
            try:
                await store.add(Draft(user_ids=tuple(users), message="missed"), "missed")
            finally:
                await store.close()
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
            assert [r.message for r in client.received] == ["missed"], cluster.logs()
            assert client.seqs == [2]
    finally:
        cluster.close()
