"""Issue 22, item 2: scheduled rows claimed by a node that is then killed with kill -9 reach their
users within one (renewed) lease, on every store, not after the 30 s it used to be.

Deterministic: node B, a real `tidings serve`, holds the users' streams and schedules the rows,
so its scheduler wakes when they fall due. The dying node is a process that claims them as a
node's scheduler does (`Store.claim_due`, the same lease as B's), with its clock a second ahead
of B's (node clocks differ a little): it claims them before B looks, and is killed -9 at once,
holding the lease. B finds them leased, and must deliver them when the lease runs out: once, in
order."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.contract.conftest import STORES, fresh_database
from tests.multinode.client import ReconnectingClient, running
from tests.multinode.cluster import Cluster
from tests.support import make_token, schedule_each

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.serial]

USERS = ("ann", "bob")
COUNT = 3
# The lease both nodes run with (TIDINGS_SCHEDULER_LEASE): shorter than the default 5 s (it was
# 30 s), so the test waits out 2 s, not 5; what is tested (delivered once the lease runs out,
# not later) does not depend on its length.
LEASE = 2.0
# Seconds from the kill to the deliveries: the lease and, on top, B's next look (its interval)
# and a loaded machine's slowness.
WITHIN = LEASE + 8.0

# The dying node: claims the due rows (its clock a second ahead) with the lease it is given (B's,
# LEASE), says so, and waits to be killed.
CLAIMER = """
import asyncio, sys
from tidings.clock import Clock, now_ms
from tidings.store import create_store

class Ahead(Clock):
    def now_ms(self) -> int:
        return now_ms() + 1000

async def main() -> None:
    store = create_store(sys.argv[1], clock=Ahead())
    await store.open()
    print("ready", flush=True)
    lease_ms = int(float(sys.argv[3]) * 1000)
    claimed = []
    while len(claimed) < int(sys.argv[2]):
        claimed += await store.claim_due(lease_ms, 100)
        await asyncio.sleep(0.02)
    print(f"claimed {len(claimed)}", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture(params=STORES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path, migrated=True) as url:
        yield url


async def test_rows_a_killed_node_claimed_are_delivered_within_one_lease(
    tmp_path: Path, database: str, tag: str
) -> None:
    cluster = Cluster(
        tmp_path, database, "local://", scheduler_interval="0.5", scheduler_lease=str(LEASE)
    )
    claimer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLAIMER,
        database,
        str(COUNT * len(USERS)),
        str(LEASE),
        stdout=asyncio.subprocess.PIPE,
    )
    assert claimer.stdout is not None
    try:
        [b] = await asyncio.to_thread(cluster.start, 1)
        line = await asyncio.wait_for(claimer.stdout.readline(), 60)
        assert line.strip() == b"ready"
        clients = [ReconnectingClient(b.url, make_token(u), last_event_id="0") for u in USERS]
        async with running(*clients):
            due = datetime.now(UTC) + timedelta(seconds=2)
            await schedule_each([b.url], USERS, due.isoformat(), tag, COUNT)
            line = await asyncio.wait_for(claimer.stdout.readline(), 60)
            claimer.kill()  # kill -9, holding the lease
            killed = time.monotonic()
            assert line.strip() == f"claimed {COUNT * len(USERS)}".encode(), cluster.logs()
            await asyncio.gather(*(c.wait_for(COUNT, WITHIN + 60) for c in clients))
            took = time.monotonic() - killed
        assert took < WITHIN, f"{took:.1f} s after the kill\n{cluster.logs()}"
        for client in clients:
            assert client.seqs == list(range(1, COUNT + 1)), cluster.logs()
            assert [r.message for r in client.received] == [f"m{i}" for i in range(COUNT)]
    finally:
        if claimer.returncode is None:
            claimer.kill()
        await claimer.communicate()  # reaps it and closes the pipe
        cluster.close()
