"""The hub and each stream's mailbox, driven directly: what a stream is handed, and when it stops.

Like centrifuge's hub_test.go: no network, milliseconds per test.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.conftest import unit_settings
from tidings import sse
from tidings.events import Deleted, Published, ReadChanged, Resync, UserResync
from tidings.hub import (
    CHECK,
    HEARTBEAT_SLOTS,
    PING,
    PINGS_PER_WAKE,
    End,
    Frame,
    Hub,
    Item,
    Subscriber,
)
from tidings.metrics import Metrics
from tidings.models import Notification

pytestmark = pytest.mark.anyio


def frame(seq: int, size: int = 10) -> Frame:
    return Frame(seq, b"x" * size, 0)


def make_hub(**changes: object) -> Hub:
    return Hub(unit_settings(**changes), Metrics())


def queued(sub: Subscriber) -> list[object]:
    """What the stream would write next, without waiting (empty when nothing is queued)."""
    return list(sub._items)  # the mailbox's content is what these tests are about


# --- one stream's mailbox ------------------------------------------------------------------------


async def test_a_stream_that_falls_behind_by_items_is_stopped_as_slow() -> None:
    sub = Subscriber("ann", max_items=3, max_bytes=10_000)
    for seq in (1, 2, 3):
        sub.push(frame(seq))
    assert sub.reason is None
    sub.push(frame(4))
    assert sub.reason == "slow"


async def test_a_stream_that_falls_behind_by_bytes_is_stopped_as_slow() -> None:
    sub = Subscriber("ann", max_items=100, max_bytes=100)
    sub.push(frame(1, size=60))
    sub.push(b"y" * 40)
    assert sub.reason is None
    sub.push(frame(2, size=1))
    assert sub.reason == "slow"


async def test_taking_the_queue_makes_room_again() -> None:
    sub = Subscriber("ann", max_items=2, max_bytes=100)
    sub.push(frame(1, size=50))
    sub.push(frame(2, size=50))
    assert [f.seq for f in await sub.take() if isinstance(f, Frame)] == [1, 2]
    sub.push(frame(3, size=50))
    sub.push(frame(4, size=50))
    assert sub.reason is None


async def test_nothing_is_queued_after_a_stream_is_stopped() -> None:
    sub = Subscriber("ann", max_items=1, max_bytes=100)
    sub.push(frame(1))
    sub.push(frame(2))
    assert sub.reason == "slow"
    for item in (frame(3), PING, CHECK, End("drain", 500)):
        sub.push(item)
    assert [f.seq for f in queued(sub) if isinstance(f, Frame)] == [1]
    assert len(queued(sub)) == 1


async def test_the_first_reason_to_stop_is_the_one_reported() -> None:
    sub = Subscriber("ann", max_items=1, max_bytes=100)
    sub.abort("client")
    sub.abort("slow")
    assert sub.reason == "client"


async def test_stopping_interrupts_a_stream_stuck_in_a_write() -> None:
    sub = Subscriber("ann", max_items=1, max_bytes=100)
    stuck_write = asyncio.Event()  # never set: a client that does not read

    async def write() -> None:
        async with asyncio.timeout(None) as scope:
            sub.bind(scope)
            asyncio.get_running_loop().call_soon(sub.push, frame(1))
            asyncio.get_running_loop().call_soon(sub.push, frame(2))
            async with asyncio.timeout(5):  # the outer scope fires long before this
                await stuck_write.wait()

    with pytest.raises(TimeoutError):
        await write()
    assert sub.reason == "slow"


async def test_an_end_is_queued_even_when_the_queue_is_full() -> None:
    sub = Subscriber("ann", max_items=1, max_bytes=100)
    sub.push(frame(1))
    sub.push(End("drain", retry_ms=700))
    assert sub.reason is None
    assert isinstance(queued(sub)[-1], End)


async def test_a_ping_is_queued_only_when_nothing_else_is() -> None:
    sub = Subscriber("ann", max_items=100, max_bytes=10_000)
    sub.push(PING)
    sub.push(PING)
    assert queued(sub) == [PING]
    await sub.take()
    sub.push(frame(1))
    sub.push(PING)  # the frame keeps the connection alive already
    assert [type(item) for item in queued(sub)] == [Frame]


async def test_pings_never_overflow_a_stream_that_does_not_read() -> None:
    sub = Subscriber("ann", max_items=2, max_bytes=100)
    sub.push(frame(1))
    for _ in range(1000):
        sub.push(PING)
    assert sub.reason is None
    assert len(queued(sub)) == 1


async def test_one_pending_check_covers_any_number() -> None:
    sub = Subscriber("ann", max_items=100, max_bytes=10_000)
    sub.push(CHECK)
    sub.push(frame(1))
    sub.push(CHECK)
    sub.push(CHECK)
    assert [item for item in queued(sub) if item is CHECK] == [CHECK]
    await sub.take()
    sub.push(CHECK)
    assert queued(sub) == [CHECK]


async def test_take_waits_for_the_next_item_and_returns_everything_queued() -> None:
    sub = Subscriber("ann", max_items=100, max_bytes=10_000)
    waiting = asyncio.create_task(sub.take())
    await asyncio.sleep(0)
    assert not waiting.done()
    sub.push(frame(1))
    sub.push(b"event: x\n\n")
    async with asyncio.timeout(2):
        items = await waiting
    assert len(items) == 2


async def test_check_later_queues_one_check_after_the_delay() -> None:
    sub = Subscriber("ann", max_items=100, max_bytes=10_000)
    sub.check_later(0.01)
    sub.check_later(0.01)  # one pending at a time
    async with asyncio.timeout(2):
        assert await sub.take() == [CHECK]


# --- the hub -------------------------------------------------------------------------------------


async def test_streams_are_counted_in_and_out() -> None:
    hub = make_hub()
    a, b = hub.new_subscriber("ann"), hub.new_subscriber("bob")
    assert hub.add(a, None)
    assert hub.add(b, None)
    assert len(hub) == 2
    assert hub.metrics.registry.get_sample_value("tidings_streams_open") == 2
    hub.remove(a)
    hub.remove(a)  # twice is harmless
    assert len(hub) == 1
    hub.remove(b)
    assert len(hub) == 0
    assert hub.metrics.registry.get_sample_value("tidings_streams_open") == 0
    async with asyncio.timeout(2):
        await hub.emptied()


async def test_a_user_at_the_stream_cap_is_refused_another_and_others_are_not() -> None:
    hub = make_hub(max_streams_per_user=2)
    first, second = hub.new_subscriber("ann"), hub.new_subscriber("ann")
    assert hub.add(first, None)
    assert hub.add(second, None)
    assert not hub.add(hub.new_subscriber("ann"), None)
    assert hub.add(hub.new_subscriber("bob"), None)
    hub.remove(first)
    assert hub.add(hub.new_subscriber("ann"), None)


async def test_an_event_goes_to_every_stream_of_its_user_and_no_one_else() -> None:
    hub = make_hub()
    ann1, ann2, bob = (hub.new_subscriber(u) for u in ("ann", "ann", "bob"))
    for sub in (ann1, ann2, bob):
        hub.add(sub, None)
    n = Notification("ann", 5, "hi", None, None, {}, 1)
    hub.deliver(Published("ann", 5, n))
    hub.deliver(ReadChanged("ann", unread=0, up_to=5))
    hub.deliver(Deleted("ann", 5, 0))
    hub.deliver(Published("carol", 1))  # nobody here: dropped
    for sub in (ann1, ann2):
        items = queued(sub)
        assert isinstance(items[0], Frame)
        assert items[0].seq == 5
        assert items[0].body is not None
        assert b'"message":"hi"' in items[0].body
        assert items[1] == b'event: notifications-read\ndata: {"unread":0,"up_to":5}\n\n'
        assert items[2] == b'event: notification-deleted\ndata: {"id":5,"unread":0}\n\n'
    assert queued(bob) == []


async def test_a_published_event_without_its_notification_is_a_frame_to_fill_from_the_store() -> (
    None
):
    hub = make_hub()
    sub = hub.new_subscriber("ann")
    hub.add(sub, None)
    hub.deliver(Published("ann", 9))
    [item] = queued(sub)
    assert isinstance(item, Frame)
    assert item.seq == 9
    assert item.body is None


async def test_a_resync_asks_every_stream_to_check_the_store() -> None:
    hub = make_hub()
    subs = [hub.new_subscriber(user) for user in ("ann", "bob", "bob")]
    for sub in subs:
        hub.add(sub, None)
    hub.deliver(Resync())
    hub.deliver(Resync())
    assert [queued(sub) for sub in subs] == [[CHECK]] * 3


async def test_heartbeats_visit_a_few_slots_per_wake_up() -> None:
    # A 3.2 s heartbeat over 1,024 streams: a wake-up gathers about PINGS_PER_WAKE pings (0.1 s
    # of slots), so the streams' pings are spread over the period, not sent at once.
    hub = make_hub(heartbeat=3.2)
    subs = [hub.new_subscriber(f"user-{i}") for i in range(2 * HEARTBEAT_SLOTS)]
    for sub in subs:
        hub.add(sub, None)
    beating = asyncio.create_task(hub.heartbeat())
    try:
        async with asyncio.timeout(2):
            first = await subs[0].take()
        pinged = [sub for sub in subs[1:] if queued(sub)]
        assert first == [PING]
        assert PINGS_PER_WAKE // 2 <= len(pinged) + 1 <= 2 * PINGS_PER_WAKE
        assert all(queued(sub) == [PING] for sub in pinged)
    finally:
        beating.cancel()


async def test_the_heartbeat_keeps_to_its_period_when_each_tick_wakes_late() -> None:
    # 0.128 s over 512 slots is a 0.25 ms tick, and the event loop's timers wake no sooner than
    # a millisecond: ticks counted one sleep each stretched the round four times (the watchdog of a
    # client told the heartbeat then reopens the stream). Kept to the clock, every slot is visited
    # within about one heartbeat.
    heartbeat = 0.128
    hub = make_hub(heartbeat=heartbeat)
    subs = [hub.new_subscriber(f"user-{i}") for i in range(HEARTBEAT_SLOTS)]
    for sub in subs:
        hub.add(sub, None)
    loop = asyncio.get_running_loop()
    began = loop.time()
    beating = asyncio.create_task(hub.heartbeat())
    try:
        async with asyncio.timeout(5):
            assert await subs[-1].take() == [PING]  # the last slot
        took = loop.time() - began
        assert all(queued(sub) == [PING] for sub in subs[:-1])
        assert took < 3 * heartbeat, f"{took:.3f} s for one round of a {heartbeat} s heartbeat"
    finally:
        beating.cancel()


async def test_a_stream_whose_token_expires_is_ended() -> None:
    hub = make_hub()
    sub = hub.new_subscriber("ann")
    hub.add(sub, asyncio.get_running_loop().time() + 0.01)
    async with asyncio.timeout(2):
        [end] = await sub.take()
    assert isinstance(end, End)
    assert end.reason == "expired"


async def test_a_removed_stream_gets_nothing_more_not_even_its_expiry() -> None:
    hub = make_hub()
    sub = hub.new_subscriber("ann")
    loop = asyncio.get_running_loop()
    hub.add(sub, loop.time())
    hub.remove(sub)
    hub.deliver(Published("ann", 1))
    hub.deliver(Resync())
    # A sentinel timer due after the expiry timer: once it fired, the expiry would have too.
    sentinel = loop.create_future()
    loop.call_later(0.01, sentinel.set_result, None)
    async with asyncio.timeout(2):
        await sentinel
    assert queued(sub) == []


@pytest.mark.parametrize(
    ("streams", "per_second", "top", "expected"),
    [
        (50, 5000, 5000, 1000),  # a few streams: the narrowest spread, 500..1,000 ms
        (10_000, 5000, 5000, 2500),  # 10,000 at 5,000/s: two seconds wide
        (10_000, 5000, 2000, 2000),  # never past TIDINGS_DRAIN_RETRY_MAX_MS
        (100_000, 5000, 5000, 5000),
        (3, 0, 5000, 5000),  # 0: always the whole spread
        (10_001, 5000, 60_000, 2501),  # rounded up, not down
    ],
)
def test_a_drain_spreads_its_streams_as_wide_as_their_number_needs(
    streams: int, per_second: int, top: int, expected: int
) -> None:
    assert sse.drain_top_ms(streams, per_second, top) == expected


async def test_a_large_drain_spreads_wider_up_to_the_maximum() -> None:
    hub = make_hub(drain_retry_max_ms=5000, drain_reconnects_per_s=100)
    subs = [hub.new_subscriber(f"user-{i}") for i in range(300)]
    for sub in subs:
        hub.add(sub, None)
    hub.drain()
    # 300 streams at 100/s: 3 s wide, from 500 ms.
    assert hub.drain_top_ms == 3500
    retries = [e.retry_ms for sub in subs if isinstance(e := queued(sub)[-1], End)]
    assert len(retries) == 300
    assert all(r is not None and 500 <= r <= 3500 for r in retries)
    assert max(r for r in retries if r is not None) > 2500  # the whole width is used


async def test_drain_ends_every_stream_with_a_spread_retry() -> None:
    hub = make_hub(drain_retry_max_ms=3000)
    subs = [hub.new_subscriber(f"user-{i}") for i in range(50)]
    for sub in subs:
        hub.add(sub, None)
    hub.drain()
    assert hub.draining
    ends = [queued(sub)[-1] for sub in subs]
    assert all(isinstance(e, End) and e.reason == "drain" for e in ends)
    retries = {e.retry_ms for e in ends if isinstance(e, End)}
    # 50 streams at 5,000 reconnects/s need no more than the narrowest spread: back within 1 s.
    assert hub.drain_top_ms == 1000
    assert all(r is not None and 500 <= r <= 1000 for r in retries)
    assert len(retries) > 10  # spread, so clients do not all come back in the same instant
    emptied = asyncio.create_task(hub.emptied())
    for sub in subs[:-1]:
        hub.remove(sub)
    await asyncio.sleep(0)
    assert not emptied.done()
    hub.remove(subs[-1])
    async with asyncio.timeout(2):
        await emptied


# --- per-user routing: what the hub tells the bus --------------------------------------------


class Routes:
    """The bus's side of routing, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def join(self, user_id: str) -> asyncio.Future[None] | None:
        self.calls.append(("join", user_id))
        return None

    def leave(self, user_id: str) -> None:
        self.calls.append(("leave", user_id))


