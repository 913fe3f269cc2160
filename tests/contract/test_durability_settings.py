"""Each store is as durable as docs/deploy.md says: SQLite's sync level, MongoDB's write concern."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
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


async def _count_commits(store: SqliteStore) -> list[str]:
    """The commits the writer's connection makes from now on (SQLite's own statement trace):
    each COMMIT, and each one-statement publish or batch that starts outside a transaction (it
    commits by itself). SQLite traces each trigger program of a statement again, with the
    statement's own text: counted once."""
    commits: list[str] = []

    def install(c: sqlite3.Connection) -> None:
        def trace(statement: str) -> None:
            one = statement.startswith(("INSERT INTO publish_one ", "INSERT INTO publish_many "))
            alone = one and not c.in_transaction and commits[-1:] != [statement]
            if statement == "COMMIT" or alone:
                commits.append(statement)  # list.append: safe from the writer thread

        c.set_trace_callback(trace)

    await store._writer.run(install)
    return commits


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
        counted = await _count_commits(store)
        first = asyncio.create_task(store.add(Draft(("a",), "first")))
        await asyncio.sleep(0)  # `first` is queued for the writer
        if not window_ms:
            # No window: once the writer has taken `first`, `second` gets a commit of its own.
            async with asyncio.timeout(10):
                # The writer thread cannot set an asyncio.Event; poll what it empties.
                while store._pending:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
        second = asyncio.create_task(store.add(Draft(("b",), "second")))
        done = await asyncio.gather(first, second)
        assert [n.user_id for s in done for n in s.notifications] == ["a", "b"]
        assert len(counted) == commits
    finally:
        await store.close()
    reopened = create_store(url)
    await reopened.open()
    try:
        assert [n.message for n in await reopened.after("b", 0, 10)] == ["second"]
    finally:
        await reopened.close()


async def test_concurrent_publishes_share_commits_and_each_answer_is_committed_in_order(
    tmp_path: Path,
) -> None:
    """Group commit: publishes that arrive while a commit runs share the next one, and still
    each answer comes after its own commit (a second connection sees it at once), the seqs
    of each user gapless and in the order the publishes were answered."""
    url = f"sqlite:///{tmp_path / 'group.db'}"
    store = create_store(url)  # synchronous=FULL: each commit is synced before its answer
    witness = create_store(url)
    assert isinstance(store, SqliteStore)
    await store.open()
    await witness.open()
    try:
        counted = await _count_commits(store)
        users = [f"u{i}" for i in range(8)]
        answered: dict[str, list[int]] = {u: [] for u in users}

        async def publish(i: int) -> None:
            user = users[i % len(users)]
            stored = await store.add(Draft((user,), f"m{i}", data={"i": i}))
            (n,) = stored.notifications
            # Committed before answered: another connection reads it right now.
            found = await witness.after(user, n.seq - 1, 1)
            assert [(m.seq, m.message) for m in found] == [(n.seq, f"m{i}")]
            answered[user].append(n.seq)

        count = 400
        async with asyncio.TaskGroup() as tg:
            for i in range(count):
                tg.create_task(publish(i))
        assert len(counted) < count / 4, f"{len(counted)} commits for {count} publishes"
        for user in users:
            assert sorted(answered[user]) == list(range(1, count // len(users) + 1))
            stored = await witness.after(user, 0, 1000)
            assert [n.seq for n in stored] == list(range(1, count // len(users) + 1))
    finally:
        await witness.close()
        await store.close()


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
