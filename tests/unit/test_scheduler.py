"""The scheduler's two loops in-process, over the fake store and bus: a node learns of what
another node scheduled from the bus's hint, and the expiry sweep tells only this node's streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from tests.unit.conftest import Node, OpenStream, unit_settings
from tidings.clock import now_ms
from tidings.events import ScheduleHint, Unsnoozed
from tidings.models import Draft, Due, Stored
from tidings.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings() -> Settings:
    return unit_settings(scheduler_interval=0.01)


async def test_a_hint_from_the_bus_wakes_this_node_to_deliver_what_another_scheduled(
    node: Node, open_stream: OpenStream
) -> None:
    async with open_stream("ann") as ann:
        # Scheduled through the store alone, as another node does: this node's scheduler has
        # looked at start, found nothing, and sleeps until it hears of something.
        due = now_ms() + 200
        await node.store.schedule(Draft(user_ids=("ann",), message="later", deliver_ms=due), "k")
        node.bus.send(ScheduleHint(due))
        await ann.wait_until(lambda: bool(ann.notifications()), timeout=5)
        [later] = ann.notifications()
    assert (later["id"], later["message"]) == (1, "later")
    assert now_ms() >= due
    assert node.metric("tidings_scheduled_delivered_total") == 1


async def test_the_expiry_sweep_tells_only_the_users_with_a_stream_here(
    node: Node, open_stream: OpenStream
) -> None:
    expires = now_ms() + 3_600_000
    for user in ("ann", "bob"):
        await node.service.publish(
            Draft(user_ids=(user,), message="short-lived", expires_ms=expires)
        )
        await node.service.publish(Draft(user_ids=(user,), message="stays"))
    async with open_stream("ann", last_event_id="2") as ann:
        # The window that holds the expiry, swept now rather than waited for.
        sent = await node.service.scheduler.expire(expires - 1, expires)
        await ann.wait_until(lambda: any(e.event == "notifications-expired" for e in ann.events()))
        [event] = [e for e in ann.events() if e.event == "notifications-expired"]
        # A window it is not in sends nothing.
        assert await node.service.scheduler.expire(expires, expires + 1000) == 0
    assert sent == 1  # ann only: bob has no stream on this node
    assert json.loads(event.data)["ids"] == [1]
    assert node.metric("tidings_expired_events_total") == 1


async def test_a_snooze_hint_from_the_bus_wakes_it_here_once_unread_and_unseen(
    node: Node, open_stream: OpenStream
) -> None:
    await node.service.publish(Draft(user_ids=("ann",), message="later, please"))
    await node.store.mark_read("ann", ids=[1])
    async with open_stream("ann", last_event_id="1") as ann:
        # Snoozed through the store alone, as another node does; the hint wakes this loop.
        due = now_ms() + 200
        assert await node.store.snooze("ann", [1], due) == [1]
        node.bus.send(ScheduleHint(due))
        await ann.wait_until(
            lambda: any(e.event == "notifications-unsnoozed" for e in ann.events()), timeout=5
        )
        # A second look finds nothing more to wake.
        assert await node.service.scheduler.wake_snoozed() is None
    [event] = [e for e in ann.events() if e.event == "notifications-unsnoozed"]
    body = json.loads(event.data)
    assert [(n["id"], n["read_at"], n["snoozed_until"]) for n in body["notifications"]] == [
        (1, None, None)
    ]
    assert (body["unread"], body["unseen"]) == (1, 1)
    assert now_ms() >= due


async def test_a_wake_up_the_bus_carried_without_bodies_is_read_from_the_store(
    node: Node, open_stream: OpenStream
) -> None:
    # As from a node whose bus (PostgreSQL NOTIFY) could not carry a large notification.
    await node.service.publish(Draft(user_ids=("ann",), message="big one", data={"k": "v"}))
    async with open_stream("ann", last_event_id="1") as ann:
        node.bus.send(Unsnoozed("ann", (), unread=1, unseen=1, missing=(1, 7)))
        await ann.wait_until(
            lambda: any(e.event == "notifications-unsnoozed" for e in ann.events()), timeout=5
        )
    [event] = [e for e in ann.events() if e.event == "notifications-unsnoozed"]
    body = json.loads(event.data)
    # Seq 7 is no notification of ann's: left out.
    assert [(n["id"], n["message"], n["data"]) for n in body["notifications"]] == [
        (1, "big one", {"k": "v"})
    ]
    assert (body["unread"], body["unseen"]) == (1, 1)


@pytest.mark.parametrize("settings", [unit_settings(scheduler_interval=0.01, scheduler_lease=0.6)])
async def test_a_node_delivering_for_longer_than_its_lease_renews_it(
    node: Node, open_stream: OpenStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store takes four leases to deliver the row: the node renews its lease meanwhile, so
    # another node looking again and again never claims the row; it arrives once.
    entered, done = asyncio.Event(), asyncio.Event()
    # The node's store as the scheduler holds it (the wrappers bind the inner one's methods).
    store = node.service.store
    deliver = store.deliver

    async def slow(rows: Sequence[Due]) -> list[Stored]:
        entered.set()
        await done.wait()
        return await deliver(rows)

    monkeypatch.setattr(store, "deliver", slow)
    async with open_stream("ann") as ann:
        due = now_ms() + 50
        await node.store.schedule(Draft(user_ids=("ann",), message="slow", deliver_ms=due), "k")
        node.bus.send(ScheduleHint(due))
        async with asyncio.timeout(5):
            await entered.wait()
        loop = asyncio.get_running_loop()
        until = loop.time() + 4 * 0.6
        while loop.time() < until:
            assert await node.store.claim_due(600, 10) == []
            await asyncio.sleep(0.05)
        done.set()
        await ann.wait_until(lambda: bool(ann.notifications()), timeout=5)
        assert [n["message"] for n in ann.notifications()] == ["slow"]
    assert node.metric("tidings_scheduled_delivered_total") == 1
