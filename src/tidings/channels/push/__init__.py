"""Web Push for users who are away: VAPID keys, subscriptions, durable delivery.

Off (nothing imported, nothing running) unless `TIDINGS_VAPID_PRIVATE_KEY` is set. The crypto
comes from the `tidings[push]` extra (pywebpush and py-vapid); `missing_extra()` says whether
it is installed, so `tidings serve` can say so in one line. This module is the channel as the
registry lists it, and imports none of that.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from fastapi import APIRouter

    from tidings.channels.base import Node, Running
    from tidings.settings import Settings

__all__ = ["CHANNEL", "WebPush", "missing_extra"]

EXTRA_MODULES = ("pywebpush", "py_vapid", "http_ece")


def missing_extra() -> str | None:
    """The first module of the `tidings[push]` extra that is not installed, or None."""
    for name in EXTRA_MODULES:
        if importlib.util.find_spec(name) is None:
            return name
    return None


class WebPush:
    """The `push` channel: on with a VAPID key; uses presence to tell who is away."""

    name = "push"
    needs: tuple[str, ...] = (
        # the delivery loop
        "push_due",
        "claim_push",
        "advance_push",
        "release_push",
        "drop_push_subscription",
        "position",
        "after",
        "preferences",
        "group_heads",
        # the routes
        "add_push_subscription",
        "remove_push_subscription",
    )

    def enabled(self, settings: Settings) -> bool:
        return settings.push_enabled

    def start(self, node: Node) -> Running:
        from tidings.channels.push.delivery import PushDelivery

        return PushDelivery(node)

    def routers(self) -> Sequence[APIRouter]:
        from tidings.channels.push.routes import push_router

        return (push_router,)

    def describe(self, schemas: dict[str, Any], settings: Settings) -> None:
        pass


CHANNEL: Final = WebPush()
