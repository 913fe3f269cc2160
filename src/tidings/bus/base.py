"""The bus contract: it only says "user U has something new"; the store stays the event log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from tidings.events import Event

__all__ = ["Bus", "Deliver", "Tally"]

Deliver = Callable[[Event], None]


class Tally:
    """A plain count the bus adds to (no lock, no label: the event loop is its only writer);
    tidings.metrics reports it as `tidings_bus_announcements_received_total`."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Bus(Protocol):
    async def start(self, deliver: Deliver) -> None:
        """Subscribe this node: from now on `deliver` is called, on the event loop, per event."""

    async def announce(self, events: Sequence[Event]) -> None:
        """Tell every node, after the store committed. Losing one delays, never loses."""

    async def close(self) -> None: ...

    def join(self, user_id: str) -> asyncio.Future[None] | None:
        """A stream of the user opened on this node: receive the user's announcements from now
        on. What to await (bounded) before reading the store, or None: nothing to wait for."""

    def leave(self, user_id: str) -> None:
        """The user's last stream on this node closed (a bus may keep listening a while)."""

    tally: Tally | None
    """Counts the user events this node received from other processes (None: not counted)."""

    def ready(self) -> bool:
        """True while the subscription is live (reported by /readyz)."""
