"""A database written by an earlier schema (1, 2 or 3) is upgraded in place on open, on every
store, and one a newer tidings upgraded is refused.

The schema-1 database is written here as tidings at schema 1 wrote it: its own DDL (each store
keeps its steps) and rows in that shape, one of them published with an idempotency key, which has
no fingerprint. The schema-2 one is that database taken through step 2, its key given the
fingerprint tidings at schema 2 computed; the schema-3 one is that database taken through step
3, with a notification using every inbox column and a user's preferences.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.contract.conftest import STORES, fresh_database
from tidings.clock import Clock, now_ms
from tidings.models import Action, Actor, Draft, Position, Preferences, PushSubscription
from tidings.store import IdempotencyConflict, Store, StoreUnavailable, create_store
from tidings.store import postgres as pg_store
from tidings.store import sqlite as sqlite_store
from tidings.store.common import LEGACY_STEPS, SCHEMA_VERSION
from tidings.store.factory import mongo_database

pytestmark = pytest.mark.anyio


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (not the migrated copy other contract tests get): these tests write
    an older schema into it, or watch the steps run."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


ROW = ("alice", 1, "old", None, None, '{"k":1}')


@contextlib.asynccontextmanager
async def postgres(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        yield conn
    finally:
        await conn.close(timeout=5)


@contextlib.asynccontextmanager
async def mongo(url: str) -> AsyncIterator[AsyncDatabase[dict[str, object]]]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=5000
    )
    try:
        yield client[mongo_database(url)]
    finally:
        await client.close()


async def write_schema_1(url: str, stamp: int) -> None:
    scheme = urlsplit(url).scheme
    refs = json.dumps([["alice", 1]])
    if scheme == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as db:
            db.executescript(sqlite_store.MIGRATIONS[LEGACY_STEPS[1]])
            db.execute("INSERT INTO users (user_id, last_seq) VALUES ('alice', 1)")
            db.execute(
                "INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?, ?, NULL)", (*ROW, stamp)
            )
            db.execute("INSERT INTO idempotency VALUES ('old-key', ?, ?)", (stamp, refs))
            db.execute("PRAGMA user_version = 1")
    elif scheme.startswith("postgres"):
        async with postgres(url) as conn:
            await conn.execute(
                "CREATE TABLE tidings_schema (version integer NOT NULL, applied_ms bigint NOT NULL)"
            )
            await conn.execute(pg_store.MIGRATIONS[LEGACY_STEPS[1]])
            await conn.execute("INSERT INTO tidings_schema VALUES (1, $1)", stamp)
            await conn.execute("INSERT INTO tidings_users (user_id, last_seq) VALUES ('alice', 1)")
            await conn.execute(
                "INSERT INTO tidings_notifications VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
                *ROW,
                stamp,
            )
            await conn.execute(
                "INSERT INTO tidings_idempotency VALUES ('old-key', $1, $2)", stamp, refs
            )
    else:
        async with mongo(url) as mdb:
            user_id, seq, message, link, kind, data = ROW
            await mdb["notifications"].insert_one(
                {
                    "user_id": user_id,
                    "seq": seq,
                    "message": message,
                    "link": link,
                    "kind": kind,
                    "data": data,
                    "created_ms": stamp,
                    "read_ms": None,
                    "ikey": "old-key",
                }
            )
            claim = {"_id": "old-key", "created_ms": stamp, "owner": "x"}
            await mdb["idempotency"].insert_one({**claim, "refs": [{"u": "alice", "s": 1}]})
            await mdb["meta"].insert_one({"_id": "schema", "version": 1})


async def test_a_schema_1_database_is_upgraded_and_its_keys_replay_as_before(
    store_url: str,
) -> None:
    await write_schema_1(store_url, now_ms())
    store: Store = create_store(store_url)
    await store.open()
    try:
        [old] = await store.after("alice", 0, 10)
        assert (old.seq, old.message, old.data) == (1, "old", {"k": 1})
        # A key from before fingerprints replays whatever the body, as it did.
        replay = await store.add(Draft(user_ids=("alice",), message="another body"), "old-key")
        assert replay.replayed
        assert replay.notifications == (old,)
        # Keys stored now carry one.
        new = Draft(user_ids=("alice",), message="new")
        assert [n.seq for n in (await store.add(new, "new-key")).notifications] == [2]
        with pytest.raises(IdempotencyConflict):
            await store.add(Draft(user_ids=("alice",), message="changed"), "new-key")
    finally:
        await store.close()
    # Opening again finds the schema current and changes nothing.
    again: Store = create_store(store_url)
    await again.open()
    try:
        assert [n.seq for n in await again.after("alice", 0, 10)] == [1, 2]
    finally:
        await again.close()


async def mark_schema(url: str, version: int) -> None:
    """Record `version` where each store keeps its schema version."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as db:
            db.execute(f"PRAGMA user_version = {version}")
    elif scheme.startswith("postgres"):
        async with postgres(url) as conn:
            await conn.execute("INSERT INTO tidings_schema VALUES ($1, 0)", version)
    else:
        async with mongo(url) as mdb:
            meta = mdb["meta"]
            await meta.update_one({"_id": "schema"}, {"$set": {"version": version}})


