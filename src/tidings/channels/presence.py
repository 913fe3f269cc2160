"""Presence: which users have an open stream on some node, kept in the store.

A channel for users who are away must know who is not away. Every node reports, once per
`TIDINGS_PUSH_PRESENCE_INTERVAL`, that it is alive, with the users whose streams opened or closed
on it since its last report (only changes: an open stream costs no write per interval). A user's
presence is the last time a stream of theirs is known open: a closed one's close time, an open
one's node's last report. A channel skips a notification when that time is at or after its
creation: the user had a stream open at some point since, on some node, and the stream delivered
it. A killed node stops reporting, so its users stop counting from the moment it died.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Final, NoReturn

from tidings.channels.base import Loop
from tidings.clock import Clock
from tidings.hub import Hub
from tidings.loops import forever
from tidings.settings import Settings
from tidings.store.base import PresenceStore

__all__ = ["FORGET_AFTER_MS", "NEEDS", "Presence"]

# The logger of the push channel, where these lines were before presence was its own piece.
log = logging.getLogger("tidings.push")

# The store methods presence calls.
NEEDS: Final = ("record_presence", "forget_presence", "presence")
# Presence older than a day no longer decides anything (a push goes out within the grace, or
# after retries); it is dropped once an hour.
FORGET_AFTER_MS: Final = 24 * 3600 * 1000
FORGET_EVERY_S: Final = 3600.0


class Presence:
    """This node's presence writer: hears the hub's departures, reports them with the node."""

    def __init__(self, settings: Settings, store: PresenceStore, hub: Hub, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.clock = clock
        # This node's name in the store's presence: unique per process and start.
        self.node = secrets.token_hex(8)
        self._left: dict[str, int] = {}
        # The users this node last reported with a stream open.
        self._written: set[str] = set()

    def loops(self) -> Mapping[str, Loop]:
        return {"tidings-push-presence": self.run}

    def leave(self, user_id: str) -> None:
        """The hub's `on_leave`: the last stream of `user_id` on this node closed now."""
        self._left[user_id] = self.clock.now_ms()

    async def present_since(self, user_id: str) -> int:
        """The last time (ms) a stream of the user is known open on any node; 0: never."""
        return await self.store.presence(user_id)

    async def write(self) -> None:
        """Report this node alive, with the users whose streams opened or closed here since the
        last report; an open stream needs no row of its own each time."""
        now = self.clock.now_ms()
        current = set(self.hub.users())
        left, self._left = self._left, {}
        opened = sorted(current - self._written)
        closed = sorted((u, ms) for u, ms in left.items() if u not in current)
        try:
            await self.store.record_presence(self.node, now, opened, closed)
        except BaseException:
            # Kept for the next report: a departure not recorded could let a push through for a
            # notification that stream delivered.
            for user_id, ms in left.items():
                self._left[user_id] = max(ms, self._left.get(user_id, 0))
            raise
        self._written = current

    async def run(self) -> NoReturn:
        """Report until cancelled, and forget what no longer decides anything."""
        self.hub.on_leave = self.leave
        forgot = 0.0
        loop = asyncio.get_running_loop()

        async def report() -> None:
            nonlocal forgot
            await self.write()
            if loop.time() - forgot > FORGET_EVERY_S:
                forgot = loop.time()
                await self.store.forget_presence(self.clock.now_ms() - FORGET_AFTER_MS)

        try:
            await forever(
                report,
                pause=self.settings.push_presence_interval,
                failure="push presence write failed; trying again",
                log=log,
            )
        finally:
            self.hub.on_leave = None
