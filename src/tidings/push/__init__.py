"""Web Push for users who are away: VAPID keys, subscriptions, presence, durable delivery.

Off (nothing imported, nothing running) unless `TIDINGS_VAPID_PRIVATE_KEY` is set. The crypto
comes from the `tidings[push]` extra (pywebpush and py-vapid); `missing_extra()` says whether
it is installed, so `tidings serve` can say so in one line.
"""

from __future__ import annotations

import importlib.util

__all__ = ["missing_extra"]

EXTRA_MODULES = ("pywebpush", "py_vapid", "http_ece")


def missing_extra() -> str | None:
    """The first module of the `tidings[push]` extra that is not installed, or None."""
    for name in EXTRA_MODULES:
        if importlib.util.find_spec(name) is None:
            return name
    return None
