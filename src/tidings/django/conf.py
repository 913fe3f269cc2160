"""`settings.TIDINGS`, read and checked in one place."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..client import Client  # noqa: TID252 - also shipped as tidings_client.django

__all__ = ["TidingsSettings", "client", "get", "user_id_of"]

REQUIRED = ("URL", "PUBLISHER_KEY", "SECRET")
OPTIONAL = ("TOKEN_TTL", "TIMEOUT", "RETRIES", "PUSH")


@dataclass(frozen=True, slots=True)
class TidingsSettings:
    url: str
    publisher_key: str
    secret: str
    token_ttl: int = 900
    # A publish that cannot get through costs at most (retries + 1) × timeout plus under a second
    # of backoff, then is logged: bounded, since it runs in the request after the commit.
    timeout: float = 2.0
    retries: int = 2
    # Whether the bell offers desktop notifications (tidings has a VAPID key, the site registers
    # the service worker); False: it never asks for the push key.
    push: bool = False


def get() -> TidingsSettings:
    """`settings.TIDINGS`, checked: a missing or misspelled key is an ImproperlyConfigured."""
    raw = getattr(settings, "TIDINGS", None)
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            'settings.TIDINGS must be a dict: {"URL": …, "PUBLISHER_KEY": …, "SECRET": …}'
        )
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ImproperlyConfigured(f"settings.TIDINGS: unknown key(s) {', '.join(unknown)}")
    missing = [key for key in REQUIRED if not raw.get(key)]
    if missing:
        raise ImproperlyConfigured(f"settings.TIDINGS: {', '.join(missing)} must be set")
    ttl = raw.get("TOKEN_TTL", 900)
    if not isinstance(ttl, int) or ttl <= 0:
        raise ImproperlyConfigured("settings.TIDINGS: TOKEN_TTL must be a positive int (seconds)")
    timeout = raw.get("TIMEOUT", 2.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ImproperlyConfigured("settings.TIDINGS: TIMEOUT must be a positive number (seconds)")
    retries = raw.get("RETRIES", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ImproperlyConfigured("settings.TIDINGS: RETRIES must be an int >= 0")
    return TidingsSettings(
        # A trailing slash is harmless: URLs are built as URL + "/path".
        url=str(raw["URL"]).rstrip("/"),
        publisher_key=str(raw["PUBLISHER_KEY"]),
        secret=str(raw["SECRET"]),
        token_ttl=ttl,
        timeout=float(timeout),
        retries=retries,
        push=bool(raw.get("PUSH", False)),
    )


_clients: dict[tuple[str, str, float, int], Client] = {}
_lock = threading.Lock()


def client() -> Client:
    """One client (and its connection pool) per configuration, shared by all threads."""
    config = get()
    key = (config.url, config.publisher_key, config.timeout, config.retries)
    with _lock:
        if key not in _clients:
            _clients[key] = Client(
                config.url, config.publisher_key, timeout=config.timeout, retries=config.retries
            )
        return _clients[key]


def close_clients() -> None:
    """Close the shared clients' connections (at shutdown, or between tests)."""
    with _lock:
        for shared in _clients.values():
            shared.close()
        _clients.clear()


def user_id_of(user: Any) -> str:
    """A user object's primary key, or the id itself: tidings' user id is its decimal string."""
    key = getattr(user, "pk", user)
    if key is None:
        # An AnonymousUser or an unsaved user: "None" would be somebody's user id.
        raise ValueError(f"{user!r} has no primary key: notify a saved user or its id")
    return str(key)
