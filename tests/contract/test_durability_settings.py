"""Each store is as durable as docs/deploy.md says: SQLite's sync level, MongoDB's write concern."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.conftest import fresh_database
from tidings.settings import Settings
from tidings.store import create_store
from tidings.store.mongo import MongoStore
from tidings.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

# PRAGMA synchronous answers a number.
LEVELS = {"NORMAL": 1, "FULL": 2}


@pytest.mark.parametrize("level", [None, "NORMAL", "FULL"])
async def test_sqlite_commits_at_the_configured_sync_level(
    tmp_path: Path, level: str | None
) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    store = (
        create_store(url)
        if level is None
        else create_store(url, Settings(sqlite_synchronous=level))
    )
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        found = await store._writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        await store.close()
    assert found == LEVELS[level or "FULL"]


@pytest.fixture
def mongo_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("mongodb", tmp_path) as url:
        yield url


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"w": "majority", "j": True}),
        ("?w=1", {"w": 1, "j": True}),
        ("?w=1&journal=false", {"w": 1, "j": False}),
    ],
)
async def test_mongo_writes_with_majority_and_journal_unless_the_url_says_otherwise(
    mongo_url: str, query: str, expected: dict[str, object]
) -> None:
    store = create_store(mongo_url + query)
    assert isinstance(store, MongoStore)
    await store.open()
    try:
        assert store._client is not None
        assert store._client.write_concern.document == expected
    finally:
        await store.close()
