"""What a channel is: a way to reach users who are away, with its loops, routes and store needs.

A `Channel` is one cheap object in the registry (`tidings.channels.registry.CHANNELS`): importing
it imports nothing of the channel's own machinery (its extra, its HTTP client, its mailer). Only
when the settings turn it on does a serving node call `start`, which builds what runs (`Running`:
its loops); its routes are mounted either way, so a client can tell "off here" from a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fastapi import APIRouter

    from tidings.channels.presence import Presence
    from tidings.clock import Clock
    from tidings.hub import Hub
    from tidings.metrics import Metrics
    from tidings.settings import Settings
    from tidings.store import Store

__all__ = ["Channel", "Loop", "Node", "Running"]

# A loop a node runs until cancelled; it must survive its own failures (log, wait, go on).
Loop = Callable[[], Coroutine[Any, Any, None]]


class Running(Protocol):
    """A channel (or presence) at work on this node."""

    def loops(self) -> Mapping[str, Loop]:
        """The loops to run, by task name (`tidings-push`): each runs until cancelled."""
        ...


class Channel(Protocol):
    """A way to reach users who are away, as the registry lists it."""

    # Its key in a user's preferences (`{"channels": {"push": true}}`), in the `channel` label
    # of the tidings_away_* metrics, and in `Service.channels` while it runs.
    name: str
    # The store methods it calls (tests/unit/test_channels.py checks the list against the code);
    # a node whose store lacks one refuses to start with the channel on.
    needs: tuple[str, ...]

    def enabled(self, settings: Settings) -> bool:
        """Whether the settings turn it on; off costs nothing: no import, no loop, no query."""
        ...

    def check(self, settings: Settings) -> None:
        """Raise ConfigError (naming the variable) for settings of it that are wrong."""
        ...

    def start(self, node: Node) -> Running:
        """What this node runs for it (only called when enabled)."""
        ...

    def routers(self) -> Sequence[APIRouter]:
        """Its HTTP routes, mounted whether it is on or not (each says when it is off)."""
        ...

    def describe(self, schemas: dict[str, Any], settings: Settings) -> None:
        """Put its rules and running limits into the OpenAPI schemas of its routes."""
        ...


@dataclass(slots=True)
class Node:
    """What a channel is given to work with: the node's parts, and its presence on request."""

    settings: Settings
    store: Store
    hub: Hub
    clock: Clock
    metrics: Metrics
    _presence: Presence | None = field(default=None, repr=False)

    def presence(self) -> Presence:
        """The node's one presence writer (tidings.channels.presence), made on first request:
        it runs only when a channel that needs to know who is here is on."""
        if self._presence is None:
            from tidings.channels.presence import Presence

            self._presence = Presence(self.settings, self.store, self.hub, self.clock)
        return self._presence

    @property
    def presence_started(self) -> Presence | None:
        return self._presence
