"""Each feature's schema has its own version (`common.FEATURES`), on every store: a schema-7
database (one number for everything) is upgraded in place to the per-feature bookkeeping, a new
feature's step runs alone on a current database without renumbering the others, and a database
where a newer tidings moved a feature past what this one knows is refused."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.contract.conftest import STORES, fresh_database
from tests.contract.test_migration import mark_schema, mongo, postgres
from tests.contract.test_migration_snooze import write_schema_6
from tidings.clock import Clock, now_ms
from tidings.models import Draft
from tidings.store import Store, StoreUnavailable, create_store
from tidings.store import postgres as pg_store
from tidings.store import sqlite as sqlite_store
from tidings.store.common import FEATURES, LEGACY_STEPS, SCHEMA_VERSION

pytestmark = pytest.mark.anyio


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: the tests write an older schema into it, or watch the steps run."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


async def write_schema_7(url: str, stamp: int) -> None:
    """A database as tidings at schema 7 left it: one number, every feature's first steps."""
    await write_schema_6(url, stamp)
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as db:
            db.executescript(sqlite_store.MIGRATIONS[LEGACY_STEPS[7]])
    elif scheme.startswith("postgres"):
        async with postgres(url) as conn:
            await conn.execute(pg_store.MIGRATIONS[LEGACY_STEPS[7]])
    await mark_schema(url, 7)


async def recorded(url: str) -> dict[str, int]:
    """The per-feature versions the database records."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return dict(db.execute("SELECT feature, version FROM schema_features").fetchall())
    if scheme.startswith("postgres"):
        async with postgres(url) as conn:
            rows = await conn.fetch("SELECT feature, version FROM tidings_schema_features")
            return {r[0]: r[1] for r in rows}
    async with mongo(url) as mdb:
        found = await mdb["meta"].find_one({"_id": "schema"})
        assert found is not None
        features = found["features"]
        assert isinstance(features, dict)
        return {str(k): int(v) for k, v in features.items()}


async def record(url: str, feature: str, version: int) -> None:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as db:
            db.execute(
                "UPDATE schema_features SET version = ? WHERE feature = ?", (version, feature)
            )
    elif scheme.startswith("postgres"):
        async with postgres(url) as conn:
            await conn.execute(
                "UPDATE tidings_schema_features SET version = $1 WHERE feature = $2",
                version,
                feature,
            )
    else:
        async with mongo(url) as mdb:
            await mdb["meta"].update_one(
                {"_id": "schema"}, {"$set": {f"features.{feature}": version}}
            )


async def opened(url: str, clock: Clock | None = None) -> Store:
    store = create_store(url, clock=clock)
    await store.open()
    return store


async def test_a_schema_7_database_gains_per_feature_versions_with_nothing_lost(
    store_url: str,
) -> None:
    assert SCHEMA_VERSION == 8
    stamp = now_ms()
    await write_schema_7(store_url, stamp)
    store = await opened(store_url, Clock(stamp))
    try:
        assert await recorded(store_url) == FEATURES
        # What schema 7 stored reads as before, and every feature works on it.
        before = await store.after("alice", 0, 10)
        assert before[0].message == "old"
        stored = await store.add(Draft(user_ids=("alice",), message="new"))
        assert await store.snooze("alice", [stored.notifications[0].seq], stamp + 60_000)
    finally:
        await store.close()
    # Opened again: nothing left to do, and nothing changed.
    again = await opened(store_url)
    await again.close()
    assert await recorded(store_url) == FEATURES


async def test_a_new_features_step_runs_alone_on_a_current_database(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await opened(store_url)
    await store.close()
    # A feature added later: its own step 1, no other feature's number moves. On SQLite and
    # PostgreSQL a step that ran twice would fail (ADD COLUMN), so the open succeeding says
    # only the new one ran.
    monkeypatch.setitem(FEATURES, "extra", 1)
    monkeypatch.setitem(
        sqlite_store.MIGRATIONS, ("extra", 1), "CREATE TABLE extra (id TEXT PRIMARY KEY);"
    )
    monkeypatch.setitem(
        pg_store.MIGRATIONS, ("extra", 1), "CREATE TABLE tidings_extra (id text PRIMARY KEY);"
    )
    store = await opened(store_url)
    await store.close()
    assert await recorded(store_url) == {**FEATURES, "extra": 1}
    scheme = urlsplit(store_url).scheme
    if scheme == "sqlite":
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            assert db.execute("SELECT count(*) FROM extra").fetchone() == (0,)
    elif scheme.startswith("postgres"):
        async with postgres(store_url) as conn:
            assert await conn.fetchval("SELECT count(*) FROM tidings_extra") == 0


async def test_a_feature_a_newer_tidings_moved_on_is_refused(store_url: str) -> None:
    store = await opened(store_url)
    await store.close()
    await record(store_url, "inbox", FEATURES["inbox"] + 1)
    newer = create_store(store_url)
    with pytest.raises(StoreUnavailable, match=r"'inbox' schema \(2\) is newer"):
        await newer.open()
    await newer.close()
