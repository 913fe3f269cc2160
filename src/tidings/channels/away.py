"""What the channels for users who are away (Web Push, the email digest) share."""

from __future__ import annotations

from tidings.models import Notification, Preferences


def left_out(n: Notification, preferences: Preferences, now_ms: int) -> str | None:
    """Why `n` is not sent to a user who is away on any channel (the `reason` label of
    `tidings_away_skipped_total`), or None: the user has dealt with it already, it expired, or
    its category is muted."""
    if n.seen_ms is not None:
        return "seen"
    if n.read_ms is not None:
        return "read"
    if n.archived_ms is not None:
        return "archived"
    if n.expires_ms is not None and n.expires_ms <= now_ms:
        return "expired"
    if n.category is not None and n.category in preferences.muted_categories:
        return "muted"
    return None
