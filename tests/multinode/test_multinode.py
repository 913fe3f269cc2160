"""Several nodes on one PostgreSQL store and one bus, behind nginx: what a user sees.

Real processes throughout: tidings nodes, PostgreSQL and Redis from `scripts/services` (plus a
private redis-server for the outage test), Debian's nginx with the configuration from
docs/deploy.md, and SSE clients that reconnect with Last-Event-ID like a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.multinode.client import ReconnectingClient, running
from tests.multinode.cluster import Node, Publisher
from tests.multinode.conftest import ROUTED_BUSES, ClusterFactory, NginxFactory, PrivateRedis
from tests.multinode.nginx import Nginx
from tests.support import SENTINEL, make_token, open_stream

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@contextlib.asynccontextmanager
async def publisher(**client: Any) -> AsyncIterator[Publisher]:
    pub = Publisher(**client)
    try:
        yield pub
    finally:
        await pub.aclose()


async def publish_steadily(
    pub: Publisher, urls: list[str], user: str, tag: str, stop: asyncio.Event, every: float
) -> None:
    """One notification every `every` seconds until `stop` (the one in flight completes)."""
    i = 0
    while not stop.is_set():
        await pub.publish(urls, user, f"{tag}-{user}-{i}")
        i += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


@pytest.fixture
def behind_nginx(
    make_cluster: ClusterFactory, redis_bus: str, make_nginx: NginxFactory
) -> tuple[list[Node], Nginx]:
    """Three nodes on the Redis bus behind nginx configured as docs/deploy.md says."""
    nodes = make_cluster(redis_bus).start(3)
    return nodes, make_nginx([n.port for n in nodes])


def through(proxy: Nginx, user: str, **options: Any) -> ReconnectingClient:
    """A browser-like client of `user` that connects (and reconnects) through the proxy."""
    return ReconnectingClient(proxy.url, make_token(user), verify=proxy.ssl_context(), **options)


def assert_exactly_once(client: ReconnectingClient, expected: list[int], where: str) -> None:
    assert client.resets == [], f"{where}: unexpected reset {client.resets}"
    assert client.seqs == expected, (
        f"{where}: got {len(client.seqs)} of {len(expected)}; "
        f"missing {sorted(set(expected) - set(client.seqs))[:10]}, "
        f"duplicated {sorted({s for s in client.seqs if client.seqs.count(s) > 1})[:10]}"
    )


@pytest.mark.parametrize("bus", [*ROUTED_BUSES, "postgres"])
async def test_a_publish_on_one_node_reaches_streams_on_the_others(
    bus: str, make_cluster: ClusterFactory, request: pytest.FixtureRequest, tag: str
) -> None:
    cluster = make_cluster(request.getfixturevalue(f"{bus}_bus"))
    node1, node2, node3 = cluster.start(3)
    user = f"u-{tag}"
    token = make_token(user)
    big = "x" * 3000  # with `data`, over the 8000-byte NOTIFY limit: travels as (user, seq)
    async with (
        publisher() as pub,
        open_stream(node2.url, token) as on2,
        open_stream(node3.url, token) as on3,
    ):
        assert on2.status == on3.status == 200
        for i in range(5):
            began = time.monotonic()
            try:
                seq = await pub.publish(node1.url, user, f"{tag}-{i}")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{cluster.logs()}") from None
            for stream in (on2, on3):
                (got,) = await stream.notifications(1, timeout=5)
                assert (got["id"], got["message"]) == (seq, f"{tag}-{i}")
            assert time.monotonic() - began < 1.0, cluster.logs()
        response = await pub.client.post(
            f"{node1.url}/api/notifications",
            json={"user_id": user, "message": big, "data": {"blob": "y" * 6000}},
        )
        assert response.status_code == 201, response.text
        for stream in (on2, on3):
            (got,) = await stream.notifications(1, timeout=5)
            assert got["id"] == 6
            assert got["data"] == {"blob": "y" * 6000}
        # The publisher's idempotency key is the message: one sentinel per test.
        sentinel = f"{SENTINEL} {tag}"
        await pub.publish(node1.url, user, sentinel)
        for stream in (on2, on3):
            await stream.expect_sentinel(sentinel)


async def test_kill_9_of_the_node_holding_a_stream_loses_nothing(
    behind_nginx: tuple[list[Node], Nginx], tag: str
) -> None:
    nodes, proxy = behind_nginx
    user = f"u-{tag}"
    client = through(proxy, user, last_event_id="0")
    async with publisher() as pub, running(client):
        holder = next(n for n in nodes if n.streams_open() == 1)
        others = [n for n in nodes if n is not holder]
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                publish_steadily(pub, [n.url for n in others], user, tag, stop, every=0.05)
            )
            await client.wait_for(10, timeout=10)
            holder.kill()
            await asyncio.sleep(3)
            stop.set()
        expected = pub.stored[user]
        await client.wait_for(len(expected), timeout=20)
    assert client.connects >= 2, "the client never reconnected"
    assert_exactly_once(client, expected, "after kill -9")
    assert expected == list(range(1, len(expected) + 1))


@pytest.mark.serial
async def test_a_redis_outage_of_5_s_loses_nothing(
    make_cluster: ClusterFactory, private_redis: PrivateRedis, tag: str
) -> None:
    cluster = make_cluster(private_redis.url)
    nodes = cluster.start(3)
    users = [f"a-{tag}", f"b-{tag}"]
    clients = [
        ReconnectingClient(node.url, make_token(user), last_event_id="0")
        for node in nodes
        for user in users
    ]
    urls = [n.url for n in nodes]
    async with publisher() as pub, running(*clients):
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            for user in users:
                tg.create_task(publish_steadily(pub, urls, user, tag, stop, every=0.1))
            await asyncio.sleep(1.5)
            before = {user: len(pub.stored[user]) for user in users}
            private_redis.stop()
            began = time.monotonic()
            async with httpx.AsyncClient(timeout=5) as http:
                # /readyz reports the outage while publishing goes on.
                while (await http.get(f"{nodes[0].url}/readyz")).status_code != 503:
                    assert time.monotonic() - began < 4, "/readyz did not report the bus outage"
                    await asyncio.sleep(0.1)
            await asyncio.sleep(5 - (time.monotonic() - began))
            # What the publishers had stored by the end of the outage: `stored` grows only by
            # answered publishes.
            during = {user: len(pub.stored[user]) for user in users}
            private_redis.start()
            await asyncio.sleep(1.5)
            stop.set()
        for client, (_, user) in zip(clients, [(n, u) for n in nodes for u in users], strict=True):
            await client.wait_for(len(pub.stored[user]), timeout=30)
    for index, client in enumerate(clients):
        user = users[index % len(users)]
        # Publishing went on through the outage (more than the one publish in flight as it
        # began) and after it; how many depends on the machine's speed, not on tidings.
        assert during[user] - before[user] >= 2, (before, during, user)
        assert len(pub.stored[user]) > during[user], (during, user)
        assert_exactly_once(client, pub.stored[user], f"client {index} ({user})")
        # The stream held on: the catch-up came through the open connection.
        assert client.connects == 1
    assert "reconnected; streams catch up from the store" in cluster.logs()


async def test_a_rolling_restart_under_load_loses_nothing_and_duplicates_nothing(
    behind_nginx: tuple[list[Node], Nginx], tag: str
) -> None:
    nodes, proxy = behind_nginx
    users = [f"a-{tag}", f"b-{tag}", f"c-{tag}"]
    clients = [through(proxy, user, last_event_id="0") for user in users for _ in range(2)]
    async with publisher(verify=proxy.ssl_context()) as pub, running(*clients):
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            for user in users:
                tg.create_task(publish_steadily(pub, [proxy.url], user, tag, stop, every=0.1))
            await asyncio.sleep(1)
            for node in nodes:
                await asyncio.to_thread(_restart, node)
            await asyncio.sleep(1)
            stop.set()
        for index, client in enumerate(clients):
            await client.wait_for(len(pub.stored[users[index // 2]]), timeout=30)
    for index, client in enumerate(clients):
        user = users[index // 2]
        assert_exactly_once(client, pub.stored[user], f"client {index} ({user})")
    # Every client was moved off at least one node by the drain, and came back.
    assert all(c.connects >= 2 for c in clients), [c.connects for c in clients]


def _restart(node: Node) -> None:
    took = node.stop()
    assert took < 15, f"the drain took {took:.1f}s"
    node.start()


# A latency bound: under the other workers' load one event in twenty came 113 ms late.
@pytest.mark.alone
async def test_a_stream_through_the_documented_nginx_gets_each_event_within_100_ms(
    behind_nginx: tuple[list[Node], Nginx], tag: str
) -> None:
    nodes, proxy = behind_nginx
    user = f"u-{tag}"
    # HTTP/2 through TLS, as a browser connects.
    client = through(proxy, user, http2=True)
    async with publisher() as pub, running(client):
        for i in range(20):
            await pub.publish(nodes[i % 3].url, user, f"{tag}-{i}")
            await asyncio.sleep(0.05)
        await client.wait_for(20, timeout=10)
    assert client.seqs == list(range(1, 21))
    # From the moment the store stamped it to the moment the client read it.
    delays = [r.at * 1000 - r.created_ms for r in client.received]
    assert max(delays) < 100, f"delays in ms: {[round(d) for d in delays]}"
