"""The bus contract of the per-user buses, on every engine: real Redis, two Redis hashed, a Redis
Cluster and NATS from `scripts/services`, each bus in this process (two or three "nodes").

A node that joined a user receives the user's events, in order, and nothing of the users it did
not join; a subscription confirmed hands the hub a resync of that user; after `leave` the node
lets go once the linger runs out, and a `join` within it keeps the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import service_url
from tidings.bus import routed
from tidings.bus.base import Tally
from tidings.bus.factory import create_bus
from tidings.bus.nats import NatsBus
from tidings.bus.redis import RedisBus
from tidings.bus.routed import RoutedBus
from tidings.events import Event, Published, Resync, ScheduleHint, UserResync
from tidings.models import Notification

pytestmark = pytest.mark.anyio

ENGINES = ["redis", "redis_hashed", "redis_cluster", "nats"]
LINGER = 0.2


def bus_url(engine: str, channel: str) -> str:
    if engine == "redis":
        return f"{service_url('REDIS')}?channel={channel}"
    if engine == "redis_hashed":
        return f"{service_url('REDIS')},{service_url('REDIS2')}?channel={channel}"
    if engine == "redis_cluster":
        return f"{service_url('REDIS_CLUSTER')}?channel={channel}"
    return f"{service_url('NATS')}?channel={channel}"


class Inbox:
    """A node's hub, as far as the bus can tell: every event delivered, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()

    def of(self, user: str) -> list[Event]:
        return [e for e in self.events if getattr(e, "user_id", None) == user]

    def published(self, user: str) -> list[int]:
        return [e.seq for e in self.of(user) if isinstance(e, Published)]


Node = tuple[RoutedBus, Inbox]


@pytest.fixture(params=ENGINES)
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[list[Node]]:
    """Three buses on one engine and one channel prefix of this test's own."""
    url = bus_url(request.param, f"c{uuid.uuid4().hex[:8]}")
    made: list[Node] = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            bus = create_bus(url, "sqlite:///unused.db", LINGER)
            assert isinstance(bus, RoutedBus)
            bus.tally = Tally()
            inbox = Inbox()
            await bus.start(inbox)
            stack.push_async_callback(bus.close)
            assert bus.ready()
            made.append((bus, inbox))
        yield made


async def joined(bus: RoutedBus, inbox: Inbox, user: str) -> None:
    """Join and wait for the subscription, as a stream does."""
    route = bus.join(user)
    if route is not None:
        await asyncio.wait_for(route, 5)
    await inbox.until(lambda: UserResync(user) in inbox.events)


def same_shard(bus: RoutedBus, user: str, other: str) -> bool:
    return bus.shard_of(user) == bus.shard_of(other)


def body(user: str, seq: int, size: int = 10) -> Notification:
    return Notification(
        user_id=user, seq=seq, message="m" * size, link=None, kind=None, data={}, created_ms=1
    )


async def test_only_the_nodes_that_joined_a_user_receive_its_events_in_order(
    nodes: list[Node],
) -> None:
    (one, one_in), (two, two_in), (three, three_in) = nodes
    users = [f"user-{i}" for i in range(8)]  # several, so every shard has some
    for user in users:
        await joined(one, one_in, user)
    await joined(two, two_in, users[0])
    for seq in range(1, 4):
        await three.announce([Published(u, seq, body(u, seq)) for u in users])
    await three.announce([ScheduleHint(123)])
    await one_in.until(lambda: all(one_in.published(u) == [1, 2, 3] for u in users))
    await two_in.until(lambda: two_in.published(users[0]) == [1, 2, 3])
    # Node-wide events reach every node; the scheduler hint comes after the user events on the
    # node that published it too.
    for inbox in (one_in, two_in, three_in):
        await inbox.until(lambda inbox=inbox: ScheduleHint(123) in inbox.events)  # type: ignore[misc]
    assert all(two_in.published(u) == [] for u in users[1:])
    assert three_in.published(users[0]) == []
    counts = [bus.tally.count if bus.tally is not None else None for bus in (one, two, three)]
    assert counts == [len(users) * 3, 3, 0]


async def test_a_batch_to_many_users_arrives_whole(nodes: list[Node]) -> None:
    (one, one_in), _, (three, _) = nodes
    users = [f"many-{i}" for i in range(500)]
    for user in users:
        one.join(user)
    await one_in.until(lambda: sum(isinstance(e, UserResync) for e in one_in.events) == 500)
    # One announce, as a broadcast publish makes: per shard one pipelined write.
    await three.announce([Published(u, 1, body(u, 1)) for u in users])
    await one_in.until(lambda: sum(isinstance(e, Published) for e in one_in.events) == 500)
    assert {e.user_id for e in one_in.events if isinstance(e, Published)} == set(users)


