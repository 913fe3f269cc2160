"""A schema-6 database (the one before snooze) is upgraded in place by step 7 on every store,
with nothing lost: written as `test_migration` writes its older databases (that database at
schema 3, taken through steps 4 to 6 by their own DDL), then opened by this tidings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.contract.conftest import STORES, fresh_database
from tests.contract.test_migration import mark_schema, mongo, postgres, write_schema_3
from tidings.clock import Clock, now_ms
from tidings.models import Position
from tidings.store import Store, create_store
from tidings.store import postgres as pg_store
from tidings.store import sqlite as sqlite_store
from tidings.store.common import LEGACY_STEPS, SCHEMA_VERSION

pytestmark = pytest.mark.anyio


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (not the migrated copy other contract tests get): the test writes the
    older schema into it."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


async def write_schema_6(url: str, stamp: int) -> None:
    await write_schema_3(url, stamp)
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as db:
            for step in (4, 5, 6):
                db.executescript(sqlite_store.MIGRATIONS[LEGACY_STEPS[step]])
    elif scheme.startswith("postgres"):
        async with postgres(url) as conn:
            for step in (4, 5, 6):
                await conn.execute(pg_store.MIGRATIONS[LEGACY_STEPS[step]])
                await conn.execute("INSERT INTO tidings_schema VALUES ($1, $2)", step, stamp)
        return
    else:
        # MongoDB's steps 4 to 6 are indexes and collections made on open; the version says 6.
        async with mongo(url) as mdb:
            await mdb["meta"].update_one({"_id": "schema"}, {"$set": {"version": 6}})
        return
    await mark_schema(url, 6)


async def test_a_schema_6_database_gains_snooze_with_nothing_lost(store_url: str) -> None:
    assert SCHEMA_VERSION >= 7
    stamp = now_ms()
    await write_schema_6(store_url, stamp)
    clock = Clock(stamp)
    store: Store = create_store(store_url, clock=clock)
    await store.open()
    try:
        old, inbox = await store.after("alice", 0, 10)
        assert (old.seq, old.message, old.data, old.snoozed_ms) == (1, "old", {"k": 1}, None)
        assert (inbox.seq, inbox.category, inbox.seen_ms) == (2, "billing", stamp + 1)
        assert inbox.to_json()["snoozed_until"] is None
        assert await store.next_snoozed() is None
        # Step 7 is there: snooze the old row, wake it once, unread and unseen.
        assert await store.snooze("alice", [2], stamp + 1_000) == [2]
        assert [n.seq for n in await store.after("alice", 0, 10)] == [1]
        clock.advance(1_000)
        [woken] = await store.wake_snoozed(await store.claim_snoozed(30_000, 10))
        assert (woken.seq, woken.message, woken.seen_ms, woken.group) == (
            2,
            "inbox",
            None,
            "invoice-7",
        )
    finally:
        await store.close()
    again: Store = create_store(store_url, clock=clock)
    await again.open()
    try:
        assert [n.seq for n in await again.after("alice", 0, 10)] == [1, 2]
        assert await again.position("alice") == Position(last_seq=2)
    finally:
        await again.close()