async def test_a_database_a_newer_tidings_upgraded_is_refused(store_url: str) -> None:
    store: Store = create_store(store_url)
    await store.open()
    await store.add(Draft(user_ids=("alice",), message="kept"))
    await store.close()
    await mark_schema(store_url, SCHEMA_VERSION + 1)
    newer: Store = create_store(store_url)
    with pytest.raises(StoreUnavailable, match=f"schema {SCHEMA_VERSION + 1} is newer"):
        await newer.open()
    await newer.close()


def schema_2_fingerprint(user_ids: list[str], message: str, data: dict[str, object]) -> str:
    """The fingerprint as tidings at schema 2 computed it: the five fields of its Draft."""
    fields = {"data": data, "kind": None, "link": None, "message": message, "user_ids": user_ids}
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def write_schema_2(url: str, stamp: int) -> None:
    """The schema-1 database after step 2, its key carrying a schema-2 fingerprint."""
    await write_schema_1(url, stamp)
    fingerprint = schema_2_fingerprint(["alice"], "old", {"k": 1})
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as db:
            db.executescript(sqlite_store.MIGRATIONS[LEGACY_STEPS[2]])
            db.execute("UPDATE idempotency SET fingerprint = ?", (fingerprint,))
            db.execute("PRAGMA user_version = 2")
    elif scheme.startswith("postgres"):
        async with postgres(url) as conn:
            await conn.execute(pg_store.MIGRATIONS[LEGACY_STEPS[2]])
            await conn.execute("INSERT INTO tidings_schema VALUES (2, $1)", stamp)
            await conn.execute("UPDATE tidings_idempotency SET fingerprint = $1", fingerprint)
    else:
        async with mongo(url) as mdb:
            await mdb["idempotency"].update_one({"_id": "old-key"}, {"$set": {"fp": fingerprint}})
            await mdb["meta"].update_one({"_id": "schema"}, {"$set": {"version": 2}})


