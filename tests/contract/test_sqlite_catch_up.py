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