async def test_a_notification_larger_than_a_message_travels_as_user_and_seq(
    nodes: list[Node],
) -> None:
    (one, one_in), _, (three, _) = nodes
    await joined(one, one_in, "big")
    await three.announce([Published("big", 1, body("big", 1, size=one.limit + 10))])
    await one_in.until(lambda: one_in.published("big") == [1])
    (got,) = [e for e in one_in.of("big") if isinstance(e, Published)]
    assert got.notification is None  # the stream reads it from the store


async def test_after_the_linger_a_node_lets_go_and_a_join_within_it_keeps_the_subscription(
    nodes: list[Node],
) -> None:
    (one, one_in), (two, two_in), (three, _) = nodes
    await joined(one, one_in, "stay")
    await joined(one, one_in, "go")
    await joined(two, two_in, "go")  # a witness: "go" is announced, and arrives there
    one.leave("stay")
    one.leave("go")
    assert one.join("stay") is None  # back within the linger: still subscribed, nothing to wait
    async with asyncio.timeout(5):
        while one.routed() != 1:  # noqa: ASYNC110 (the linger is a timer inside the bus)
            await asyncio.sleep(LINGER / 4)
    # The unsubscribe of "go" is now on its way to the server, and another node's publish may
    # overtake it (two connections). A subscription sent after it on the same connection (the
    # same shard), once confirmed, was served after it: from then on "go" is not sent here.
    probe = next(p for p in (f"probe-{i}" for i in itertools.count()) if same_shard(one, p, "go"))
    await joined(one, one_in, probe)
    resyncs = one_in.events.count(UserResync("stay"))
    await three.announce([Published("go", 1), Published("stay", 1)])
    await two_in.until(lambda: two_in.published("go") == [1])
    await one_in.until(lambda: one_in.published("stay") == [1])
    assert one_in.published("go") == []
    assert one_in.events.count(UserResync("stay")) == resyncs  # no resubscription happened
    # And joining again subscribes again.
    await joined(one, one_in, "go")
    await three.announce([Published("go", 2)])
    await one_in.until(lambda: one_in.published("go") == [2])


async def test_a_closed_node_receives_nothing_more(nodes: list[Node]) -> None:
    (one, one_in), (two, two_in), (three, _) = nodes
    await joined(one, one_in, "x")
    await joined(two, two_in, "x")
    await one.close()
    count = len(one_in.events)
    await three.announce([Published("x", 1)])
    await two_in.until(lambda: two_in.published("x") == [1])
    assert len(one_in.events) == count
    assert not one.ready()


def _drop_publishing_connection(bus: RoutedBus, user: str) -> None:
    """The connection an announcement of `user` went out on fails before anything confirmed it
    (called in the same turn of the loop as the announce: on Redis nothing was written yet)."""
    if isinstance(bus, RedisBus):
        bus._publishers[bus.shard_of(user)].close()
    else:
        assert isinstance(bus, NatsBus)
        asyncio.get_running_loop().create_task(bus._client.close())


async def test_an_announcement_lost_with_its_connection_before_it_was_confirmed_is_a_resync(
    nodes: list[Node],
) -> None:
    # An announcement is pipelined: its publish does not wait for the engine's reply. If the
    # connection fails before the next checkpoint, the user is owed a resync, as when the
    # announcement itself fails: the user's streams look in the store.
    (one, one_in), _, (three, _) = nodes
    await joined(one, one_in, "unconfirmed")
    before = len(one_in.events)
    await three.announce([Published("unconfirmed", 1)])
    _drop_publishing_connection(three, "unconfirmed")
    await one_in.until(lambda: UserResync("unconfirmed") in one_in.events[before:], timeout=10)
    # And the bus publishes on a fresh connection afterwards.
    await three.announce([Published("unconfirmed", 2)])
    await one_in.until(lambda: 2 in one_in.published("unconfirmed"))


