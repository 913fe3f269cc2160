"""Issue 22, item 1: a scheduled notification that a node delivered (committed) and died before
announcing still reaches the open streams on the other nodes, within seconds.

Deterministic: the bus (a private Redis) is paused for writes, so node A's announcement cannot
leave it; A delivers the row, is killed with kill -9, and the bus comes back. No node claims the
row again (it is delivered), and no announcement was made: node B's stream must get it anyway."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from tests.multinode.client import ReconnectingClient, running
from tests.multinode.cluster import Cluster
from tests.multinode.conftest import PrivateRedis
from tests.support import PUBLISHER_KEY, make_token

pytestmark = pytest.mark.anyio

# Generous for a loaded machine; the sweep runs every second here.
ARRIVAL = 15.0


async def test_a_delivery_whose_node_died_before_announcing_reaches_streams_elsewhere(
    tmp_path: Path, postgres_url: str, private_redis: PrivateRedis, tag: str
) -> None:
    cluster = Cluster(
        tmp_path,
        postgres_url,
        f"{private_redis.url}?channel=un_{tag}",
        scheduler_interval="0.2",
        scheduler_sweep="1",
    )
    control = redis.Redis(port=private_redis.port, socket_timeout=5)
    try:
        a, b = cluster.start(2)
        user = f"unannounced-{tag}"
        stream = ReconnectingClient(b.url, make_token(user), last_event_id="0")
        async with running(stream):
            # The bus stops taking writes: A's hint and its announcement both wait in A.
            control.client_pause(12000, all=False)  # CLIENT PAUSE 12000 WRITE
            try:
                due = datetime.now(UTC) + timedelta(seconds=1)
                body = {"user_id": user, "message": "scheduled", "deliver_at": due.isoformat()}
                async with httpx.AsyncClient(
                    headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=2
                ) as http:
                    # The answer may wait on the paused bus; the row is stored before that.
                    with contextlib.suppress(httpx.TimeoutException):
                        await http.post(f"{a.url}/api/notifications", json=body)
                deadline = time.monotonic() + ARRIVAL
                while await asyncio.to_thread(a.metric, "tidings_scheduled_delivered_total") < 1:
                    assert time.monotonic() < deadline, cluster.logs()
                    await asyncio.sleep(0.1)
                a.kill()
            finally:
                control.client_unpause()
            await stream.wait_for(1, ARRIVAL)
            assert [r.message for r in stream.received] == ["scheduled"], cluster.logs()
            assert stream.seqs == [1]
    finally:
        control.close()
        cluster.close()
