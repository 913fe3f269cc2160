"""SQLite's group commit: publishes that queue while the writer thread is busy are written by
one statement for the whole batch (`_add_many`), and a publish alone by one statement too
(`_add_one`).

What it must keep: each user's seqs gapless and in the order the publishes came, every field
stored as a publish alone stores it, each caller answered with what was stored for it, and one
publish's failure its own (such a batch is written publish by publish instead).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tidings.models import Action, Actor, Draft, Stored
from tidings.store import create_store
from tidings.store import sqlite as sqlite_store
from tidings.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    found = create_store(f"sqlite:///{tmp_path / 'group.db'}")
    assert isinstance(found, SqliteStore)
    await found.open()
    try:
        yield found
    finally:
        await found.close()


async def queued_together(
    store: SqliteStore, publishes: list[Coroutine[Any, Any, Stored]]
) -> list[Stored | BaseException]:
    """Run `publishes` while the writer thread is held busy, so they all queue and the writer
    takes them as one batch when it is let go."""
    held = threading.Event()

    def hold() -> None:
        held.wait()

    store._writer.submit(hold)
    tasks = [asyncio.ensure_future(p) for p in publishes]
    await asyncio.sleep(0)  # each task runs up to its wait for the commit
    assert len(store._pending) == len(publishes)
    held.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def observed_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the batches `_add_many` wrote (the real function, observed)."""
    sizes: list[int] = []
    real = sqlite_store._add_many

    def observe(c: Any, drafts: list[Draft], stamp: int, outcomes: list[Any]) -> bool:
        wrote = real(c, drafts, stamp, outcomes)
        if wrote:
            sizes.append(len(drafts))
        return wrote

    monkeypatch.setattr(sqlite_store, "_add_many", observe)
    return sizes


