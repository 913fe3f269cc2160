"""Web Push with two nodes on one PostgreSQL store and a Redis bus: one push per notification
and subscription, whichever node publishes and whichever node's stream the user has open."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.multinode.cluster import Cluster, Node
from tests.push.helpers import PUBLIC_KEY, PUSH_ENV, subscribe
from tests.push.standin import standin
from tests.support import make_token, open_stream

pytestmark = pytest.mark.anyio

USERS = 6
PER_USER = 3


def push_cluster(tmp_path: Path, postgres_url: str, bus_url: str) -> Cluster:
    settings = {k.removeprefix("TIDINGS_").lower(): v for k, v in PUSH_ENV.items()}
    return Cluster(tmp_path, postgres_url, bus_url, **settings)


async def publish(node: Node, user: str, message: str) -> int:
    response = await asyncio.to_thread(node.publish, user, message)
    assert response.status_code == 201, response.text
    seq: int = response.json()["id"]
    return seq


def skipped_present(nodes: list[Node]) -> float:
    return sum(n.metric("tidings_away_skipped_total", 'reason="present"') for n in nodes)


async def test_two_nodes_push_each_notification_once_per_subscription(
    tmp_path: Path, postgres_url: str, redis_bus: str, tag: str
) -> None:
    cluster = push_cluster(tmp_path, postgres_url, redis_bus)
    try:
        nodes = cluster.start(2)
        async with standin() as push:
            push.vapid_public_key = PUBLIC_KEY
            users = [f"mn-{tag}-{i}" for i in range(USERS)]
            # Two browsers per user, subscribed through different nodes.
            for i, user in enumerate(users):
                for b in range(2):
                    subscribe(nodes[(i + b) % 2], user, push.browser(f"{user}-{b}"))
            expected: dict[str, list[int]] = {u: [] for u in users}
            for round_ in range(PER_USER):
                for i, user in enumerate(users):
                    seq = await publish(nodes[(i + round_) % 2], user, f"n{round_}")
                    expected[user].append(seq)
            for user in users:
                for b in range(2):
                    await push.wait_for(f"{user}-{b}", PER_USER, timeout=30)
            # Sentinels: the next push each browser gets is the next notification.
            for i, user in enumerate(users):
                expected[user].append(await publish(nodes[i % 2], user, "sentinel"))
            for user in users:
                for b in range(2):
                    pushes = await push.wait_for(f"{user}-{b}", PER_USER + 1, timeout=30)
                    assert [p.payload["id"] for p in pushes] == expected[user], cluster.logs()
    finally:
        cluster.close()


async def test_a_stream_on_one_node_stops_the_push_for_a_publish_on_the_other(
    tmp_path: Path, postgres_url: str, redis_bus: str, tag: str
) -> None:
    cluster = push_cluster(tmp_path, postgres_url, redis_bus)
    try:
        nodes = cluster.start(2)
        here, away = f"here-{tag}", f"away-{tag}"
        async with standin() as push, open_stream(nodes[0].url, make_token(here)) as stream:
            subscribe(nodes[1], here, push.browser(here))
            subscribe(nodes[1], away, push.browser(away))
            before = await asyncio.to_thread(skipped_present, nodes)
            await publish(nodes[1], here, "seen live on node 0")
            [shown] = await stream.notifications(1)
            assert shown["message"] == "seen live on node 0"
            deadline = asyncio.get_running_loop().time() + 15
            while await asyncio.to_thread(skipped_present, nodes) <= before:
                assert asyncio.get_running_loop().time() < deadline, cluster.logs()
                await asyncio.sleep(0.05)
            await publish(nodes[1], away, "sentinel")
            await push.wait_for(away, 1)
            assert push.answered.get(here, []) == []
    finally:
        cluster.close()