async def test_the_bus_hears_each_stream_open_and_only_the_last_one_close() -> None:
    hub = make_hub()
    routes = Routes()
    hub.routes = routes
    first, second, other = (
        hub.new_subscriber("ann"),
        hub.new_subscriber("ann"),
        hub.new_subscriber("bob"),
    )
    for sub in (first, second, other):
        assert hub.add(sub, None)
    hub.remove(first)
    assert ("leave", "ann") not in routes.calls  # ann still has a stream here
    hub.remove(second)
    hub.remove(other)
    assert routes.calls == [
        ("join", "ann"),
        ("join", "ann"),
        ("join", "bob"),
        ("leave", "ann"),
        ("leave", "bob"),
    ]


async def test_a_stream_refused_at_the_cap_is_not_routed() -> None:
    hub = make_hub(max_streams_per_user=1)
    routes = Routes()
    hub.routes = routes
    assert hub.add(hub.new_subscriber("ann"), None)
    assert not hub.add(hub.new_subscriber("ann"), None)
    assert routes.calls == [("join", "ann")]


async def test_a_per_user_resync_makes_only_that_users_streams_check() -> None:
    hub = make_hub()
    ann, bob = hub.new_subscriber("ann"), hub.new_subscriber("bob")
    hub.add(ann, None)
    hub.add(bob, None)
    hub.deliver(UserResync("ann"))
    assert queued(ann) == [CHECK]
    assert queued(bob) == []


