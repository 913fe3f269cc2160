"""The bus contract: it only says "user U has something new"; the store stays the event log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from tidings.models import Event

__all__ = ["Bus", "Deliver"]

Deliver = Callable[[Event], None]


class Bus(Protocol):
    async def start(self, deliver: Deliver) -> None:
        """Subscribe this node: from now on `deliver` is called, on the event loop, per event."""

    async def announce(self, events: Sequence[Event]) -> None:
        """Tell every node, after the store committed. Losing one delays, never loses."""

    async def close(self) -> None: ...

    def ready(self) -> bool:
        """True while the subscription is live (reported by /readyz)."""
