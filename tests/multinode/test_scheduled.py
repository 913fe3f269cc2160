"""Scheduled notifications on two nodes (PostgreSQL store, Redis bus): many due at once, each
delivered exactly once and every user's seqs gapless, on streams open on both nodes. Both
nodes' schedulers claim from the same table every 0.1 s, in small batches, so they compete for
the rows. (Their order among notifications due at the same moment is the order of scheduling
on one node; two nodes deliver their batches side by side.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.multinode.client import ReconnectingClient, running
from tests.multinode.cluster import Cluster
from tests.support import PUBLISHER_KEY, make_token, schedule_each

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

USERS = 4
PER_USER = 25
ARRIVAL = 60.0


async def test_many_due_at_once_on_two_nodes_are_each_delivered_once(
    tmp_path: Path, postgres_url: str, redis_bus: str, tag: str
) -> None:
    cluster = Cluster(
        tmp_path, postgres_url, redis_bus, scheduler_interval="0.1", scheduler_batch="5"
    )
    try:
        nodes = cluster.start(2)
        users = [f"sched-{tag}-{i}" for i in range(USERS)]
        clients = [
            ReconnectingClient(node.url, make_token(user), last_event_id="0")
            for user in users
            for node in nodes
        ]
        # Far enough ahead that every publish below is answered before the first is due.
        due = datetime.now(UTC) + timedelta(seconds=5)
        async with running(*clients):
            urls = [node.url for node in nodes]
            await schedule_each(urls, users, due.isoformat(), tag, PER_USER)
            await asyncio.gather(*(c.wait_for(PER_USER, ARRIVAL) for c in clients))
            # A sentinel after the last: anything delivered twice would have come before it.
            async with httpx.AsyncClient(
                headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10
            ) as http:
                sentinel = {"user_ids": users, "message": "sentinel"}
                response = await http.post(f"{nodes[0].url}/api/notifications", json=sentinel)
                assert response.status_code == 201, response.text
            await asyncio.gather(*(c.wait_for(PER_USER + 1, ARRIVAL) for c in clients))
        messages = sorted(f"m{i}" for i in range(PER_USER))
        for client in clients:
            assert client.seqs == list(range(1, PER_USER + 2)), cluster.logs()
            got = [r.message for r in client.received]
            assert sorted(got[:-1]) == messages
            assert got[-1] == "sentinel"
        delivered = [n.metric("tidings_scheduled_delivered_total") for n in nodes]
        assert sum(delivered) == USERS * PER_USER, delivered
    finally:
        cluster.close()