@pytest.mark.parametrize("write", [write_schema_1, write_schema_2], ids=["from-1", "from-2"])
async def test_an_older_database_gains_the_inbox_with_nothing_lost(
    store_url: str, write: Callable[[str, int], Awaitable[None]]
) -> None:
    stamp = now_ms()
    await write(store_url, stamp)
    store: Store = create_store(store_url)
    await store.open()
    try:
        [old] = await store.after("alice", 0, 10)
        assert (old.seq, old.message, old.data, old.created_ms) == (1, "old", {"k": 1}, stamp)
        assert (old.category, old.actor, old.actions, old.group) == (None, None, (), None)
        assert (old.expires_ms, old.seen_ms, old.archived_ms) == (None, None, None)
        assert old.to_json()["actions"] == []
        # The key written before the inbox still replays the same body, and only that one at 2.
        same = Draft(user_ids=("alice",), message="old", data={"k": 1})
        replay = await store.add(same, "old-key")
        assert (replay.replayed, replay.notifications) == (True, (old,))
        if write is write_schema_2:
            with pytest.raises(IdempotencyConflict):
                await store.add(Draft(user_ids=("alice",), message="other"), "old-key")
        inbox = Draft(
            user_ids=("alice",),
            message="new",
            category="billing",
            actor=Actor(name="Ada", avatar_url="/a.png"),
            actions=(Action("Pay", "/pay"),),
            group="g",
            expires_ms=stamp + 60_000,
        )
        [new] = (await store.add(inbox, "new-key")).notifications
        assert new.seq == 2
        # The preferences came with the upgrade too.
        await store.set_preferences("alice", Preferences(muted_categories=("billing",)))
        assert await store.muting(["alice"], "billing") == {"alice"}
    finally:
        await store.close()
    again: Store = create_store(store_url)
    await again.open()
    try:
        assert await again.after("alice", 0, 10) == [old, new]
        assert await again.position("alice") == Position(last_seq=2)
    finally:
        await again.close()


# A notification as schema 3 stored it: every inbox column set, seen but not read.
INBOX_ROW = {
    "seq": 2,
    "message": "inbox",
    "data": "{}",
    "category": "billing",
    "actor": '{"name":"Ada","avatar_url":"/a.png"}',
    "actions": '[{"label":"Pay","url":"/pay"}]',
    "grp": "invoice-7",
    "expires_ms": 4_000_000_000_000,
}


