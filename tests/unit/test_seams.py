"""The seams of a node: the scheduler runs on the parts it is given (no `Service`), and every
background loop is `tidings.loops.forever`: a failed pass is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from tests.unit.conftest import unit_settings
from tests.unit.fakes import FakeStore
from tidings.clock import Clock
from tidings.events import Event, Expired, Published
from tidings.loops import forever
from tidings.metrics import Metrics
from tidings.models import Draft
from tidings.scheduler import Scheduler

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000_000


class Streams:
    """This node's streams as the scheduler sees them: who has one, and what they were told."""

    def __init__(self, *users: str) -> None:
        self.users = set(users)
        self.told: list[Event | Expired] = []

    def __len__(self) -> int:
        return len(self.users)

    def has(self, user_id: str) -> bool:
        return user_id in self.users

    def deliver(self, event: Event | Expired) -> None:
        self.told.append(event)


def scheduler_on(store: FakeStore, streams: Streams, announced: list[Event]) -> Scheduler:
    async def announce(events: Sequence[Event]) -> None:
        announced.extend(events)

    async def no_snoozes() -> int:
        return 0

    return Scheduler(
        unit_settings(),
        store,
        store.clock,
        Metrics(),
        announce=announce,
        streams=streams,
        wake_snoozed=no_snoozes,
    )


async def test_the_scheduler_delivers_and_expires_on_its_parts_alone() -> None:
    clock = Clock(T0)
    store, streams = FakeStore(clock), Streams("ann")
    announced: list[Event] = []
    scheduler = scheduler_on(store, streams, announced)
    await store.schedule(
        Draft(user_ids=("ann", "bob"), message="later", deliver_ms=T0 + 60_000), "k"
    )
    assert await scheduler.deliver_due() == 0  # not due yet
    clock.advance(60_000)
    assert await scheduler.deliver_due() == 2
    assert sorted((e.user_id, e.seq) for e in announced if isinstance(e, Published)) == [
        ("ann", 1),
        ("bob", 1),
    ]
    await store.add(Draft(user_ids=("ann", "bob"), message="brief", expires_ms=T0 + 90_000))
    # Only the users with a stream here hear of what expired, from this node's streams.
    assert await scheduler.expire(T0 + 60_000, T0 + 90_000) == 1
    assert streams.told == [Expired("ann", (2,), 2, 2)]


async def test_a_failed_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[str] = []
    retried = asyncio.Event()
    done = asyncio.Event()

    async def step() -> None:
        passes.append("pass")
        if len(passes) == 1:
            raise RuntimeError("the store is away")
        done.set()

    loop = asyncio.create_task(
        forever(
            step,
            pause=0,
            failure="the test pass failed; trying again",
            log=logging.getLogger("tidings.test"),
            failed=retried.set,
        )
    )
    async with asyncio.timeout(5):
        await done.wait()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert retried.is_set()
    assert len(passes) == 2
    [record] = [r for r in caplog.records if r.name == "tidings.test"]
    assert record.getMessage() == "the test pass failed; trying again"
    assert record.exc_info is not None
    assert "the store is away" in str(record.exc_info[1])


async def test_a_loop_can_wait_before_its_first_pass() -> None:
    passes: list[int] = []
    gate = asyncio.Event()
    passed = asyncio.Event()

    async def pause() -> None:
        await gate.wait()
        gate.clear()

    async def step() -> None:
        passes.append(1)
        passed.set()

    loop = asyncio.create_task(
        forever(step, pause=pause, pause_first=True, failure="x", log=logging.getLogger("t"))
    )
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert passes == []  # nothing before the first wait ends
    gate.set()
    async with asyncio.timeout(5):
        await passed.wait()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert passes == [1]
