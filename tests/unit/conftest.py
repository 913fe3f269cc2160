"""The unit tier: the core in-process, with the fakes in `fakes.py`. No sockets, no files.

Every test here is marked `unit` (so `pytest -m unit` selects the tier from anywhere), and the
whole folder runs in a few seconds: `scripts/test tests/unit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support import SECRET, make_token
from tests.unit.fakes import FakeBus, FakeClient, FakeStore
from tidings.app import create_app
from tidings.clock import Clock
from tidings.metrics import Metrics
from tidings.models import Draft, Stored
from tidings.service import Service
from tidings.settings import Settings
from tidings.store.instrumented import InstrumentedStore

OpenStream = Callable[..., contextlib.AbstractAsyncContextManager[FakeClient]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.unit)


def unit_settings(**changes: object) -> Settings:
    return dataclasses.replace(
        Settings(secret=SECRET, publisher_keys=("key",)),
        **changes,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings() -> Settings:
    return unit_settings()


@dataclasses.dataclass
class Node:
    """One tidings node wired as `tidings serve` wires it, over the fake store and bus."""

    service: Service
    store: FakeStore
    bus: FakeBus

    async def publish(self, user: str, message: str) -> Stored:
        return await self.service.publish(Draft(user_ids=(user,), message=message))

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.service.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    # One clock for the store and the service, as `build_service` wires them.
    clock, metrics = Clock(), Metrics()
    store, bus = FakeStore(clock), FakeBus()
    service = Service(
        settings, InstrumentedStore(store, metrics), bus, clock=clock, metrics=metrics
    )
    async with service.running():
        yield Node(service, store, bus)


@pytest.fixture
def open_stream(node: Node) -> OpenStream:
    """`async with open_stream("ann") as client:` runs the stream endpoint for user ann."""

    @contextlib.asynccontextmanager
    async def open_(
        user: str | None = None,
        *,
        token: str | None = None,
        last_event_id: str | None = None,
        method: str = "GET",
    ) -> AsyncIterator[FakeClient]:
        headers: list[tuple[bytes, bytes]] = []
        if token is None and user is not None:
            token = make_token(user)
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        if last_event_id is not None:
            headers.append((b"last-event-id", last_event_id.encode()))
        client = FakeClient(headers=headers, method=method)
        # Through the application's raw-route dispatch, as a server runs it: the method check
        # and the error answers live there, not in the endpoint.
        app = create_app(node.service.settings, node.service)
        task = asyncio.create_task(app(client.scope(), client.receive, client.send))
        task.add_done_callback(lambda _: client.wake())
        # The stream has answered (status sent) before the test publishes anything.
        await client.wait_until(lambda: client.status is not None or task.done())
        try:
            yield client
        finally:
            client.hang_up()
            async with asyncio.timeout(2):
                await task

    return open_
