"""The one place that maps a database URL to a store."""

from __future__ import annotations

from urllib.parse import urlsplit

from tidings.settings import ConfigError
from tidings.store.base import Store

__all__ = ["create_store"]


def create_store(url: str) -> Store:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from tidings.store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url))
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
