"""The one place that maps a database URL to a store."""

from __future__ import annotations

from urllib.parse import urlsplit

from tidings.models import Clock
from tidings.settings import ConfigError
from tidings.store.base import Store

__all__ = ["create_store"]


def create_store(
    url: str,
    *,
    retention_days: float | None = None,
    clock: Clock | None = None,
    sqlite_synchronous: str = "FULL",
) -> Store:
    """`retention_days` sizes the MongoDB TTL index (a safety net behind the pruning); `clock`
    stamps what the store writes (tests pass one they set)."""
    clock = clock or Clock()
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from tidings.store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url), clock=clock, synchronous=sqlite_synchronous)
    if scheme in ("postgresql", "postgres"):
        from tidings.store.postgres import PostgresStore

        return PostgresStore(url, clock=clock)
    if scheme in ("mongodb", "mongodb+srv"):
        from tidings.store.mongo import MongoStore

        return MongoStore(url, mongo_database(url), retention_days=retention_days, clock=clock)
    raise ConfigError(
        f"TIDINGS_DATABASE_URL: unsupported scheme {scheme!r} "
        "(use sqlite:///path, postgresql://… or mongodb://…/dbname)"
    )


def sqlite_path(url: str) -> str:
    """`sqlite:///tidings.db` is relative to the working directory; `sqlite:////var/x.db` not."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigError(f"TIDINGS_DATABASE_URL: expected sqlite:///path, got {url!r}")
    return url[len(prefix) :]


def mongo_database(url: str) -> str:
    """`mongodb://host:27017/dbname?…`: the database is the URL's path, and it is required."""
    name = urlsplit(url).path.lstrip("/")
    if not name or "/" in name:
        raise ConfigError(
            "TIDINGS_DATABASE_URL: name the database in the path, e.g. mongodb://host:27017/tidings"
        )
    return name
