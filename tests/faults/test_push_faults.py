"""Web Push through a crash: a node killed with kill -9 after it claimed a notification and
while its push was on the wire. The push service never answered it; the lease runs out, and
another node sends it, once. The restarted node does not send it again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.multinode.cluster import Cluster
from tests.push.helpers import PUBLIC_KEY, PUSH_ENV, subscribe
from tests.push.standin import standin

pytestmark = pytest.mark.anyio


async def test_a_node_killed_mid_push_leaves_it_to_another_node_once(
    tmp_path: Path, postgres_url: str, tag: str
) -> None:
    settings = {k.removeprefix("TIDINGS_").lower(): v for k, v in PUSH_ENV.items()}
    # The PostgreSQL bus: the crash test needs no Redis of its own.
    cluster = Cluster(tmp_path, postgres_url, f"{postgres_url}?channel=pf_{tag}", **settings)
    try:
        [first] = cluster.start(1)
        user = f"crash-{tag}"
        async with standin() as push:
            push.vapid_public_key = PUBLIC_KEY
            subscribe(first, user, push.browser(user))
            # The first request is held open: the node has claimed and is sending.
            push.script[user] = ["hold"]
            response = await asyncio.to_thread(first.publish, user, "through a crash")
            assert response.status_code == 201
            sent = response.json()["id"]
            push.holding.setdefault(user, asyncio.Event())
            await asyncio.wait_for(push.holding[user].wait(), 15)
            first.kill()
            [second] = cluster.start(1)
            # Only after the dead node's lease (6 s) ran out, the second node sends it.
            [pushed] = await push.wait_for(user, 1, timeout=30)
            assert pushed.payload["id"] == sent
            # The killed node comes back; nothing is sent twice: the sentinel comes next.
            await asyncio.to_thread(first.start)
            response = await asyncio.to_thread(second.publish, user, "sentinel")
            later = response.json()["id"]
            pushes = await push.wait_for(user, 2, timeout=30)
            assert [p.payload["id"] for p in pushes] == [sent, later], cluster.logs()
            assert push.answered[user] == [201, 201]
    finally:
        cluster.close()
