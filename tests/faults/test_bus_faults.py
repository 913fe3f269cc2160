"""One part of a sharded bus killed and restarted under load: nothing lost, duplicated or
reordered, and only the users routed through the lost part wait.

Each test starts its own engine instances (to kill with SIGKILL): two standalone Redis hashed, a
Redis Cluster of three masters, a NATS cluster of three servers. Real nodes on the PostgreSQL
store; browser-like SSE clients that reconnect with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from tests.multinode.client import ReconnectingClient, running
from tests.multinode.cluster import Cluster, Node, Publisher
from tests.multinode.conftest import ClusterFactory, PrivateRedis
from tests.support import free_port, make_token
from tidings.bus.redis import jump_hash

# A failover and reconnects timed in seconds: one at a time, in the lane beside the parallel pass.
pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.serial]

# A notification written to a stream within this long of its commit came live, not by catch-up.
LIVE_S = 1.5


def _binary(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if found is None:
        pytest.fail(f"{name} is not installed (scripts/install-system installs it)")
    return found


@contextlib.asynccontextmanager
async def publisher() -> AsyncIterator[Publisher]:
    pub = Publisher()
    try:
        yield pub
    finally:
        await pub.aclose()


async def publish_steadily(
    pub: Publisher, urls: list[str], user: str, stop: asyncio.Event, every: float = 0.1
) -> None:
    i = 0
    while not stop.is_set():
        await pub.publish(urls, user, f"{user}-{i}")
        i += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def outage(
    streams: dict[str, Node],
    publish_via: dict[str, list[Node]],
    kept: list[str],
    kill: Callable[[], None],
    restart: Callable[[], None],
    logs: Callable[[], str],
) -> None:
    """Every user's stream on its node, a steady publish per user; kill, check that the `kept`
    users still receive live while it is down, restart, and check every stream got everything
    exactly once in order over the stream it had from the start."""
    clients = {
        user: ReconnectingClient(node.url, make_token(user), last_event_id="0")
        for user, node in streams.items()
    }
    async with publisher() as pub, running(*clients.values()):
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            for user in streams:
                urls = [n.url for n in publish_via[user]]
                tg.create_task(publish_steadily(pub, urls, user, stop))
            for client in clients.values():
                await client.wait_for(3, timeout=20)
            kill()
            down_at = time.time()
            for user in kept:
                # Three more, each written within moments of its commit: live, not caught up.
                client = clients[user]
                await client.wait_for(len(client.received) + 3, timeout=10)
                late = [r for r in client.received if r.at > down_at]
                assert len(late) >= 3, logs()
                assert all(r.at - r.created_ms / 1000 < LIVE_S for r in late[-3:]), (
                    f"{user} was not served live while another shard was down\n{logs()}"
                )
            restart()
            await asyncio.sleep(1.0)
            stop.set()
        for user, client in clients.items():
            await client.wait_for(len(pub.stored[user]), timeout=30)
    for user, client in clients.items():
        expected = pub.stored[user]
        assert len(expected) > 10
        assert client.resets == [], user
        assert client.seqs == expected, (
            f"{user}: got {len(client.seqs)} of {len(expected)}; "
            f"missing {sorted(set(expected) - set(client.seqs))[:10]}\n{logs()}"
        )
        assert expected == list(range(1, len(expected) + 1))
        # The stream held on: whatever the outage delayed came through the open connection.
        assert client.connects == 1, user


def users_by(
    shard_of: Callable[[str], int], shards: int, tag: str, each: int = 2
) -> list[list[str]]:
    """`each` user ids per shard, found by trying ids until every shard has them."""
    found: list[list[str]] = [[] for _ in range(shards)]
    i = 0
    while any(len(f) < each for f in found):
        user = f"f{i}-{tag}"
        bucket = found[shard_of(user)]
        if len(bucket) < each:
            bucket.append(user)
        i += 1
    return found


async def test_a_hashed_redis_shard_killed_under_load_delays_only_its_users(
    make_cluster: ClusterFactory, tmp_path: Path, tag: str
) -> None:
    binary = _binary("redis-server")
    shards = []
    for index in range(2):
        folder = tmp_path / f"redis{index}"
        folder.mkdir()
        server = PrivateRedis(folder, binary)
        server.start()
        shards.append(server)
    try:
        bus = ",".join(s.url for s in shards) + f"?channel=f_{tag}"
        cluster = make_cluster(bus)
        one, two = cluster.start(2)
        lost, kept = users_by(lambda u: jump_hash(u, 2), 2, tag)
        streams = {u: (one if i % 2 else two) for i, u in enumerate(lost + kept)}
        via = {u: [one, two] for u in streams}
        victim = shards[0]

        def kill() -> None:
            assert victim.proc is not None
            victim.proc.kill()
            victim.proc.wait()

        await outage(streams, via, kept, kill, victim.start, cluster.logs)
    finally:
        for server in shards:
            server.stop()


@dataclass
class PrivateRedisCluster:
    """Three redis-server masters of the test's own, to kill one and start it again."""

    folder: Path
    binary: str
    replicas: int = 0  # per master
    ports: list[int] = field(default_factory=list)
    bus_ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = 3 * (1 + self.replicas)
        self.ports = [free_port() for _ in range(count)]
        self.bus_ports = [free_port() for _ in range(count)]
        self.procs = [None] * count

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def start_node(self, index: int) -> None:
        home = self.folder / f"node{index}"
        home.mkdir(exist_ok=True)
        self.procs[index] = subprocess.Popen(
            [
                self.binary, "--port", str(self.ports[index]), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(home),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(self.bus_ports[index]),
                "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
                "--repl-diskless-sync-delay", "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait(lambda: self._client(index).ping())

    def create(self) -> None:
        for index in range(len(self.ports)):
            self.start_node(index)
        subprocess.run(
            [
                _binary("redis-cli"), "--cluster", "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas", str(self.replicas), "--cluster-yes",
            ],
            check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        for index in range(len(self.ports)):
            self.wait_ok(index)
        # A replica that has not finished its first sync has no data age and never takes over
        # (the failover test killed a master before its replica was in sync, and waited in vain).
        for index in range(len(self.ports)):
            self._wait(functools.partial(self._in_sync, index), timeout=60)

    def _in_sync(self, index: int) -> bool:
        info = self._client(index).info("replication")
        return info.get("role") != "slave" or info.get("master_link_status") == "up"

    def wait_ok(self, index: int) -> None:
        self._wait(lambda: self._client(index).cluster("info")["cluster_state"] == "ok")

    def _client(self, index: int) -> redis.Redis:
        return redis.Redis(port=self.ports[index], socket_connect_timeout=1, decode_responses=True)

    @staticmethod
    def _wait(check: Callable[[], object], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the Redis Cluster did not come up")

    def masters(self) -> list[int]:
        """The indexes of the nodes that are masters now, in slot order."""
        slots = self._client(0).execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        return [self.ports.index(int(master[1])) for _, _, master, *_ in sorted(slots)]

    def master_of(self, user: str, prefix: str) -> int:
        """Which node serves the user's channel (`<prefix>:u:{<user>}`)."""
        slot = key_slot(f"{prefix}:u:{{{user}}}".encode())
        slots = self._client(0).execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        for start, end, master, *_ in slots:
            if start <= slot <= end:
                return self.ports.index(int(master[1]))
        raise AssertionError(f"no master for slot {slot}")

    def _masters_seen_by(self, index: int) -> list[int]:
        client = self._client(index)
        slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        return [self.ports.index(int(master[1])) for _, _, master, *_ in slots]

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        assert proc is not None
        proc.kill()
        proc.wait()

    def restart(self, index: int) -> None:
        self.start_node(index)
        self.wait_ok(index)

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_a_redis_cluster_master_killed_under_load_delays_only_its_users(
    make_cluster: ClusterFactory, tmp_path: Path, tag: str
) -> None:
    servers = PrivateRedisCluster(tmp_path, _binary("redis-server"))
    try:
        servers.create()
        prefix = f"f_{tag}"
        cluster = make_cluster(f"{servers.url}?channel={prefix}")
        one, two = cluster.start(2)
        by_master = users_by(lambda u: servers.master_of(u, prefix), 3, tag)
        lost, kept = by_master[0], by_master[1] + by_master[2]
        streams = {u: (one if i % 2 else two) for i, u in enumerate(lost + kept)}
        via = {u: [one, two] for u in streams}
        await outage(
            streams, via, kept, lambda: servers.kill(0), lambda: servers.restart(0), cluster.logs
        )
    finally:
        servers.stop()


async def test_a_redis_cluster_failover_moves_a_masters_users_to_its_replica_and_loses_nothing(
    make_cluster: ClusterFactory, tmp_path: Path, tag: str
) -> None:
    servers = PrivateRedisCluster(tmp_path, _binary("redis-server"), replicas=1)
    try:
        servers.create()
        prefix = f"f_{tag}"
        cluster = make_cluster(f"{servers.url}?channel={prefix}")
        one, two = cluster.start(2)
        masters = servers.masters()
        victim = masters[0]
        users = users_by(lambda u: masters.index(servers.master_of(u, prefix)), 3, tag)
        lost, kept = users[0], users[1] + users[2]
        streams = {u: (one if i % 2 else two) for i, u in enumerate(lost + kept)}
        via = {u: [one, two] for u in streams}
        survivor = next(i for i in range(len(servers.ports)) if i not in (victim,))

        def failed_over() -> None:
            # The replica takes over (cluster-node-timeout 2 s, then an election).
            # Generous: the election waits for the node timeout, then for the replica's rank.
            servers._wait(lambda: victim not in servers._masters_seen_by(survivor), timeout=60)
            servers.wait_ok(survivor)

        await outage(streams, via, kept, lambda: servers.kill(victim), failed_over, cluster.logs)
        assert "its slots moved to" in cluster.logs()
    finally:
        servers.stop()


@dataclass
class PrivateNats:
    """A NATS cluster of three nats-server processes of the test's own."""

    folder: Path
    binary: str
    ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    routes: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    monitors: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=lambda: [None] * 3)

    def url(self, *order: int) -> str:
        return ",".join(f"nats://127.0.0.1:{self.ports[i]}" for i in order)

    def start_server(self, index: int) -> None:
        others = ",".join(f"nats://127.0.0.1:{p}" for i, p in enumerate(self.routes) if i != index)
        self.procs[index] = subprocess.Popen(
            [
                self.binary, "-a", "127.0.0.1", "-p", str(self.ports[index]),
                "-m", str(self.monitors[index]), "--cluster_name", "tidings",
                "--cluster", f"nats://127.0.0.1:{self.routes[index]}", "--routes", others,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_routed(self, index: int, routes: int = 2) -> None:
        """Until the server has its routes to the others (a publish there reaches them)."""
        deadline = time.monotonic() + 20
        url = f"http://127.0.0.1:{self.monitors[index]}/routez"
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(url, timeout=1) as answer,
            ):
                if json.load(answer)["num_routes"] >= routes:
                    return
            time.sleep(0.05)
        raise RuntimeError("the NATS cluster did not form")

    def start(self) -> None:
        for index in range(3):
            self.start_server(index)
        for index in range(3):
            self.wait_routed(index)

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        assert proc is not None
        proc.kill()
        proc.wait()

    def restart(self, index: int) -> None:
        self.start_server(index)
        self.wait_routed(index)

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_a_nats_server_killed_under_load_delays_only_the_nodes_on_it(
    tmp_path: Path, postgres_url: str, tag: str
) -> None:
    servers = PrivateNats(tmp_path, _binary("nats-server"))
    clusters: list[Cluster] = []
    try:
        servers.start()
        # Node one talks to server 0 (then 1), node two to server 2: killing server 0 moves
        # node one over to server 1 and leaves node two alone.
        for order, name in (((0, 1), "a"), ((2, 1), "b")):
            cluster = Cluster(
                tmp_path / name, postgres_url, f"{servers.url(*order)}?channel=f_{tag}"
            )
            (tmp_path / name).mkdir()
            clusters.append(cluster)
        (one,) = clusters[0].start(1)
        (two,) = clusters[1].start(1)
        lost = [f"a{i}-{tag}" for i in range(2)]
        kept = [f"b{i}-{tag}" for i in range(2)]
        streams = {**dict.fromkeys(lost, one), **dict.fromkeys(kept, two)}
        # The kept users' publishes go through the node that stays connected.
        via = {**{u: [one, two] for u in lost}, **{u: [two] for u in kept}}

        def logs() -> str:
            return "\n".join(c.logs() for c in clusters)

        await outage(streams, via, kept, lambda: servers.kill(0), lambda: servers.restart(0), logs)
        assert "reconnected; streams catch up from the store" in clusters[0].logs()
    finally:
        for cluster in clusters:
            cluster.close()
        servers.stop()
