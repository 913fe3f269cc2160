"""`tidings serve --workers 2`: worker processes on one port, joined by the bus, each draining."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.multinode.cluster import Cluster
from tests.multinode.conftest import ClusterFactory
from tests.support import PUBLISHER_KEY, Server, Stream, make_token, open_stream, run_cli

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def delivered_across_workers(
    stack: contextlib.AsyncExitStack, node: Server, users: list[str]
) -> list[Stream]:
    """Two streams per user on one port, then one publish per user on a new connection each.

    With sixteen connections the kernel spreads the streams over both workers (all on one has
    odds of 2^-15), and the publishes too, so some publish is answered by a worker that does not
    hold the stream and reaches it only through the bus. Every stream gets its user's one.
    """
    streams = [
        await stack.enter_async_context(open_stream(node.url, make_token(user)))
        for user in users
        for _ in range(2)
    ]
    assert all(s.status == 200 for s in streams)
    async with httpx.AsyncClient(timeout=10) as client:
        for user in users:
            response = await client.post(
                f"{node.url}/api/notifications",
                json={"user_id": user, "message": f"hello {user}"},
                headers={"authorization": f"Bearer {PUBLISHER_KEY}", "connection": "close"},
            )
            assert response.status_code == 201, response.text
    for index, stream in enumerate(streams):
        [got] = await stream.notifications(1, timeout=10)
        user = users[index // 2]
        assert got == {**got, "user_id": user, "message": f"hello {user}"}
    return streams


async def test_workers_deliver_across_processes_and_each_drains_on_sigterm(
    make_cluster: ClusterFactory, redis_bus: str, tag: str
) -> None:
    cluster = make_cluster(redis_bus)
    [node] = cluster.start(1, "--workers", "2")
    assert node.log().count("Started worker process") == 2, node.log()
    users = [f"wk-{tag}-{i}" for i in range(8)]
    async with contextlib.AsyncExitStack() as stack:
        streams = await delivered_across_workers(stack, node, users)

        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(s.ended.wait() for s in streams)), 15)
        # Each stream got its opening retry and then the jittered retry of its worker's drain.
        assert all(len(s.retries) == 2 for s in streams), [s.retries for s in streams]
        exit_code = await asyncio.to_thread(node.proc.wait, 20)
        assert exit_code == 0, node.log()


async def test_workers_on_sqlite_and_the_local_bus_deliver_across_processes(
    tmp_path: Path, tag: str
) -> None:
    # The embedded default: no Redis, no PostgreSQL. Each worker listens on its own SO_REUSEPORT
    # socket and announces to its siblings over the local bus's Unix datagram sockets.
    cluster = Cluster(tmp_path, f"sqlite:///{tmp_path / 'tidings.db'}", "local://")
    try:
        [node] = cluster.start(1, "--workers", "2")
        assert node.log().count("Started worker process") == 2, node.log()
        users = [f"lw-{tag}-{i}" for i in range(8)]
        async with contextlib.AsyncExitStack() as stack:
            streams = await delivered_across_workers(stack, node, users)

            # `tidings send` on the same machine reaches every worker's streams too.
            sent = await asyncio.to_thread(run_cli, cluster.env, "send", users[0], "from the cli")
            assert sent.returncode == 0, sent.stderr
            assert "no running server" not in sent.stderr  # it finds the workers' sockets
            for stream in streams[:2]:
                [got] = await stream.notifications(1, timeout=10)
                assert got["message"] == "from the cli"

            # A publish to every user crosses to the sibling as one shared body (wire `pm`).
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(
                    f"{node.url}/api/notifications",
                    json={"user_ids": users, "message": "to all", "data": {"x": [1, "✓"]}},
                    headers={"authorization": f"Bearer {PUBLISHER_KEY}"},
                )
            assert response.status_code == 201, response.text
            stored = {n["user_id"]: n for n in response.json()}
            for index, stream in enumerate(streams):
                [got] = await stream.notifications(1, timeout=10)
                assert got == stored[users[index // 2]]
    finally:
        cluster.close()


async def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, f"sqlite:///{tmp_path / 'tidings.db'}", "local://")
    try:
        [node] = cluster.start(1, "--workers", "2")
        pids = [int(p) for p in re.findall(r"Started worker process \[(\d+)\]", node.log())]
        assert len(pids) == 2, node.log()
        node.kill()  # SIGKILL: the parent cannot pass anything on
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:  # noqa: ASYNC110 -- a poll with a deadline
            await asyncio.sleep(0.2)
        assert not [pid for pid in pids if _alive(pid)], node.log()
    finally:
        cluster.close()


def _alive(pid: int) -> bool:
    """Running, not exited (an orphan that exited may linger as a zombie nobody reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
