"""Fault injection: kill -9 while publishing, a node kill and a bus outage, counted.

Publishers behave as docs/api.md tells them to (an idempotency key per notification, retried on
network errors and 503, on any node); reconnecting SSE clients record everything they receive.
Afterwards four counts must be zero: notifications lost, received twice, received out of order,
and received by a user they were not for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.multinode.client import ReconnectingClient, running
from tests.multinode.conftest import ClusterFactory, PrivateRedis
from tests.support import PUBLISHER_KEY, make_token

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@dataclass
class RetryingPublisher:
    """One user's publisher: `{user}|{i}` with key `{user}|{i}`, retried until 201 or 200."""

    user: str
    urls: list[str]
    stored: list[int] = field(default_factory=list)
    replays: int = 0
    refusals: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        headers = {"authorization": f"Bearer {PUBLISHER_KEY}"}
        async with httpx.AsyncClient(headers=headers, timeout=5) as client:
            i = 0
            turn = 0
            while not stop.is_set():
                message = f"{self.user}|{i}"
                while True:
                    turn += 1
                    url = self.urls[turn % len(self.urls)]
                    try:
                        response = await client.post(
                            f"{url}/api/notifications",
                            json={
                                "user_id": self.user,
                                "message": message,
                                "idempotency_key": message,
                            },
                        )
                    except httpx.TransportError:
                        response = None
                    if response is not None and response.status_code in (200, 201):
                        self.replays += response.status_code == 200
                        self.stored.append(response.json()["id"])
                        break
                    assert response is None or response.status_code == 503, response.text
                    self.refusals += 1
                    await asyncio.sleep(0.05)
                i += 1
                await asyncio.sleep(0.02)


@dataclass
class Counts:
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    misdelivered: int = 0


def count(client: ReconnectingClient, user: str, stored: list[int]) -> Counts:
    got = client.seqs
    return Counts(
        lost=len(set(stored) - set(got)),
        duplicated=len(got) - len(set(got)),
        reordered=sum(1 for a, b in itertools.pairwise(got) if b <= a),
        misdelivered=sum(1 for r in client.received if not r.message.startswith(f"{user}|")),
    )


@contextlib.asynccontextmanager
async def publishing(publishers: list[RetryingPublisher]) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        for pub in publishers:
            tg.create_task(pub.run(stop))
        try:
            yield stop
        finally:
            stop.set()


async def settle(
    clients: list[tuple[ReconnectingClient, str]], pubs: dict[str, RetryingPublisher]
) -> None:
    for client, user in clients:
        await client.wait_for(len(pubs[user].stored), timeout=30)


def assert_all_zero(
    clients: list[tuple[ReconnectingClient, str]], pubs: dict[str, RetryingPublisher]
) -> None:
    for user, pub in pubs.items():
        # Stored once each, in order: the seqs the publisher was answered are 1..N.
        assert pub.stored == list(range(1, len(pub.stored) + 1)), (user, pub.stored)
        assert len(pub.stored) > 20, f"{user}: only {len(pub.stored)} published"
    for index, (client, user) in enumerate(clients):
        counts = count(client, user, pubs[user].stored)
        assert counts == Counts(), f"client {index} of {user}: {counts}"
        assert client.resets == []


async def test_kill_9_while_publishing_on_sqlite(make_server: ServerFactory) -> None:
    server = make_server()
    users = ["ann", "ben", "cat"]
    pubs = {u: RetryingPublisher(u, [server.url]) for u in users}
    clients = [
        (ReconnectingClient(server.url, make_token(u), last_event_id="0"), u)
        for u in users
        for _ in range(2)
    ]
    async with running(*(c for c, _ in clients)):
        async with publishing(list(pubs.values())):
            for _ in range(2):
                await clients[0][0].wait_for(len(clients[0][0].received) + 10, timeout=10)
                await asyncio.to_thread(server.stop, signal.SIGKILL)
                await asyncio.to_thread(server.start)
            await clients[0][0].wait_for(len(clients[0][0].received) + 10, timeout=10)
        await settle(clients, pubs)
    assert_all_zero(clients, pubs)
    assert all(c.connects >= 3 for c, _ in clients), "the clients never reconnected"


async def test_a_node_kill_and_a_redis_outage_on_postgresql(
    make_cluster: ClusterFactory, private_redis: PrivateRedis, tag: str
) -> None:
    cluster = make_cluster(private_redis.url)
    nodes = cluster.start(2)
    urls = [n.url for n in nodes]
    users = [f"ann-{tag}", f"ben-{tag}", f"cat-{tag}"]
    pubs = {u: RetryingPublisher(u, urls) for u in users}
    # Each user has a stream on each node; the node killed comes back on the same port.
    clients = [
        (ReconnectingClient(node.url, make_token(u), last_event_id="0"), u)
        for u in users
        for node in nodes
    ]
    watch = clients[1][0]  # on the node that survives
    async with running(*(c for c, _ in clients)):
        async with publishing(list(pubs.values())):
            await watch.wait_for(10, timeout=10)
            nodes[0].kill()
            await watch.wait_for(len(watch.received) + 10, timeout=10)
            await asyncio.to_thread(nodes[0].start)
            await watch.wait_for(len(watch.received) + 10, timeout=10)
            private_redis.stop()
            await watch.wait_for(len(watch.received) + 10, timeout=15)
            await asyncio.to_thread(private_redis.start)
            await watch.wait_for(len(watch.received) + 10, timeout=15)
        await settle(clients, pubs)
    assert_all_zero(clients, pubs)
