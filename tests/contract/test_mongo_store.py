"""MongoDB store races that need a second writer between two steps of one publish.

The interleaving is forced by overriding one of the store's own steps; every read and write
still goes to the real server (MongoDB or FerretDB).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from pymongo.errors import AutoReconnect

from tests.contract.conftest import fresh_database
from tidings.models import Draft, Notification
from tidings.store import StoreUnavailable
from tidings.store.factory import mongo_database
from tidings.store.mongo import Doc, MongoStore

pytestmark = pytest.mark.anyio

S = TypeVar("S", bound=MongoStore)


@pytest.fixture
def mongo_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("mongodb", tmp_path) as url:
        yield url


class Raced(MongoStore):
    """Runs `race` once, between reading the users' highest seq and inserting the next one."""

    race: Callable[[], Awaitable[None]] | None = None

    async def _taken(self, user_ids: Sequence[str]) -> dict[str, int]:
        taken = await super()._taken(user_ids)
        if self.race is not None:
            race, self.race = self.race, None
            await race()
        return taken


class LostReply(MongoStore):
    """The connection drops once: after the first document of an insert, or after the refs."""

    fail_insert = False
    fail_refs = False

    async def _insert_chunk(self, docs: Sequence[Doc]) -> list[str]:
        if self.fail_insert:
            self.fail_insert = False
            await super()._insert_chunk(docs[:1])
            raise AutoReconnect("connection lost")
        return await super()._insert_chunk(docs)

    async def _record_refs(self, key: str, owner: str, made: Sequence[Notification]) -> None:
        if self.fail_refs:
            self.fail_refs = False
            raise AutoReconnect("connection lost")
        await super()._record_refs(key, owner, made)


async def opened(store: S) -> S:
    await store.open()
    return store


async def test_a_seq_seen_and_deleted_meanwhile_is_not_reused(mongo_url: str) -> None:
    name = mongo_database(mongo_url)
    publisher = await opened(Raced(mongo_url, name))
    other = await opened(MongoStore(mongo_url, name))
    try:
        for i in range(4):
            await other.add(Draft(user_ids=("alice",), message=f"n{i + 1}"))

        async def store_and_delete_5() -> None:
            [five] = (await other.add(Draft(user_ids=("alice",), message="five"))).notifications
            assert five.seq == 5
            assert await other.delete("alice", 5) is True

        publisher.race = store_and_delete_5
        [made] = (await publisher.add(Draft(user_ids=("alice",), message="late"))).notifications
        assert made.seq == 6
        assert [n.seq for n in await other.after("alice", 4, 10)] == [6]
        assert (await other.position("alice")).last_seq == 6
    finally:
        await publisher.close()
        await other.close()


@pytest.mark.parametrize("where", ["insert", "refs"])
async def test_a_retry_after_a_failure_midway_stores_nothing_twice(
    mongo_url: str, where: str
) -> None:
    name = mongo_database(mongo_url)
    failing = await opened(LostReply(mongo_url, name))
    store = await opened(MongoStore(mongo_url, name))
    draft = Draft(user_ids=("alice", "bob"), message="once")
    try:
        failing.fail_insert = where == "insert"
        failing.fail_refs = where == "refs"
        with pytest.raises(StoreUnavailable):
            await failing.add(draft, "key")
        retried = await store.add(draft, "key")
        # Completed, not replayed: the caller announces what the failed attempt never did.
        assert not retried.replayed
        assert [(n.user_id, n.seq) for n in retried.notifications] == [("alice", 1), ("bob", 1)]
        for user in ("alice", "bob"):
            assert [n.seq for n in await store.after(user, 0, 10)] == [1]
        again = await failing.add(draft, "key")
        assert again.replayed
        assert again.notifications == retried.notifications
        assert (await store.add(Draft(user_ids=("alice",), message="next"))).notifications[
            0
        ].seq == 2
    finally:
        await failing.close()
        await store.close()
