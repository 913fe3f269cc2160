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

from tidings.settings import ConfigError, Settings, b64url_bytes, require_positive

if TYPE_CHECKING:
    from fastapi import APIRouter

    from tidings.channels.base import Node, Running

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

    def check(self, settings: Settings) -> None:
        """Refuse its settings when they are wrong (a ConfigError naming the variable); called by
        `Settings.validate`, so `tidings serve` stops with one line."""
        if not self.enabled(settings):
            return
        if len(b64url_bytes(settings.vapid_private_key) or b"") != 32:
            raise ConfigError(
                "TIDINGS_VAPID_PRIVATE_KEY must be a raw P-256 private key, 32 bytes in base64url "
                "(`tidings vapid-keys` prints one)"
            )
        if not settings.vapid_subject.startswith(("mailto:", "https://")):
            raise ConfigError(
                "TIDINGS_VAPID_SUBJECT must be a mailto: or https: URL (push services contact it "
                "about your pushes), e.g. mailto:ops@example.com"
            )
        if not 0 < settings.push_grace <= 24 * 3600:
            raise ConfigError("TIDINGS_PUSH_GRACE must be between 0 and 86400 seconds")
        timings = (
            "push_interval",
            "push_presence_interval",
            "push_timeout",
            "push_retry_max",
            "push_dns_timeout",
        )
        require_positive(settings, timings, "a positive number of seconds")
        # A claim must outlive the sends made under it, or a second node could send the same
        # push while the first is still waiting for its answer.
        if settings.push_lease < 3 * settings.push_timeout:
            raise ConfigError("TIDINGS_PUSH_LEASE must be at least 3 × TIDINGS_PUSH_TIMEOUT")
        # Presence is written every interval: a grace shorter than that could push to a user
        # whose open stream has not been recorded yet.
        if settings.push_presence_interval >= settings.push_grace:
            raise ConfigError(
                "TIDINGS_PUSH_PRESENCE_INTERVAL must be shorter than TIDINGS_PUSH_GRACE"
            )
        counts = ("push_ttl", "push_batch", "push_concurrency", "max_push_subscriptions")
        require_positive(settings, counts, "positive")
        if settings.max_push_endpoint_bytes < 64:
            raise ConfigError("TIDINGS_MAX_PUSH_ENDPOINT_BYTES must be at least 64")

    def start(self, node: Node) -> Running:
        from tidings.channels.push.delivery import PushDelivery

        return PushDelivery(node)

    def routers(self) -> Sequence[APIRouter]:
        from tidings.channels.push.routes import push_router

        return (push_router,)

    def describe(self, schemas: dict[str, Any], settings: Settings) -> None:
        pass


CHANNEL: Final = WebPush()
