"""The email digest for users who are away: one email of what they did not see, per window.

Off (nothing imported, nothing running) without `TIDINGS_SMTP_URL`, or with
`TIDINGS_EMAIL_AFTER=0`. `digest.py` is the loop, `mailer.py` SMTP, `routes.py` a user's address
and the unsubscribe link. This module is the channel as the registry lists it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from fastapi import APIRouter

    from tidings.channels.base import Node, Running
    from tidings.settings import Settings

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