@pytest.mark.parametrize("engine", ["redis_hashed", "redis_cluster"])
async def test_past_owed_max_on_another_shard_every_node_hears_one_resync(engine: str) -> None:
    """More users owed a resync on one shard than OWED_MAX: one node-wide resync instead, sent on
    the shard that carries the node-wide channel (on another instance nobody listens; a cluster
    master that does not own the channel's slot answers MOVED, again and again)."""
    url = bus_url(engine, f"c{uuid.uuid4().hex[:8]}")
    async with contextlib.AsyncExitStack() as stack:
        made: list[Node] = []
        for _ in range(2):
            bus = create_bus(url, "sqlite:///unused.db", LINGER)
            assert isinstance(bus, RoutedBus)
            inbox = Inbox()
            await bus.start(inbox)
            stack.push_async_callback(bus.close)
            made.append((bus, inbox))
        (one, _), (_, two_in) = made
        other = next(s for s in one.shards if s.index != one.home_shard())
        one._owe(other, {f"u{i}" for i in range(routed.OWED_MAX + 1)}, False)
        await one._send({})
        await two_in.until(lambda: any(isinstance(e, Resync) for e in two_in.events))
        assert not any(s.owe_all or s.owed for s in one.shards)


async def test_a_checkpoint_cancelled_midway_owes_what_it_was_confirming() -> None:
    """The listener cancels its ticker when the connection drops, possibly in the middle of a
    checkpoint: the users that checkpoint was confirming are owed a resync, not forgotten."""
    bus = create_bus(bus_url("redis", f"c{uuid.uuid4().hex[:8]}"), "sqlite:///unused.db", LINGER)
    assert isinstance(bus, RoutedBus)
    await bus.start(Inbox())
    try:
        shard = bus.shards[0]
        stuck = asyncio.Event()

        async def never(_: object) -> None:
            await stuck.wait()

        bus._confirm = never  # type: ignore[method-assign,assignment]
        shard.unconfirmed.add("alice")
        checkpoint = asyncio.create_task(bus._checkpoint(shard))
        await asyncio.sleep(0.05)
        checkpoint.cancel()
        with pytest.raises(asyncio.CancelledError):
            await checkpoint
        assert "alice" in shard.owed
    finally:
        await bus.close()


async def test_a_nats_subscription_left_unconfirmed_reconnects_and_the_user_is_resynced() -> None:
    """No PONG in time for a subscription: the connection starts afresh (subscribing everyone),
    so the user's stream is not left waiting for a confirmation that never comes."""
    inbox = Inbox()
    bus = create_bus(bus_url("nats", f"c{uuid.uuid4().hex[:8]}"), "sqlite:///unused.db", LINGER)
    assert isinstance(bus, NatsBus)
    await bus.start(inbox)
    try:
        client = bus._client
        real = client.flush
        calls = 0

        async def late_once(timeout: float | None = None) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise TimeoutError("no PONG in time")
            await real(timeout=timeout)

        client.flush = late_once
        route = bus.join("u")
        assert route is not None
        await asyncio.wait_for(route, 10)
        await inbox.until(lambda: UserResync("u") in inbox.events, timeout=10)
        assert bus._client is not client
        assert not bus.shards[0].inflight
    finally:
        await bus.close()


async def test_nats_user_dropped_and_joined_while_resubscribing_has_one_subscription() -> None:
    """After a reconnect the node subscribes its users again, one SUB after another. A user
    dropped and joined again meanwhile must end with one subscription: two would deliver each of
    its events twice."""
    url = bus_url("nats", f"c{uuid.uuid4().hex[:8]}")
    inbox, other_in = Inbox(), Inbox()
    bus = create_bus(url, "sqlite:///unused.db", LINGER)
    other = create_bus(url, "sqlite:///unused.db", LINGER)
    assert isinstance(bus, NatsBus)
    assert isinstance(other, RoutedBus)
    await bus.start(inbox)
    await other.start(other_in)
    try:
        await joined(bus, inbox, "u1")
        gate = asyncio.Event()
        blocked = asyncio.Event()
        connect = bus._connect

        async def gated_connect() -> Any:
            client = await connect()
            subscribe = client.subscribe

            async def gated(subject: str, **kwargs: Any) -> Any:
                if subject == bus.user_subject("u1"):
                    blocked.set()
                    await gate.wait()
                return await subscribe(subject, **kwargs)

            client.subscribe = gated
            return client

        bus._connect = gated_connect  # type: ignore[method-assign]
        await bus._client.close()  # the listener reconnects, and resubscribes u1 behind the gate
        await asyncio.wait_for(blocked.wait(), 10)
        bus.leave("u1")
        await asyncio.sleep(LINGER * 2)  # dropped: its unsubscribe goes out
        route = bus.join("u1")  # and joined again: its subscribe goes out
        assert route is not None
        await asyncio.sleep(0.1)
        gate.set()
        await asyncio.wait_for(route, 10)
        await other.announce([Published("u1", 7, body("u1", 7))])
        await inbox.until(lambda: inbox.published("u1") != [])
        await asyncio.sleep(0.3)
        assert inbox.published("u1") == [7]
    finally:
        await bus.close()
        await other.close()