async def test_a_stream_about_to_read_the_store_forgets_the_checks_queued_so_far() -> None:
    sub = Subscriber("ann", max_items=10, max_bytes=10_000)
    sub.push(CHECK)
    sub.push(frame(1))
    sub.forget_checks()
    assert [item.seq for item in queued(sub) if isinstance(item, Frame)] == [1]
    assert CHECK not in queued(sub)


# --- frames written straight to an idle stream's connection (Subscriber.write) --------------------


class Connection:
    """A stream's connection as the hub sees it: what was written, and whether it takes more."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.writable = True

    def write_frame(self, body: bytes) -> bool:
        if not self.writable:
            return False
        self.written.append(body)
        return True


async def parked(
    hub: Hub, user: str, last: int
) -> tuple[Subscriber, Connection, asyncio.Task[list[Item]]]:
    """A stream past its catch-up at `last`, waiting in `take` with nothing queued."""
    sub = hub.new_subscriber(user)
    hub.add(sub, None)
    conn = Connection()
    sub.writer = conn
    sub.last = last
    taking = asyncio.create_task(sub.take())
    await asyncio.sleep(0)
    return sub, conn, taking


def published(user: str, seq: int) -> Published:
    return Published(user, seq, Notification(user, seq, f"n{seq}", None, None, {}, 1))


async def test_a_waiting_stream_gets_the_next_frames_written_without_waking_its_task() -> None:
    hub = make_hub()
    sub, conn, taking = await parked(hub, "ann", last=4)
    hub.deliver(published("ann", 5))
    hub.deliver(published("ann", 6))
    await asyncio.sleep(0)
    assert [b'"message":"n5"' in conn.written[0], b'"message":"n6"' in conn.written[1]] == [
        True
    ] * 2
    assert sub.last == 6
    assert not taking.done()  # the stream's task still waits: nothing for it to do
    assert queued(sub) == []
    taking.cancel()


async def test_a_frame_out_of_order_or_without_a_body_wakes_the_stream_instead() -> None:
    hub = make_hub()
    for event in (published("ann", 7), Published("ann", 5)):  # a gap; only (user, seq)
        sub, conn, taking = await parked(hub, "ann", last=4)
        hub.deliver(event)
        assert conn.written == []
        assert sub.last == 4
        assert [f.seq for f in await taking if isinstance(f, Frame)] == [event.seq]
        hub.remove(sub)


async def test_a_connection_that_takes_no_more_gets_the_frame_queued_in_order() -> None:
    hub = make_hub()
    sub, conn, taking = await parked(hub, "ann", last=4)
    hub.deliver(published("ann", 5))
    conn.writable = False  # the client reads slowly: the bounded queue takes over
    hub.deliver(published("ann", 6))
    hub.deliver(published("ann", 7))  # its task is woken: queued behind 6, never written ahead
    assert len(conn.written) == 1
    assert sub.last == 5
    assert [f.seq for f in await taking if isinstance(f, Frame)] == [6, 7]


async def test_a_stream_that_is_not_waiting_or_has_stopped_gets_nothing_written() -> None:
    hub = make_hub()
    busy = hub.new_subscriber("ann")  # its task is elsewhere (a catch-up read, a write)
    hub.add(busy, None)
    busy.writer = busy_conn = Connection()
    busy.last = 4
    hub.deliver(published("ann", 5))
    assert busy_conn.written == []
    assert [f.seq for f in queued(busy) if isinstance(f, Frame)] == [5]
    stopped, conn, taking = await parked(hub, "bob", last=0)
    stopped.abort("client")
    hub.deliver(published("bob", 1))
    assert conn.written == []
    taking.cancel()


async def test_a_waiting_stream_gets_its_ping_written_and_a_busy_one_queued() -> None:
    hub = make_hub(heartbeat=0.064)
    sub, conn, taking = await parked(hub, "ann", last=4)
    wrote = asyncio.Event()
    sub.writer = Written(conn, wrote)
    busy = hub.new_subscriber("bob")
    hub.add(busy, None)
    beating = asyncio.create_task(hub.heartbeat())
    try:
        async with asyncio.timeout(5):
            assert await busy.take() == [PING]  # no task waits in take: queued, as before
            await wrote.wait()
        assert conn.written[0].startswith(b"event: ping\n")
        assert not taking.done()  # written for it: its task was not woken
        conn.writable = False  # a connection that takes no more gets it queued instead
        assert await taking == [PING]
    finally:
        beating.cancel()
        taking.cancel()


class Written:
    """A connection that says when something was written to it."""

    def __init__(self, conn: Connection, wrote: asyncio.Event) -> None:
        self.conn = conn
        self.wrote = wrote

    def write_frame(self, body: bytes) -> bool:
        if self.conn.write_frame(body):
            self.wrote.set()
            return True
        return False
