"""SQLite's catch-up reads share one decoded template among rows alike but for user and seq:
each notification still reads, and encodes, exactly as if decoded on its own."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tidings.clock import Clock, now_ms
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


async def test_a_batched_resume_reads_what_each_stream_would_read_alone(tmp_path: Path) -> None:
    """`resume` answers many reconnects in one statement: each gets the position and lines that
    `position`, then `after` give it alone, whatever its resume point."""
    clock = Clock(now_ms())
    store = create_store(f"sqlite:///{tmp_path / 'resume.db'}", clock=clock)
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        await store.add(Draft(("pruned",), "old"))
        clock.advance(1)
        await store.prune(clock.now_ms(), 10)
        users = ("ada", "bo ✓", "cy\x00z", "pruned", *(f"u{i}" for i in range(30)))
        for round_ in range(6):
            await store.add(Draft(users, f"round {round_}", data={"r": round_}))
        await store.add(Draft(("ada",), "ada alone", actor=Actor("Ed")))
        await store.delete("bo ✓", 3)
        await store.mark_read("u1", ids=[2])
        await store.snooze("u2", [5], clock.now_ms() + 60_000)
        await store.add(Draft(("u3",), "going", expires_ms=clock.now_ms() + 50))
        clock.advance(51)
        cases = [
            (user, since, limit)
            for user in (*users[:5], "u1", "u2", "u3", "nobody")
            for since in (None, -1, 0, 1, 2, 3, 6, 7, 8, 9)
            for limit in (3, 100)
        ]
        got = await asyncio.gather(*(store.resume(*case) for case in cases))
        assert not store._resumes
        for (user, since, limit), (position, lines) in zip(cases, got, strict=True):
            alone = await store.position(user)
            assert position == alone
            want: list[tuple[int, str]] = []
            if (
                since is not None
                and alone.pruned_upto <= since <= alone.last_seq
                and alone.last_seq - since <= limit
            ):
                want = [(n.seq, n.dumps()) for n in await store.after(user, since, limit + 1)]
            assert lines == want, (user, since)
        # Some had rows to replay, some a reset, and the batch held all of them.
        assert sum(bool(lines) for _, lines in got) > 20
    finally:
        await store.close()