async def test_a_batch_keeps_each_users_order_and_every_field(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = observed_batches(monkeypatch)
    users = [f"user {i} ✓" for i in range(5)]
    await store.add(Draft(user_ids=(users[0],), message="before"))  # an existing users row
    drafts = [
        Draft(
            user_ids=(users[i % 5],) if i % 7 else (users[i % 5], users[(i + 1) % 5]),
            message=f'n{i} ü 😀 "q" \\ \n',
            link="/a?b=1" if i % 2 else None,
            kind="k" if i % 3 else None,
            data={"i": i, "nested": {"s": "ü", "z": None}, "big": 2**62},
            category="social" if i % 4 else None,
            actor=Actor("Ada", "https://example.test/a.png") if i % 5 == 1 else None,
            actions=(Action("Open", "/x"),) if i % 6 == 2 else (),
            group="g" if i % 8 == 3 else None,
            expires_ms=4_102_444_800_000 if i % 9 == 4 else None,
        )
        for i in range(60)
    ]
    answers = await queued_together(store, [store.add(d) for d in drafts])
    assert sizes == [60], f"not written as one batch: {sizes}"
    stored = {user: await store.after(user, 0, 100) for user in users}
    for user in users:
        seqs = [n.seq for n in stored[user]]
        assert seqs == list(range(1, len(seqs) + 1)), f"{user}: seqs {seqs}"
        mine = [n.message for n in stored[user] if n.message.startswith("n")]
        assert mine == sorted(mine, key=lambda m: int(m.split(" ")[0][1:]))
    by_key = {(n.user_id, n.seq): n for found in stored.values() for n in found}
    for draft, answer in zip(drafts, answers, strict=True):
        assert isinstance(answer, Stored)
        assert [n.user_id for n in answer.notifications] == list(draft.user_ids)
        for n in answer.notifications:
            # What the caller was answered is what a reader gets, field for field and on the
            # wire (the SSE line).
            assert by_key[(n.user_id, n.seq)] == n
            assert by_key[(n.user_id, n.seq)].dumps() == n.dumps()
            assert (n.message, n.link, n.kind, n.data) == (
                draft.message,
                draft.link,
                draft.kind,
                draft.data,
            )
            assert (n.category, n.actor, n.actions, n.group, n.expires_ms) == (
                draft.category,
                draft.actor,
                draft.actions,
                draft.group,
                draft.expires_ms,
            )


async def test_a_batch_with_a_key_or_a_nul_is_written_publish_by_publish(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = observed_batches(monkeypatch)
    earlier = await store.add(Draft(user_ids=("alice",), message="first"), "used")
    outcomes = await queued_together(
        store,
        [
            store.add(Draft(user_ids=("alice",), message="plain 1")),
            store.add(Draft(user_ids=("alice",), message="first"), "used"),
            store.add(Draft(user_ids=("bob",), message="plain 2")),
        ],
    )
    plain1, replay, plain2 = outcomes
    assert isinstance(replay, Stored)
    assert replay.replayed
    assert replay.notifications == earlier.notifications
    assert isinstance(plain1, Stored)
    assert isinstance(plain2, Stored)
    # A NUL (the HTTP API refuses it; the Python API passes it on) is stored whole.
    nul = await queued_together(
        store,
        [
            store.add(Draft(user_ids=("bob",), message="nul \x00 inside")),
            store.add(Draft(user_ids=("bob",), message="after")),
        ],
    )
    # A publish to many users keeps its own set-based path (`_add_bulk`).
    many = tuple(f"m{i}" for i in range(40))
    await queued_together(
        store,
        [
            store.add(Draft(user_ids=many, message="to many")),
            store.add(Draft(user_ids=("m3",), message="to one")),
        ],
    )
    assert sizes == [], f"written as one batch: {sizes}"
    assert [n.message for n in await store.after("m3", 0, 10)] == ["to many", "to one"]
    assert [n.message for n in await store.after("alice", 0, 10)] == ["first", "plain 1"]
    assert [n.message for n in await store.after("bob", 0, 10)] == [
        "plain 2",
        "nul \x00 inside",
        "after",
    ]
    after = nul[1]
    assert isinstance(after, Stored)
    assert [n.seq for n in after.notifications] == [3]


async def test_a_lone_publish_is_one_committed_statement(
    store: SqliteStore, tmp_path: Path
) -> None:
    """A one-user publish alone (`_add_one`: the TEMP view's trigger) stores what a publish in a
    batch stores, answers the seq it stored, has committed by the time it is answered, and one
    that fails leaves nothing behind."""
    draft = Draft(
        user_ids=("ada ✓",),
        message='lone ü 😀 "q" \\ \n',
        link="/a?b=1",
        kind="k",
        data={"nested": {"s": "ü", "z": None}, "big": 2**62},
        category="social",
        actor=Actor("Ada", "https://example.test/a.png"),
        actions=(Action("Open", "/x"),),
        group="g",
        expires_ms=4_102_444_800_000,
    )
    answers = [await store.add(draft) for _ in range(3)]
    assert not store._writer.connection().in_transaction
    stored = await store.after("ada ✓", 0, 10)
    assert [n.seq for n in stored] == [1, 2, 3]
    for answer, n in zip(answers, stored, strict=True):
        assert answer.notifications == (n,)
        assert answer.notifications[0].dumps() == n.dumps()
    # Another connection (another process) sees each as it is answered.
    other = sqlite3.connect(tmp_path / "group.db")
    try:
        await store.add(Draft(user_ids=("bo",), message="plain"))
        assert other.execute("SELECT seq FROM notifications WHERE user_id = 'bo'").fetchall() == [
            (1,)
        ]
        # A row already at bo's next seq (written behind the store's back): the publish fails,
        # and its seq advance is undone with it.
        other.execute(
            "INSERT INTO notifications (user_id, seq, message, data, created_ms) "
            "VALUES ('bo', 2, 'behind', '{}', 0)"
        )
        other.commit()
        with pytest.raises(sqlite3.IntegrityError):
            await store.add(Draft(user_ids=("bo",), message="clash"))
        assert other.execute("SELECT last_seq FROM users WHERE user_id = 'bo'").fetchone() == (1,)
    finally:
        other.close()
    assert not store._writer.connection().in_transaction
    later = await store.add(Draft(user_ids=("ada ✓",), message="later"))
    assert [n.seq for n in later.notifications] == [4]
    # The trigger passes a NUL on whole (the HTTP API refuses it; the Python API may not).
    await store.add(Draft(user_ids=("n\x00ul",), message="nul \x00 inside"))
    assert [n.message for n in await store.after("n\x00ul", 0, 10)] == ["nul \x00 inside"]


async def test_a_batch_that_fails_is_written_publish_by_publish(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = observed_batches(monkeypatch)
    await store.add(Draft(user_ids=("bo",), message="first"))
    other = sqlite3.connect(tmp_path / "group.db")
    try:
        # A row already at bo's next seq: the batch's one statement fails and is undone whole.
        other.execute(
            "INSERT INTO notifications (user_id, seq, message, data, created_ms) "
            "VALUES ('bo', 2, 'behind', '{}', 0)"
        )
        other.commit()
    finally:
        other.close()
    outcomes = await queued_together(
        store,
        [
            store.add(Draft(user_ids=("ada",), message="a1")),
            store.add(Draft(user_ids=("bo",), message="clash")),
            store.add(Draft(user_ids=("ada", "cy"), message="a2")),
        ],
    )
    assert sizes == []
    a1, clash, a2 = outcomes
    assert isinstance(clash, sqlite3.IntegrityError)
    assert isinstance(a1, Stored)
    assert isinstance(a2, Stored)
    assert [(n.user_id, n.seq) for n in a2.notifications] == [("ada", 2), ("cy", 1)]
    assert [n.message for n in await store.after("ada", 0, 10)] == ["a1", "a2"]
    assert [n.message for n in await store.after("bo", 0, 10)] == ["first", "behind"]
