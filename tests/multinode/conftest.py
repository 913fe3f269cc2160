from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import require_services, service_url
from tests.contract.conftest import fresh_database
from tests.multinode.cluster import Cluster
from tests.multinode.nginx import Nginx, find_nginx
from tests.support import free_port


def _missing(what: str) -> None:
    reason = f"{what} is not installed (scripts/install-system installs it)"
    if require_services():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def tag() -> str:
    """Unique per test: user ids, bus channels and idempotency keys never meet another test's."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL database of the test's own (a migrated copy): tests running side by side
    (pytest -n) never see each other's scheduled rows, digests or pushes."""
    with fresh_database("postgres", tmp_path, migrated=True) as url:
        yield url


@pytest.fixture
def redis_bus(tag: str) -> str:
    return f"{service_url('REDIS')}?channel=mn_{tag}"


@pytest.fixture
def postgres_bus(postgres_url: str, tag: str) -> str:
    return f"{postgres_url}?channel=mn_{tag}"


@pytest.fixture
def redis_hashed_bus(tag: str) -> str:
    """Two standalone Redis, users hashed over them."""
    return f"{service_url('REDIS')},{service_url('REDIS2')}?channel=mn_{tag}"


@pytest.fixture
def redis_cluster_bus(tag: str) -> str:
    """A Redis Cluster of three masters, sharded pub/sub."""
    return f"{service_url('REDIS_CLUSTER')}?channel=mn_{tag}"


@pytest.fixture
def nats_bus(tag: str) -> str:
    return f"{service_url('NATS')}?channel=mn_{tag}"


# Every engine that routes per user: the tests of tests/multinode/test_routing.py run on each.
ROUTED_BUSES = ["redis", "redis_hashed", "redis_cluster", "nats"]


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def make_cluster(tmp_path: Path, postgres_url: str) -> Iterator[ClusterFactory]:
    """make_cluster(bus_url): nodes on the shared PostgreSQL store; stopped after the test."""
    made: list[Cluster] = []

    def make(bus_url: str, **settings: str) -> Cluster:
        cluster = Cluster(tmp_path, postgres_url, bus_url, **settings)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@dataclass
class PrivateRedis:
    """A redis-server of the test's own, to stop and start again on the same port."""

    folder: Path
    binary: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server")
    assert binary is not None
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder, binary)
    server.start()
    yield server
    server.stop()


NginxFactory = Callable[[list[int]], Nginx]


@pytest.fixture
def make_nginx(tmp_path: Path) -> Iterator[NginxFactory]:
    """make_nginx([port1, port2, port3]): nginx with docs/deploy.md's configuration."""
    binary = find_nginx()
    if binary is None:
        _missing("nginx")
    assert binary is not None
    started: list[Nginx] = []

    def make(ports: list[int]) -> Nginx:
        proxy = Nginx(tmp_path / f"nginx-{len(started)}", ports, binary)
        started.append(proxy)
        proxy.start()
        return proxy

    yield make
    for proxy in started:
        proxy.close()
