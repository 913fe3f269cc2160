"""Per-user routing on every engine that has it: a node receives only its own users' traffic.

Real nodes (`tidings serve`) on the PostgreSQL store and each bus of `scripts/services` (one Redis,
two Redis hashed, a Redis Cluster of three masters, NATS); what a node received from the bus is
read from its /metrics (`tidings_bus_announcements_received_total`), what a user saw from SSE.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.multinode.cluster import Node, Publisher
from tests.multinode.conftest import ROUTED_BUSES, ClusterFactory
from tests.support import SENTINEL, Stream, make_token, open_stream, run_cli

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RECEIVED = "tidings_bus_announcements_received_total"
LINGER = 0.3


def received(node: Node) -> float:
    return node.metric(RECEIVED)


async def lingered(node: Node, users: float) -> None:
    """Wait until `node` holds subscriptions for `users` users (the linger ran out)."""
    async with asyncio.timeout(10):
        # ASYNC110 on purpose: the state shows only in another process's /metrics.
        while node.metric("tidings_bus_users_routed") != users:  # noqa: ASYNC110
            await asyncio.sleep(LINGER / 3)


@pytest.mark.parametrize("bus", ROUTED_BUSES)
async def test_a_node_holding_no_stream_of_a_user_receives_none_of_its_announcements(
    bus: str, make_cluster: ClusterFactory, request: pytest.FixtureRequest, tag: str
) -> None:
    cluster = make_cluster(request.getfixturevalue(f"{bus}_bus"), bus_linger=str(LINGER))
    holder, idle = cluster.start(2)
    # Many users, so on the sharded engines they land on every shard.
    users = [f"u{i}-{tag}" for i in range(6)]
    nobody = f"nobody-{tag}"
    pub = Publisher()
    try:
        async with contextlib_streams(holder, users) as streams:
            for round_ in range(3):
                for user in users:
                    await pub.publish(idle.url, user, f"{tag}-{user}-{round_}")
                await pub.publish(holder.url, nobody, f"{tag}-nobody-{round_}")
            for user, stream in zip(users, streams, strict=True):
                got = await stream.notifications(3, timeout=10)
                assert [n["message"] for n in got] == [f"{tag}-{user}-{r}" for r in range(3)]
            sentinel = f"{SENTINEL} {tag}"
            await pub.publish(idle.url, users[0], sentinel)
            await streams[0].expect_sentinel(sentinel)
    finally:
        await pub.aclose()
    # The node that holds the streams got exactly its users' events; the other, none at all
    # (neither theirs nor those of the user nobody listens for).
    assert received(holder) == len(users) * 3 + 1, cluster.logs()
    assert received(idle) == 0, cluster.logs()


class contextlib_streams:
    """One open stream per user on `node`, all opened before the block runs."""

    def __init__(self, node: Node, users: list[str]) -> None:
        self._openers = [open_stream(node.url, make_token(u)) for u in users]

    async def __aenter__(self) -> list[Stream]:
        streams = [await opener.__aenter__() for opener in self._openers]
        for stream in streams:
            assert stream.status == 200
        return streams

    async def __aexit__(self, *exc: object) -> None:
        for opener in reversed(self._openers):
            await opener.__aexit__(None, None, None)


@pytest.mark.parametrize("bus", ROUTED_BUSES)
async def test_a_stream_moving_between_nodes_misses_nothing_and_the_old_node_lets_go(
    bus: str, make_cluster: ClusterFactory, request: pytest.FixtureRequest, tag: str
) -> None:
    cluster = make_cluster(request.getfixturevalue(f"{bus}_bus"), bus_linger=str(LINGER))
    one, two = cluster.start(2)
    user = f"mover-{tag}"
    token = make_token(user)
    pub = Publisher()
    seen: list[int] = []
    hops = [(one, two), (two, one), (one, two), (two, one)]
    try:
        for hop, (here, there) in enumerate(hops):
            # Published while the user has no stream on any node (and no node is subscribed).
            away = await pub.publish(there.url, user, f"{tag}-away-{hop}")
            last = str(seen[-1]) if seen else "0"
            async with open_stream(here.url, token, last_event_id=last) as stream:
                assert stream.status == 200
                (replayed,) = await stream.notifications(1, timeout=10)
                # Alone, right after the stream opened, through the other node: it must come
                # live (no later publish would fill a gap for it).
                live = await pub.publish(there.url, user, f"{tag}-live-{hop}")
                (got,) = await stream.notifications(1, timeout=5)
                seen += [replayed["id"], got["id"]]
                assert (replayed["id"], got["id"]) == (away, live), cluster.logs()
            # The node the stream left drops the user's subscription once the linger runs out.
            await lingered(here, 0)
    finally:
        await pub.aclose()
    assert seen == pub.stored[user] == list(range(1, 2 * len(hops) + 1))
    # Each node received the live notifications of its own hops and nothing else: none of the
    # ones published while it held no stream (it had let go of the user).
    assert received(one) == received(two) == len(hops) // 2, cluster.logs()


@pytest.mark.parametrize("bus", ROUTED_BUSES)
async def test_tidings_send_reaches_a_stream_on_a_running_node_live(
    bus: str, make_cluster: ClusterFactory, request: pytest.FixtureRequest, tag: str
) -> None:
    # `tidings send` announces and exits at once: its announcement is pipelined (nothing waits
    # for the engine's reply per publish), so closing the bus must still get it out.
    cluster = make_cluster(request.getfixturevalue(f"{bus}_bus"), bus_linger=str(LINGER))
    (node,) = cluster.start(1)
    user = f"cli-{tag}"
    async with open_stream(node.url, make_token(user)) as stream:
        assert stream.status == 200
        sent = await asyncio.to_thread(run_cli, cluster.env, "send", user, f"{tag}-from-cli")
        assert sent.returncode == 0, sent.stderr
        (got,) = await stream.notifications(1, timeout=10)
        assert got["message"] == f"{tag}-from-cli"
