"""SQLite's catch-up reads share one decoded template among rows alike but for user and seq:
each notification still reads, and encodes, exactly as if decoded on its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tidings.models import Actor, Draft
from tidings.store import create_store
from tidings.store.common import COLUMNS, notification
from tidings.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


async def test_catch_up_after_a_broadcast_reads_every_user_as_stored(tmp_path: Path) -> None:
    store = create_store(f"sqlite:///{tmp_path / 'catch-up.db'}")
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        users = tuple(f"user-{i} ✓" for i in range(40))
        for round_ in range(3):
            await store.add(
                Draft(
                    users,
                    f"round {round_}",
                    data={"r": round_, "s": "ü"},
                    actor=Actor("Ada"),
                    category="c",
                )
            )
        # One user's copy differs now (read): it must not be served from the others' template.
        await store.mark_read(users[7], ids=[2])
        for user in users:
            found = await store.after(user, 0, 10)

            def read(c: sqlite3.Connection, u: str = user) -> list[sqlite3.Row]:
                return c.execute(
                    f"SELECT {COLUMNS} FROM notifications WHERE user_id = ? ORDER BY seq",  # noqa: S608 - a constant
                    (u,),
                ).fetchall()

            rows = await store._reader.run(read)
            expected = [notification(r) for r in rows]
            assert found == expected
            assert [n.line for n in found] == [n.dumps() for n in expected]
            assert [n.read_ms is not None for n in found] == [False, user == users[7], False]
    finally:
        await store.close()


async def test_a_many_user_publish_with_a_nul_in_a_user_id_is_stored(tmp_path: Path) -> None:
    # The set-based path reads the ids through SQLite's JSON functions, which end a string at
    # NUL; such a publish (the Python API allows it) takes the row path instead.
    store = create_store(f"sqlite:///{tmp_path / 'nul.db'}")
    await store.open()
    try:
        users = ("a\x00b", *(f"u{i}" for i in range(40)))
        stored = await store.add(Draft(users, "hello"))
        assert [(n.user_id, n.seq) for n in stored.notifications] == [(u, 1) for u in users]
        [found] = await store.after("a\x00b", 0, 10)
        assert (found.user_id, found.message) == ("a\x00b", "hello")
    finally:
        await store.close()
