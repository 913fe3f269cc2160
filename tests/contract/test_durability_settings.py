"""Each store is as durable as docs/deploy.md says: SQLite's sync level, MongoDB's write concern."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.contract.conftest import fresh_database
from tidings.models import Draft
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


@pytest.mark.parametrize(("window_ms", "commits"), [(0, 2), (50, 1)])
async def test_a_commit_window_lets_a_publish_join_the_commit_of_one_just_before(
    tmp_path: Path, window_ms: float, commits: int
) -> None:
    url = f"sqlite:///{tmp_path / 'window.db'}"
    store = create_store(url, Settings(sqlite_commit_window_ms=window_ms))
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        await store.add(Draft(("warm",), "the store is busy from here"))
        runs = 0
        run = store._writer.run

        async def counted(fn: Callable[..., object]) -> object:
            nonlocal runs
            runs += 1
            return await run(fn)

        store._writer.run = counted  # type: ignore[method-assign,assignment]
        first = asyncio.create_task(store.add(Draft(("a",), "first")))
        for _ in range(3):
            await asyncio.sleep(0)  # the flusher has taken `first` by now
        second = asyncio.create_task(store.add(Draft(("b",), "second")))
        done = await asyncio.gather(first, second)
        assert [n.user_id for s in done for n in s.notifications] == ["a", "b"]
        assert runs == commits
    finally:
        await store.close()
    reopened = create_store(url)
    await reopened.open()
    try:
        assert [n.message for n in await reopened.after("b", 0, 10)] == ["second"]
    finally:
        await reopened.close()


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
