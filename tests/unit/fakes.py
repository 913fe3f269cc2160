"""In-memory stand-ins for the store, the bus and an SSE client, for the unit tier.

The store is the shipped in-memory one (`tidings.store.memory`, which `tests/contract` holds to
the contract every backend keeps) with an off switch; the bus honours `tidings.bus.base`. So the
hub and the stream run here exactly as in a server, without a socket or a database file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Message, Scope

from tests.raw_sse import RawEvent, parse_events
from tidings.bus.base import Bus, Deliver, Tally
from tidings.bus.shared import SharedBus
from tidings.clock import Clock
from tidings.events import Event
from tidings.store.base import Store, StoreUnavailable, operations
from tidings.store.memory import MemoryStore
from tidings.store.wrapping import Operation

__all__ = [
    "Broker",
    "BrokerBus",
    "FakeBus",
    "FakeClient",
    "FakeStore",
]


class FakeStore(MemoryStore):
    """The in-memory store (`tidings.store.memory`, held to the contract by `tests/contract`)
    with an off switch: `down = True` makes every call raise `StoreUnavailable`."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.down = False
        # Set each time a call fails because the store is down.
        self.failed = asyncio.Event()
        for name in operations():
            if name != "close":
                setattr(self, name, self._checked(getattr(self, name)))

    def _checked(self, call: Operation) -> Operation:
        async def checked(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.failed.set()
                raise StoreUnavailable("the fake store is down")
            return await call(*args, **kwargs)

        return checked

    def forget(self, user_id: str, up_to: int) -> None:
        """What retention does: the user's notifications up to `up_to` are gone."""
        rows = self.db.rows.get(user_id, [])
        self.db.rows[user_id] = [n for n in rows if n.seq > up_to]
        self.db.pruned[user_id] = up_to


class FakeBus:
    """One process's bus: announce hands events straight to the hub, like the local bus.

    `hold = True` keeps announced events in `held` instead (a bus that is slow or lost them);
    `release` hands them on, in any order the test picks.
    """

    def __init__(self) -> None:
        self.deliver: Deliver | None = None
        self.hold = False
        self.held: list[Event] = []
        self.tally: Tally | None = None

    async def start(self, deliver: Deliver) -> None:
        self.deliver = deliver

    async def announce(self, events: Sequence[Event]) -> None:
        if self.hold:
            self.held.extend(events)
            return
        for event in events:
            self.send(event)

    def send(self, event: Event) -> None:
        assert self.deliver is not None, "start the bus first"
        self.deliver(event)

    def release(self, events: Sequence[Event] | None = None) -> None:
        for event in self.held if events is None else events:
            self.send(event)
        self.held = []

    async def close(self) -> None:
        self.deliver = None

    def ready(self) -> bool:
        return True

    def join(self, user_id: str) -> asyncio.Future[None] | None:
        return None

    def leave(self, user_id: str) -> None:
        return None


@dataclass
class FakeClient:
    """The ASGI side of one HTTP request: what the endpoint sent, and a way to hang up."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    query: bytes = b""
    method: str = "GET"
    messages: list[Message] = field(default_factory=list)
    stalled: asyncio.Event | None = None
    _hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def scope(self) -> Scope:
        return {
            "type": "http",
            "method": self.method,
            "path": "/notifications/stream",
            "headers": self.headers,
            "query_string": self.query,
        }

    async def receive(self) -> Message:
        await self._hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.stalled is not None:
            await self.stalled.wait()  # a client that stopped reading: the write never ends
        self.messages.append(message)
        self._changed.set()

    def stop_reading(self) -> None:
        self.stalled = asyncio.Event()

    def hang_up(self) -> None:
        self._hung_up.set()

    def wake(self) -> None:
        """Let `wait_until` look again (the endpoint returned without sending)."""
        self._changed.set()

    @property
    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return int(starts[0]["status"]) if starts else None

    @property
    def response_headers(self) -> dict[bytes, bytes]:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return dict(starts[0]["headers"]) if starts else {}

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] != "http.response.start"
        )

    @property
    def finished(self) -> bool:
        """The endpoint ended the response itself (its last body message has no more_body)."""
        bodies = [m for m in self.messages if m["type"] == "http.response.body"]
        return bool(bodies) and not bodies[-1].get("more_body", False)

    def blocks(self) -> list[RawEvent]:
        """Every block sent, pings and `retry:`-only blocks included."""
        return parse_events(self.body)

    def events(self) -> list[RawEvent]:
        """The events a page's EventSource dispatches to its listeners (no pings)."""
        return [e for e in self.blocks() if e.data and e.event != "ping"]

    def notifications(self) -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in self.events() if e.event == "new-notification"]

    async def wait_until(self, done: Callable[[], bool], timeout: float = 2.0) -> None:
        """Wait until `done()` holds after something was sent; fail after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()


class Broker:
    """What Redis or PostgreSQL is to the shared buses: one channel, and an off switch."""

    def __init__(self) -> None:
        self.up = True
        # Publishing fails while subscriptions stay up (a full buffer, a failover).
        self.refuse_publish = False
        self.listeners: list[asyncio.Queue[str | None]] = []
        self.published: list[str] = []

    def publish(self, messages: Sequence[str]) -> None:
        if not self.up or self.refuse_publish:
            raise ConnectionError("the broker refused the message")
        self.published.extend(messages)
        for queue in self.listeners:
            for message in messages:
                queue.put_nowait(message)

    def inject(self, raw: str) -> None:
        """A message from some other writer on the channel."""
        for queue in self.listeners:
            queue.put_nowait(raw)

    def go_down(self) -> None:
        """Every subscription drops, and nothing connects until `come_back`."""
        self.up = False
        for queue in self.listeners:
            queue.put_nowait(None)

    def come_back(self) -> None:
        self.up = True


class BrokerBus(SharedBus):
    """A `SharedBus` over a `Broker`: the reconnect and resync logic, without a network.

    The real buses wake every second (`TICK`); this one every `tick`, 10 ms unless told.
    """

    def __init__(self, broker: Broker, *, limit: int = 7900, tick: float = 0.01) -> None:
        super().__init__("test")
        self.broker = broker
        self.limit = limit
        self.tick = tick

    def name(self) -> str:
        return "broker"

    async def _listen(self) -> None:
        if not self.broker.up:
            raise ConnectionError("cannot connect")
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.broker.listeners.append(queue)
        try:
            self._subscribed()
            while True:
                try:
                    async with asyncio.timeout(self.tick):
                        raw = await queue.get()
                except TimeoutError:
                    raw = ""
                if raw is None:
                    raise ConnectionError("connection lost")
                if raw:
                    self._received(raw)
                await self._tick()
        finally:
            self.broker.listeners.remove(queue)

    async def _publish(self, messages: Sequence[str]) -> None:
        self.broker.publish(messages)

    async def _close_publisher(self) -> None:
        pass


def _contracts(store: FakeStore, bus: FakeBus, shared: BrokerBus) -> tuple[Store, Bus, Bus]:
    """mypy checks here that the fakes satisfy the protocols the service uses."""
    return store, bus, shared
