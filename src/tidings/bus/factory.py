"""The one place that maps a bus URL to a bus."""

from __future__ import annotations

import hashlib
import os
import tempfile
from urllib.parse import SplitResult, urlsplit

from tidings.bus.base import Bus
from tidings.settings import ConfigError
from tidings.store.factory import database_key

__all__ = ["create_bus", "is_local"]


def _parts(url: str) -> SplitResult:
    return urlsplit(url.split(",", 1)[0].strip())


def is_local(url: str) -> bool:
    """Whether `url` names the local bus (one process, or `tidings serve --workers N`'s own
    siblings), read as `create_bus` reads it."""
    return _parts(url).scheme == "local"


def create_bus(url: str, database_url: str, linger: float = 5.0) -> Bus:
    parts = _parts(url)
    if parts.scheme == "local":
        from tidings.bus.local import LocalBus

        return LocalBus(parts.path or default_socket_path(database_url))
    if parts.scheme in {"redis", "rediss"}:
        from tidings.bus.redis import RedisBus

        return RedisBus(url, linger)
    if parts.scheme in {"redis+cluster", "rediss+cluster"}:
        from tidings.bus.redis import RedisClusterBus

        return RedisClusterBus(url, linger)
    if parts.scheme in {"nats", "tls"}:
        from tidings.bus.nats import NatsBus

        return NatsBus(url, linger)
    if parts.scheme in {"postgresql", "postgres"}:
        from tidings.bus.postgres import PostgresBus

        return PostgresBus(url)
    raise ConfigError(
        f"TIDINGS_BUS_URL: unsupported scheme {parts.scheme!r} "
        "(use local://, redis://…, redis+cluster://…, nats://… or postgresql://…)"
    )


def default_socket_path(database_url: str) -> str:
    """One socket per database, so `tidings send` finds the server that serves the same data."""
    digest = hashlib.sha256(database_key(database_url).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"tidings-{digest}.sock")
