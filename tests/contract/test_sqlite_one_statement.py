"""SQLite's one-statement writes (`_add_one`, `_add_many`) where they can go wrong: another
process holding the write lock, a busy database, a statement interrupted between its steps, a
full disk, and batches mixing users across publishes.

What a user must see: a publish either answered with the seq it stored or refused with 503
(`StoreUnavailable`), never both; each user's seqs gapless and in the order of the answers,
also when another process writes at the same time; nothing half-written after a failure.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract.test_sqlite_group_commit import queued_together
from tidings.models import Draft, Stored
from tidings.store import StoreUnavailable, create_store
from tidings.store import sqlite as sqlite_store
from tidings.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    found = create_store(f"sqlite:///{tmp_path / 'one.db'}")
    assert isinstance(found, SqliteStore)
    await found.open()
    try:
        yield found
    finally:
        await found.close()


def stored(path: Path, user: str) -> tuple[Any, list[int]]:
    """The user's `last_seq` row and the seqs of their notifications, read by another
    connection (what any reader of the file sees)."""
    c = sqlite3.connect(path)
    try:
        last = c.execute("SELECT last_seq FROM users WHERE user_id = ?", (user,)).fetchone()
        seqs = [
            row[0]
            for row in c.execute(
                "SELECT seq FROM notifications WHERE user_id = ? ORDER BY seq", (user,)
            )
        ]
        return last, seqs
    finally:
        c.close()


def other_writes(other: sqlite3.Connection, seq: int) -> None:
    """Another process's publish to user x, left uncommitted: it holds the write lock."""
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE users SET last_seq = last_seq + 1 WHERE user_id = 'x'")
    other.execute(
        "INSERT INTO notifications (user_id, seq, message, data, created_ms) "
        "VALUES ('x', ?, 'other', '{}', 0)",
        (seq,),
    )


async def seqs_of(outcome: Any) -> list[tuple[str, int]]:
    assert isinstance(outcome, Stored), outcome
    return [(n.user_id, n.seq) for n in outcome.notifications]


async def test_a_publish_waits_for_another_writer_and_takes_the_seq_after_its(
    store: SqliteStore, tmp_path: Path
) -> None:
    path = tmp_path / "one.db"
    await store.add(Draft(user_ids=("x",), message="1"))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # Alone: the statement takes the write lock when it starts, so it waits for the
        # other writer and reads the seq that one left.
        other_writes(other, 2)
        task = asyncio.ensure_future(store.add(Draft(user_ids=("x",), message="3")))
        await asyncio.sleep(0.3)
        assert not task.done()
        other.execute("COMMIT")
        assert await seqs_of(await asyncio.wait_for(task, 5)) == [("x", 3)]
        # A batch the same way.
        other_writes(other, 4)

        def release() -> None:
            time.sleep(0.3)
            other.execute("COMMIT")

        releaser = threading.Thread(target=release)
        releaser.start()
        outcomes = await queued_together(
            store,
            [
                store.add(Draft(user_ids=("x",), message="5")),
                store.add(Draft(user_ids=("y", "x"), message="6")),
            ],
        )
        releaser.join()
    finally:
        other.close()
    assert [await seqs_of(o) for o in outcomes] == [[("x", 5)], [("y", 1), ("x", 6)]]
    assert stored(path, "x") == ((6,), [1, 2, 3, 4, 5, 6])


async def test_a_busy_database_refuses_with_503_and_leaves_nothing(
    store: SqliteStore, tmp_path: Path
) -> None:
    path = tmp_path / "one.db"
    await store.add(Draft(user_ids=("x",), message="1"))
    await store._writer.run(lambda c: c.execute("PRAGMA busy_timeout = 200"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable):
            await store.add(Draft(user_ids=("x",), message="2"))
        outcomes = await queued_together(
            store,
            [
                store.add(Draft(user_ids=("x",), message="a")),
                store.add(Draft(user_ids=("z",), message="b")),
            ],
        )
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not store._writer.connection().in_transaction
    after = await store.add(Draft(user_ids=("x",), message="3"))
    assert await seqs_of(after) == [("x", 2)]


@pytest.mark.parametrize("after_steps", [5, 20, 40, 60, 80, 120])
async def test_a_statement_interrupted_between_its_steps_leaves_nothing(
    store: SqliteStore, tmp_path: Path, after_steps: int
) -> None:
    await store.add(Draft(user_ids=("x",), message="1"))
    count = [0]

    def interrupt() -> int:
        count[0] += 1
        return 1 if count[0] >= after_steps else 0

    await store._writer.run(lambda c: c.set_progress_handler(interrupt, 1))
    with pytest.raises(StoreUnavailable):
        await store.add(Draft(user_ids=("x",), message="2"))
    count[0] = 0
    await queued_together(
        store,
        [
            store.add(Draft(user_ids=("x",), message="a")),
            store.add(Draft(user_ids=("x", "w"), message="b")),
        ],
    )
    await store._writer.run(lambda c: c.set_progress_handler(None, 1))
    assert not store._writer.connection().in_transaction
    last, seqs = stored(tmp_path / "one.db", "x")
    assert seqs == list(range(1, len(seqs) + 1))
    assert last == (seqs[-1],)
    after = await store.add(Draft(user_ids=("x",), message="z"))
    assert await seqs_of(after) == [("x", len(seqs) + 1)]


async def test_a_full_disk_refuses_with_503_and_leaves_nothing(
    store: SqliteStore, tmp_path: Path
) -> None:
    await store.add(Draft(user_ids=("x",), message="1"))
    await store._writer.run(
        lambda c: c.execute(
            f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}"
        )
    )
    with pytest.raises(StoreUnavailable, match="full"):
        await store.add(Draft(user_ids=("x",), message="y" * 200_000))
    outcomes = await queued_together(
        store,
        [
            store.add(Draft(user_ids=("x",), message="y" * 200_000)),
            store.add(Draft(user_ids=("q",), message="b")),
        ],
    )
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    await store._writer.run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    assert stored(tmp_path / "one.db", "x") == ((1,), [1])
    after = await store.add(Draft(user_ids=("x",), message="2"))
    assert await seqs_of(after) == [("x", 2)]


