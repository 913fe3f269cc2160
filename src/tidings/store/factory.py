"""The one place that maps a database URL to a store."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from tidings.clock import Clock
from tidings.settings import ConfigError, Settings
from tidings.store.base import Store

__all__ = ["create_store", "database_key"]


def create_store(
    url: str, settings: Settings | None = None, *, clock: Clock | None = None
) -> Store:
    """The store `url` names. Each backend takes its own options from `settings` here, so no
    caller passes an option only one backend knows; `clock` stamps what the store writes (tests
    pass one they set)."""
    settings = settings or Settings()
    clock = clock or Clock()
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from tidings.store.sqlite import SqliteStore

        synchronous = settings.sqlite_synchronous.upper()
        return SqliteStore(
            sqlite_path(url),
            clock=clock,
            synchronous=synchronous,
            commit_window_ms=settings.sqlite_commit_window_ms,
        )
    if scheme in ("postgresql", "postgres"):
        from tidings.store.postgres import PostgresStore

        return PostgresStore(url, clock=clock)
    if scheme in ("mongodb", "mongodb+srv"):
        from tidings.store.mongo import MongoStore

        # The TTL index behind the pruning is sized from the retention.
        retention = settings.retention_days
        return MongoStore(url, mongo_database(url), retention_days=retention, clock=clock)
    if scheme == "memory":
        from tidings.store.memory import MemoryStore

        # `memory://NAME`: the stores of this process on one name share its data.
        return MemoryStore(urlsplit(url).netloc, clock=clock)
    raise ConfigError(
        f"TIDINGS_DATABASE_URL: unsupported scheme {scheme!r} "
        "(use sqlite:///path, postgresql://…, mongodb://…/dbname or memory://)"
    )


def sqlite_path(url: str) -> str:
    """`sqlite:///tidings.db` is relative to the working directory; `sqlite:////var/x.db` not."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigError(f"TIDINGS_DATABASE_URL: expected sqlite:///path, got {url!r}")
    return url[len(prefix) :]


def database_key(url: str) -> str:
    """What names the data `url` points at: one SQLite file, however its path is written."""
    if urlsplit(url).scheme == "sqlite":
        return "sqlite:" + os.path.abspath(sqlite_path(url))
    return url


def mongo_database(url: str) -> str:
    """`mongodb://host:27017/dbname?…`: the database is the URL's path, and it is required."""
    name = urlsplit(url).path.lstrip("/")
    if not name or "/" in name:
        raise ConfigError(
            "TIDINGS_DATABASE_URL: name the database in the path, e.g. mongodb://host:27017/tidings"
        )
    return name
