from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import HTTP, Server, ThreadServer, tidings_env

ServerFactory = Callable[..., Server]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules with a test marked `slow` first (in their own order, each kept whole): on
    parallel workers a test of half a minute that starts last keeps the run waiting for it
    alone, one that starts first runs alongside the many short ones."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: the rest keep their order


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def require_services() -> bool:
    return os.environ.get("TIDINGS_REQUIRE_SERVICES") == "1"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tidings.db'}"


@pytest.fixture
def make_server(tmp_path: Path, database_url: str) -> Iterator[ServerFactory]:
    """Start `tidings serve` processes: make_server(TIDINGS_HEARTBEAT="1", ...).

    `thread=True`: uvicorn in a thread of the test process instead (tests.support.ThreadServer),
    which starts in a tenth of the time, for a test that does not kill or signal the server.
    """
    started: list[Server] = []

    def make(*args: str, database: str | None = None, thread: bool = False, **env: str) -> Server:
        extra = {
            f"TIDINGS_{k.upper()}" if not k.startswith("TIDINGS_") else k: v for k, v in env.items()
        }
        server = (ThreadServer if thread else Server)(
            env=tidings_env(database or database_url, extra),
            log_path=tmp_path / f"server-{len(started)}.log",
        )
        started.append(server)
        server.start(*args)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    return make_server()


def service_url(name: str) -> str:
    """The URL of a test server from `scripts/services up` (TIDINGS_TEST_<NAME>_URL).

    Skips the test when the server is missing, or fails it under TIDINGS_REQUIRE_SERVICES=1.
    Names: POSTGRES, REDIS, MONGODB, REDIS2, REDIS_CLUSTER, NATS.
    """
    variable = f"TIDINGS_TEST_{name.upper()}_URL"
    url = os.environ.get(variable)
    if url:
        return url
    reason = f'{variable} is not set: start the test servers with `eval "$(scripts/services up)"`'
    if require_services():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _close_shared_client() -> Iterator[None]:
    yield
    HTTP.close()
