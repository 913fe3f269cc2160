"""The email digest for users who are away: one email of what they did not see, per window.

Off (nothing imported, nothing running) without `TIDINGS_SMTP_URL`, or with
`TIDINGS_EMAIL_AFTER=0`. `digest.py` is the loop, `mailer.py` SMTP, `routes.py` a user's address
and the unsubscribe link. This module is the channel as the registry lists it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import SplitResult, urlsplit

from tidings.settings import ConfigError, Settings, require_positive

if TYPE_CHECKING:
    from fastapi import APIRouter

    from tidings.channels.base import Node, Running

__all__ = ["CHANNEL", "EmailDigest"]


class EmailDigest:
    """The `email` channel: on with an SMTP URL and a positive `TIDINGS_EMAIL_AFTER`."""

    name = "email"
    needs: tuple[str, ...] = (
        # the digest loop
        "email_due",
        "claim_email",
        "release_email",
        "finish_email",
        "after",
        "preferences",
        # the routes
        "set_user_email",
        "user",
    )

    def enabled(self, settings: Settings) -> bool:
        return settings.email_enabled

    def check(self, settings: Settings) -> None:
        """Refuse its settings when they are wrong (a ConfigError naming the variable); called by
        `Settings.validate`, so `tidings serve` stops with one line."""
        if settings.email_after < 0:
            raise ConfigError("TIDINGS_EMAIL_AFTER must be a number of minutes, 0 (off) or more")
        if settings.max_email_bytes < 6:
            raise ConfigError("TIDINGS_MAX_EMAIL_BYTES must be at least 6")
        if not self.enabled(settings):
            return
        from tidings.channels.email.mailer import SmtpTarget

        try:
            SmtpTarget.parse(settings.smtp_url)
        except ValueError as exc:
            raise ConfigError(f"TIDINGS_SMTP_URL: {exc}") from None
        if "@" not in settings.email_from or any(c in settings.email_from for c in "\r\n"):
            raise ConfigError(
                "TIDINGS_EMAIL_FROM must be the sender's address, e.g. "
                "'Example <notifications@example.com>' (required with TIDINGS_SMTP_URL)"
            )
        public = _url(settings.public_url)
        if public is None or public.scheme not in ("http", "https") or not public.hostname:
            raise ConfigError(
                "TIDINGS_PUBLIC_URL must be the http(s) URL tidings is reached at from outside, "
                "e.g. https://app.example/tidings (required with TIDINGS_SMTP_URL: the "
                "unsubscribe links and relative links in emails use it)"
            )
        timings = ("email_interval", "smtp_timeout", "email_retry", "email_retry_max")
        require_positive(settings, timings, "a positive number of seconds")
        # A claim must outlive the send made under it, or a second node could take the digest
        # over and send it again while the first still waits for the SMTP server's answer.
        if settings.email_lease < 3 * settings.smtp_timeout:
            raise ConfigError("TIDINGS_EMAIL_LEASE must be at least 3 × TIDINGS_SMTP_TIMEOUT")
        require_positive(settings, ("email_batch", "email_max_items"), "positive")

    def start(self, node: Node) -> Running:
        from tidings.channels.email.digest import Digester

        return Digester(node.settings, node.store, node.metrics, node.clock)

    def routers(self) -> Sequence[APIRouter]:
        from tidings.channels.email.routes import email_router, unsubscribe_router

        return (email_router, unsubscribe_router)

    def describe(self, schemas: dict[str, Any], settings: Settings) -> None:
        from tidings.channels.email.routes import describe

        describe(schemas, settings)


CHANNEL: Final = EmailDigest()


def _url(text: str) -> SplitResult | None:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (reading the port is what checks it)
    except ValueError:
        return None
    return parts
