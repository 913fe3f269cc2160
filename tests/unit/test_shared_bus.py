"""The bus between nodes (`SharedBus`, under the Redis and PostgreSQL buses) over an in-memory
broker: events reach every node, and an outage ends with every stream told to check the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from tests.unit.fakes import Broker, BrokerBus
from tidings.bus import shared, wire
from tidings.events import Event, Published, ReadChanged, Resync

pytestmark = pytest.mark.anyio


class Inbox:
    """A node's hub, as far as the bus can tell: every event delivered, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, done: Callable[[], bool], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()

    async def receives(self, event: Event) -> None:
        await self.until(lambda: event in self.events)

    def published(self) -> list[Event]:
        return [e for e in self.events if not isinstance(e, Resync)]


async def until(done: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait for a state the bus shows only by `ready()`, looking every few milliseconds."""
    # ASYNC110 (poll instead of an Event) on purpose: an outage shows only in ready().
    async with asyncio.timeout(timeout):
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(broker: Broker, **options: float) -> AsyncIterator[tuple[BrokerBus, Inbox]]:
    bus = BrokerBus(broker, **options)  # type: ignore[arg-type]
    inbox = Inbox()
    await bus.start(inbox)
    try:
        yield bus, inbox
    finally:
        await bus.close()


def event(seq: int, user: str = "ann") -> Published:
    return Published(user, seq)


async def test_a_node_that_subscribes_checks_the_store_first() -> None:
    async with running(Broker()) as (bus, inbox):
        assert bus.ready()
        assert inbox.events == [Resync()]


async def test_what_one_node_announces_every_node_receives_in_order() -> None:
    broker = Broker()
    async with running(broker) as (a, on_a), running(broker) as (_, on_b):
        await a.announce([event(1), ReadChanged("ann", 0, up_to=1), event(1, "bob")])
        for inbox in (on_a, on_b):
            await inbox.receives(event(1, "bob"))
            assert inbox.published() == [event(1), ReadChanged("ann", 0, up_to=1), event(1, "bob")]


async def test_a_large_announcement_is_split_into_messages_the_broker_takes() -> None:
    broker = Broker()
    async with running(broker, limit=300) as (a, _), running(broker) as (_, on_b):
        events = [event(seq) for seq in range(1, 101)]
        await a.announce(events)
        await on_b.receives(events[-1])
        assert on_b.published() == events
    assert len(broker.published) > 1
    assert all(len(m.encode()) <= 300 for m in broker.published)


async def test_a_malformed_message_on_the_channel_is_skipped() -> None:
    broker = Broker()
    async with running(broker) as (a, _), running(broker) as (_, on_b):
        broker.inject("not json")
        broker.inject('[{"t":"p"}]')
        await a.announce([event(1)])  # the sentinel: anything before it has been read
        await on_b.receives(event(1))
        assert on_b.published() == [event(1)]
        assert a.ready()


async def test_a_hub_that_fails_on_one_event_still_gets_the_next() -> None:
    broker = Broker()
    inbox = Inbox()

    def deliver(received: Event) -> None:
        if received == event(1):
            raise RuntimeError("a bug in a subscriber")
        inbox(received)

    bus = BrokerBus(broker)
    await bus.start(deliver)
    try:
        await bus.announce([event(1), event(2)])
        await inbox.receives(event(2))
        await bus.announce([event(3)])
        await inbox.receives(event(3))
    finally:
        await bus.close()
    assert inbox.published() == [event(2), event(3)]


async def test_after_a_lost_connection_the_node_reconnects_and_every_stream_checks() -> None:
    broker = Broker()
    async with running(broker) as (bus, inbox):
        inbox.events.clear()
        broker.go_down()
        await until(lambda: not bus.ready())
        broker.come_back()
        await inbox.receives(Resync())
        assert bus.ready()
        # And it is subscribed again: announcements arrive.
        await bus.announce([event(7)])
        await inbox.receives(event(7))


async def test_a_failed_announce_is_owed_as_a_resync_to_every_node() -> None:
    broker = Broker()
    async with running(broker) as (a, _), running(broker) as (_, on_b):
        on_b.events.clear()
        broker.refuse_publish = True
        with pytest.raises(ConnectionError):
            await a.announce([event(1)])
        broker.refuse_publish = False
        # B never lost its subscription: the resync it gets is the one A owed.
        await on_b.receives(Resync())
        assert broker.published == [wire.resync_message()]


async def test_an_owed_resync_goes_out_before_the_next_announcement() -> None:
    broker = Broker()
    # A tick of a minute: the resync is paid by the next announce, not by the timer.
    async with running(broker, tick=60) as (a, _), running(broker) as (_, on_b):
        on_b.events.clear()
        broker.refuse_publish = True
        with pytest.raises(ConnectionError):
            await a.announce([event(1)])
        broker.refuse_publish = False
        await a.announce([event(2)])
        await on_b.receives(event(2))
        assert on_b.events == [Resync(), event(2)]


async def test_a_node_started_while_the_broker_is_down_serves_and_catches_up_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared, "START_WAIT", 0.05)
    broker = Broker()
    broker.go_down()
    async with running(broker) as (bus, inbox):
        assert not bus.ready()
        assert inbox.events == []
        broker.come_back()
        await inbox.receives(Resync())
        assert bus.ready()


async def test_a_closed_node_receives_nothing_more() -> None:
    broker = Broker()
    async with running(broker) as (a, on_a):
        async with running(broker) as (b, on_b):
            pass
        assert not b.ready()
        await a.announce([event(1)])
        await on_a.receives(event(1))  # the sentinel: B would have had it by now
    assert on_b.published() == []
    assert broker.listeners == []