async def test_a_writer_left_inside_a_transaction_refuses_rather_than_joining_it(
    store: SqliteStore, tmp_path: Path
) -> None:
    """A publish answered inside a transaction someone else left open could be undone by its
    ROLLBACK: the writer refuses (503) and undoes that transaction, and goes on."""
    await store.add(Draft(user_ids=("x",), message="1"))
    await store._writer.run(lambda c: c.execute("BEGIN"))
    with pytest.raises(StoreUnavailable):
        await store.add(Draft(user_ids=("x",), message="2"))
    assert not store._writer.connection().in_transaction
    after = await store.add(Draft(user_ids=("x",), message="3"))
    assert await seqs_of(after) == [("x", 2)]
    assert stored(tmp_path / "one.db", "x") == ((2,), [1, 2])


async def test_batches_mixing_users_get_each_users_next_seqs(store: SqliteStore) -> None:
    rnd = random.Random(7)
    users = ["a", "b", "ü 😀", 'q"\\', "tab\tnl\n", "\u2028", "\x7f", "\u001f"]
    expected: dict[str, int] = {}
    for _ in range(30):
        drafts = [
            Draft(user_ids=tuple(rnd.sample(users, rnd.randint(1, 4))), message="m")
            for _ in range(rnd.randint(2, 12))
        ]
        outcomes = await queued_together(store, [store.add(d) for d in drafts])
        for draft, outcome in zip(drafts, outcomes, strict=True):
            want = []
            for user in draft.user_ids:
                expected[user] = expected.get(user, 0) + 1
                want.append((user, expected[user]))
            assert await seqs_of(outcome) == want
    for user, n in expected.items():
        assert [x.seq for x in await store.after(user, 0, 1000)] == list(range(1, n + 1))


async def test_the_store_checks_at_open_that_the_one_statement_writes_hold(
    store: SqliteStore, tmp_path: Path
) -> None:
    """The check's own publishes are rolled back: no trace of them in the file."""
    assert store._one_statement
    assert stored(tmp_path / "one.db", sqlite_store.PROBE_USER) == (None, [])


async def test_an_sqlite_that_answers_other_seqs_than_it_stored_gets_the_old_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a SQLite run `RETURNING` before the trigger (not a documented promise), the store
    must see it at open and publish with a transaction of several statements instead."""
    wrong = sqlite_store._INSERT_ONE.replace("RETURNING (SELECT", "RETURNING 100 + (SELECT")
    assert wrong != sqlite_store._INSERT_ONE
    monkeypatch.setattr(sqlite_store, "_INSERT_ONE", wrong)
    found = create_store(f"sqlite:///{tmp_path / 'old.db'}")
    assert isinstance(found, SqliteStore)
    await found.open()
    try:
        assert not found._one_statement
        lone = await found.add(Draft(user_ids=("x",), message="1"))
        assert await seqs_of(lone) == [("x", 1)]
        outcomes = await queued_together(
            found,
            [
                found.add(Draft(user_ids=("x",), message="2")),
                found.add(Draft(user_ids=("y", "x"), message="3")),
            ],
        )
        assert [await seqs_of(o) for o in outcomes] == [[("x", 2)], [("y", 1), ("x", 3)]]
    finally:
        await found.close()
    assert stored(tmp_path / "old.db", "x") == ((3,), [1, 2, 3])
    assert stored(tmp_path / "old.db", sqlite_store.PROBE_USER) == (None, [])


async def test_opening_waits_for_no_other_writer(tmp_path: Path) -> None:
    """The check is of the library, on a database in memory: a store opens at once while another
    process holds the file's write lock (a long prune, `tidings send`), and publishes after."""
    path = tmp_path / "busy.db"
    first = create_store(f"sqlite:///{path}")
    await first.open()  # the schema, made once
    await first.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = create_store(f"sqlite:///{path}")
        assert isinstance(store, SqliteStore)
        began = time.monotonic()
        await store.open()
        assert time.monotonic() - began < 2
        assert store._one_statement
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    try:
        assert await seqs_of(await store.add(Draft(user_ids=("x",), message="1"))) == [("x", 1)]
    finally:
        await store.close()
    assert stored(path, sqlite_store.PROBE_USER) == (None, [])