async def write_schema_3(url: str, stamp: int) -> None:
    """The schema-2 database after step 3, with an inbox notification and preferences."""
    await write_schema_2(url, stamp)
    r = INBOX_ROW
    values = (
        "alice", r["seq"], r["message"], None, None, r["data"], stamp, None,
        r["category"], r["actor"], r["actions"], r["grp"], r["expires_ms"], stamp + 1, None,
    )  # fmt: skip
    prefs = ("alice", '["news"]', '{"push":false,"email":true}')
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as db:
            db.executescript(sqlite_store.MIGRATIONS[LEGACY_STEPS[3]])
            # The table's column order after step 3 is COLUMNS's.
            db.execute(
                "INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            db.execute("UPDATE users SET last_seq = 2 WHERE user_id = 'alice'")
            db.execute("INSERT INTO preferences VALUES (?, ?, ?)", prefs)
            db.execute("PRAGMA user_version = 3")
    elif scheme.startswith("postgres"):
        async with postgres(url) as conn:
            await conn.execute(pg_store.MIGRATIONS[LEGACY_STEPS[3]])
            await conn.execute("INSERT INTO tidings_schema VALUES (3, $1)", stamp)
            await conn.execute(
                "INSERT INTO tidings_notifications VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                *values,
            )
            await conn.execute("UPDATE tidings_users SET last_seq = 2 WHERE user_id = 'alice'")
            await conn.execute("INSERT INTO tidings_preferences VALUES ($1, $2, $3)", *prefs)
    else:
        async with mongo(url) as mdb:
            await mdb["notifications"].insert_one(
                {
                    "user_id": "alice",
                    "seq": r["seq"],
                    "message": r["message"],
                    "link": None,
                    "kind": None,
                    "data": r["data"],
                    "created_ms": stamp,
                    "read_ms": None,
                    "category": r["category"],
                    "actor": r["actor"],
                    "actions": r["actions"],
                    "group": r["grp"],
                    "expires_ms": r["expires_ms"],
                    "seen_ms": stamp + 1,
                }
            )
            await mdb["preferences"].insert_one(
                {"_id": "alice", "muted": prefs[1], "channels": prefs[2]}
            )
            await mdb["meta"].update_one({"_id": "schema"}, {"$set": {"version": 3}})


async def test_a_schema_3_database_gains_scheduling_with_nothing_lost(store_url: str) -> None:
    stamp = now_ms()
    await write_schema_3(store_url, stamp)
    clock = Clock(stamp)
    store: Store = create_store(store_url, clock=clock)
    await store.open()
    try:
        old, inbox = await store.after("alice", 0, 10)
        assert (old.seq, old.message, old.data) == (1, "old", {"k": 1})
        assert (inbox.seq, inbox.message, inbox.category, inbox.group) == (
            2,
            "inbox",
            "billing",
            "invoice-7",
        )
        assert inbox.actor == Actor(name="Ada", avatar_url="/a.png")
        assert inbox.actions == (Action("Pay", "/pay"),)
        assert (inbox.expires_ms, inbox.seen_ms, inbox.read_ms) == (
            4_000_000_000_000,
            stamp + 1,
            None,
        )
        assert await store.preferences("alice") == Preferences(
            muted_categories=("news",), channels_off=frozenset({"push"})
        )
        same = Draft(user_ids=("alice",), message="old", data={"k": 1})
        assert (await store.add(same, "old-key")).replayed
        # Step 4 is there: schedule, claim, deliver with the next seq; the expiry sweep reads.
        later = Draft(user_ids=("alice",), message="later", deliver_ms=stamp + 1_000)
        assert await store.schedule(later, "sched-key") is not None
        clock.advance(1_000)
        [delivered] = await store.deliver(await store.claim_due(30_000, 10))
        assert [n.seq for n in delivered.notifications] == [3]
        assert await store.expired_between(0, stamp, 10) == []
    finally:
        await store.close()
    again: Store = create_store(store_url, clock=clock)
    await again.open()
    try:
        assert [n.seq for n in await again.after("alice", 0, 10)] == [1, 2, 3]
        assert await again.position("alice") == Position(last_seq=3)
        assert await again.cancel_scheduled("sched-key") == (0, ("delivered",))
    finally:
        await again.close()


async def test_a_schema_3_database_gains_the_email_digest_with_nothing_lost(
    store_url: str,
) -> None:
    stamp = now_ms()
    await write_schema_3(store_url, stamp)
    store: Store = create_store(store_url)
    await store.open()
    try:
        old, inbox = await store.after("alice", 0, 10)
        assert (old.seq, old.message, old.created_ms) == (1, "old", stamp)
        assert (inbox.seq, inbox.message) == (2, "inbox")
        assert await store.preferences("alice") == Preferences(
            muted_categories=("news",), channels_off=frozenset({"push"})
        )
        # The digest's records came with the upgrade, and a new address starts after seq 2.
        assert await store.user("alice") is None
        await store.set_user_email("alice", "alice@example.com")
        record = await store.user("alice")
        assert record is not None
        assert record.email == "alice@example.com"
        assert await store.claim_email("alice", "node", 0, 1000) is None
        await store.add(Draft(user_ids=("alice",), message="new"))
        claim = await store.claim_email("alice", "node", 0, 1000)
        assert claim is not None
        assert (claim.done_seq, claim.claimed_seq) == (2, 3)
    finally:
        await store.close()


async def test_a_schema_3_database_gains_web_push_with_nothing_lost(store_url: str) -> None:
    stamp = now_ms()
    await write_schema_3(store_url, stamp)
    store: Store = create_store(store_url)
    await store.open()
    try:
        old, inbox = await store.after("alice", 0, 10)
        assert (old.seq, old.message, old.created_ms) == (1, "old", stamp)
        assert (inbox.seq, inbox.message) == (2, "inbox")
        endpoint = "https://push.example/alice"
        sub = PushSubscription(endpoint, "alice", "p256dh", "auth")
        assert await store.add_push_subscription(sub, 5) == "created"
        # A subscription starts after what the user had: the old notifications are not pushed.
        [row] = await store.push_subscriptions("alice")
        assert row.done_seq == 2
        await store.record_presence("node", stamp, ["alice"], [])
        assert await store.presence("alice") == stamp
    finally:
        await store.close()
    again: Store = create_store(store_url)
    await again.open()
    try:
        assert await again.after("alice", 0, 10) == [old, inbox]
        assert [s.endpoint for s in await again.push_subscriptions("alice")] == [endpoint]
    finally:
        await again.close()
