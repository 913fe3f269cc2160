"""Compact fault injection: kill -9 and a bus outage while publishing, counted per user.

Publishers behave as docs/api.md asks (one idempotency key per message, retried on a network
error or a 503 until stored); streams reconnect like a browser, with Last-Event-ID. After the
faults, one last sentinel publish per user lets every stream catch up, then each user's REST list
is read. Four counts per user, each asserted zero:

- lost: a stored message missing from the list, or from a stream that received the sentinel;
- duplicated: one message stored under two seqs, or one seq received twice by a stream;
- reordered: seqs not in publish order in the list, or not ascending on a stream;
- misdelivered: a notification of another user in a list or on a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.multinode.client import ReconnectingClient, running
from tests.multinode.cluster import Cluster, Node, Publisher
from tests.multinode.conftest import ClusterFactory, PrivateRedis
from tests.support import make_token

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

USERS = 3
EVERY = 0.03  # seconds between one user's publishes
CATCH_UP = 30.0


@dataclass
class Outcome:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    reordered: list[str] = field(default_factory=list)
    misdelivered: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "reordered": len(self.reordered),
            "misdelivered": len(self.misdelivered),
        }


@dataclass
class Load:
    """Publishes for every user until stopped; remembers each message with its seq."""

    pub: Publisher
    urls: list[str]
    tag: str
    users: list[str]
    sent: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def message(self, user: str, index: int | str) -> str:
        return f"{self.tag}-{user}-{index}"

    def total(self) -> int:
        return sum(len(sent) for sent in self.sent.values())

    async def publish(self, user: str, message: str) -> int:
        seq = await self.pub.publish(self.urls, user, message)
        self.sent.setdefault(user, []).append((message, seq))
        return seq

    async def run(self, user: str) -> None:
        index = 0
        while not self.stop.is_set():
            await self.publish(user, self.message(user, index))
            index += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), EVERY)


@contextlib.asynccontextmanager
async def publishing(load: Load) -> AsyncIterator[None]:
    """Publish for every user while the block runs; the publishes in flight complete after."""
    async with asyncio.TaskGroup() as tg:
        for user in load.users:
            tg.create_task(load.run(user))
        try:
            yield
        finally:
            load.stop.set()


async def wait_for_message(client: ReconnectingClient, message: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while all(r.message != message for r in client.received):
        client.changed.clear()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.changed.wait(), remaining)
    return True


async def listed(base_url: str, user: str) -> list[dict[str, Any]]:
    """The user's whole list through the REST API, oldest first."""
    found: list[dict[str, Any]] = []
    headers = {"authorization": f"Bearer {make_token(user)}"}
    url = f"{base_url}/notifications?limit=100"
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            response = await http.get(url, headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            found.extend(page)
            if not page or "next" not in response.links:
                break
            url = f"{base_url}/notifications?limit=100&before={page[-1]['id']}"
    return found[::-1]


async def settle_and_count(
    load: Load, streams: dict[str, list[ReconnectingClient]], list_url: str
) -> Outcome:
    """A sentinel per user, every stream caught up to it, then the four counts."""
    outcome = Outcome()
    for user in load.users:
        sentinel = load.message(user, "sentinel")
        await load.publish(user, sentinel)
        for client in streams[user]:
            if not await wait_for_message(client, sentinel, CATCH_UP):
                outcome.lost.append(f"{user}: a stream never received the sentinel")
    for user in load.users:
        sent = load.sent[user]
        prefix = f"{load.tag}-{user}-"
        rows = await listed(list_url, user)
        by_message: dict[str, list[int]] = {}
        for row in rows:
            if row["user_id"] != user or not row["message"].startswith(prefix):
                outcome.misdelivered.append(f"{user}: listed {row}")
            by_message.setdefault(row["message"], []).append(row["id"])
        seqs_in_publish_order: list[int] = []
        for message, seq in sent:
            stored = by_message.get(message, [])
            if not stored:
                outcome.lost.append(f"{user}: {message} (answered seq {seq}) is not listed")
            if len(stored) > 1:
                outcome.duplicated.append(f"{user}: {message} stored as {stored}")
            if stored:
                seqs_in_publish_order.append(stored[0])
        for before, after in itertools.pairwise(seqs_in_publish_order):
            if after <= before:
                outcome.reordered.append(f"{user}: listed seq {after} published after {before}")
        listed_seqs = {row["id"] for row in rows}
        for index, client in enumerate(streams[user]):
            where = f"{user} stream {index}"
            seqs = client.seqs
            for received in client.received:
                if not received.message.startswith(prefix):
                    outcome.misdelivered.append(f"{where}: got {received.message}")
            for seq in sorted(listed_seqs - set(seqs)):
                outcome.lost.append(f"{where}: seq {seq} never arrived")
            outcome.duplicated += [
                f"{where}: seq {s} {seqs.count(s)} times"
                for s in sorted(set(seqs))
                if seqs.count(s) > 1
            ]
            outcome.reordered += [
                f"{where}: seq {b} after {a}" for a, b in itertools.pairwise(seqs) if b < a
            ]
    return outcome


def assert_nothing_wrong(outcome: Outcome, load: Load, logs: Callable[[], str]) -> None:
    # Each user published before, during and after the faults, then the sentinel.
    assert all(len(sent) >= 10 for sent in load.sent.values()), "too little was published"
    details = [*outcome.lost, *outcome.duplicated, *outcome.reordered, *outcome.misdelivered]
    assert outcome.counts() == dict.fromkeys(outcome.counts(), 0), (details[:20], logs())


def clients_for(users: list[str], urls: list[str]) -> dict[str, list[ReconnectingClient]]:
    """Per user, one stream on each URL, resuming from the start (nothing before it exists)."""
    return {
        user: [
            ReconnectingClient(url, make_token(user), last_event_id="0", max_retry_s=0.3)
            for url in urls
        ]
        for user in users
    }


async def restart(node: Node) -> None:
    """kill -9, then start on the same port and store (in a thread: starting blocks)."""
    node.kill()
    await asyncio.to_thread(node.start)


async def test_kill_9_on_sqlite_during_publishing(tmp_path: Path, tag: str) -> None:
    cluster = Cluster(tmp_path, f"sqlite:///{tmp_path / 'tidings.db'}", "local://")
    try:
        [node] = cluster.start(1)
        users = [f"sq-{tag}-{i}" for i in range(USERS)]
        streams = clients_for(users, [node.url, node.url])
        everyone = [c for cs in streams.values() for c in cs]
        pub = Publisher()
        try:
            load = Load(pub, [node.url], tag, users)
            async with running(*everyone):
                async with publishing(load):
                    await asyncio.sleep(1.0)
                    await restart(node)
                    await asyncio.sleep(1.0)
                    await restart(node)  # a second crash, with the streams back at work
                    await asyncio.sleep(1.0)
                outcome = await settle_and_count(load, streams, node.url)
        finally:
            await pub.aclose()
        assert pub.failures > 0, "no publish met the crash: the test proved nothing"
        assert all(c.connects >= 2 for c in everyone), [c.connects for c in everyone]
        assert_nothing_wrong(outcome, load, cluster.logs)
    finally:
        cluster.close()


async def test_node_kill_and_redis_outage_on_postgresql(
    make_cluster: ClusterFactory, private_redis: PrivateRedis, tag: str
) -> None:
    cluster = make_cluster(f"{private_redis.url}?channel=faults_{tag}")
    node1, node2 = cluster.start(2)
    users = [f"pg-{tag}-{i}" for i in range(USERS)]
    streams = clients_for(users, [node1.url, node2.url])
    everyone = [c for cs in streams.values() for c in cs]
    pub = Publisher()
    try:
        load = Load(pub, [node1.url, node2.url], tag, users)
        async with running(*everyone):
            async with publishing(load):
                await asyncio.sleep(1.0)
                node1.kill()
                node1.spawn()  # starts while the bus is down below: it must serve regardless
                private_redis.stop()
                before_outage = load.total()
                await asyncio.sleep(2.0)
                during_outage = load.total() - before_outage
                private_redis.start()
                await asyncio.to_thread(node1.wait_ready)
                await asyncio.sleep(1.0)
            outcome = await settle_and_count(load, streams, node2.url)
    finally:
        await pub.aclose()
    assert during_outage > 0, "nothing was stored while Redis was down: the test proved nothing"
    # The streams on node1 had to come back through the restart.
    assert all(c.connects >= 2 for c in everyone[::2]), [c.connects for c in everyone]
    assert_nothing_wrong(outcome, load, cluster.logs)
