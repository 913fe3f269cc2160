"""Email digests from several nodes on one PostgreSQL store: each digest goes out exactly once,
whichever node claims it (the claim is a compare-and-set in the store, nothing in memory)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.multinode.cluster import Cluster
from tests.smtp import SmtpSink, email_settings, listed_messages
from tests.support import PUBLISHER_KEY

# Waits on timers (a grace window, a lease, a token's lifetime) more than it computes: in the
# lane of its own beside the parallel pass (scripts/test).
pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.serial]

USERS = 6


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    started = SmtpSink()
    started.start()
    yield started
    started.stop()


async def test_two_nodes_send_each_digest_exactly_once(
    tmp_path: Path, postgres_url: str, redis_bus: str, tag: str, sink: SmtpSink
) -> None:
    # Both nodes look every 50 ms: they race for the same digests all the time.
    cluster = Cluster(
        tmp_path, postgres_url, redis_bus, **email_settings(sink, email_interval="0.05")
    )
    try:
        nodes = cluster.start(2)
        users = [f"{tag}-u{i}" for i in range(USERS)]
        async with httpx.AsyncClient(
            headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10
        ) as http:

            async def publish(i: int, user: str, message: str) -> None:
                url = nodes[i % 2].url
                answer = await http.post(
                    f"{url}/api/notifications", json={"user_id": user, "message": message}
                )
                assert answer.status_code == 201, answer.text

            for i, user in enumerate(users):
                answer = await http.put(
                    f"{nodes[i % 2].url}/api/users/{user}", json={"email": f"{user}@mail.example"}
                )
                assert answer.status_code == 200, answer.text
            # One notification per user per window: two published one after the other may
            # become due in different windows (each waits its own TIDINGS_EMAIL_AFTER).
            for i, user in enumerate(users):
                await publish(i, user, "one")
            firsts = await asyncio.gather(*(sink.wait_for(f"{u}@mail.example") for u in users))
            # The sentinel: each user's next email lists only what came after the first, so
            # no node sent the first one again.
            for i, user in enumerate(users):
                await publish(i + 1, user, "two")
            both = await asyncio.gather(*(sink.wait_for(f"{u}@mail.example", 2) for u in users))
        for user, [first], (again, second) in zip(users, firsts, both, strict=True):
            assert again is first, user
            assert listed_messages(first) == ["one"], user
            assert listed_messages(second) == ["two"], user
            assert len(sink.to(f"{user}@mail.example")) == 2, user
        # At least: the shared database may hold earlier tests' users with digests still due.
        sent = sum(n.metric("tidings_away_sent_total", 'channel="email"') for n in nodes)
        assert sent >= 2 * USERS
        # Both nodes took part (with this many claims, one alone would be a broken test).
        assert all(n.metric("tidings_store_queries_total", 'op="claim_email"') > 0 for n in nodes)
    finally:
        cluster.close()
