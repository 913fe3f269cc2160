"""The stream endpoint in-process: order, no duplicates, gaps filled, resets, and how it ends.

`stream_endpoint` runs as in a server, over the fake store and bus, with the ASGI receive/send of
a `FakeClient`. Absence is proven with a sentinel: publish once more and wait for that.
"""

from __future__ import annotations

import json

import pytest

from tests.support import make_token
from tests.unit.conftest import Node, OpenStream, unit_settings
from tests.unit.fakes import FakeClient
from tidings import stream
from tidings.events import Published, Resync
from tidings.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings() -> Settings:
    """Small limits, so "too far behind", the per-user cap and a full queue are a few steps away."""
    return unit_settings(replay_max=2, max_streams_per_user=2, stream_queue=5)


def messages(client: FakeClient) -> list[str]:
    return [n["message"] for n in client.notifications()]


def ids(client: FakeClient) -> list[str | None]:
    return [e.id for e in client.events() if e.event == "new-notification"]


async def until_message(client: FakeClient, message: str) -> None:
    await client.wait_until(lambda: message in messages(client))


async def publish_sentinel(node: Node, client: FakeClient, user: str = "ann") -> None:
    """Publish one more notification and wait for it: whatever came before has arrived too."""
    await node.publish(user, "sentinel")
    await until_message(client, "sentinel")


def reset_of(client: FakeClient) -> dict[str, object]:
    [reset] = [e for e in client.events() if e.event == "reset"]
    body: dict[str, object] = json.loads(reset.data)
    assert reset.id == str(body["last_seq"])  # the browser resumes from there next time
    return body


# --- live ----------------------------------------------------------------------------------------


async def test_a_stream_starts_with_its_retry_and_sends_its_users_notifications_in_order(
    node: Node, open_stream: OpenStream, settings: Settings
) -> None:
    async with open_stream("ann") as client:
        assert client.status == 200
        assert client.response_headers[b"content-type"].startswith(b"text/event-stream")
        await node.publish("ann", "one")
        await node.publish("bob", "not for ann")
        await node.publish("ann", "two")
        await publish_sentinel(node, client)
    assert client.blocks()[0].retry == settings.retry_ms
    assert messages(client) == ["one", "two", "sentinel"]
    assert ids(client) == ["1", "2", "3"]
    assert node.metric("tidings_notifications_delivered_total") == 3


async def test_a_new_stream_without_a_resume_point_starts_from_now(
    node: Node, open_stream: OpenStream
) -> None:
    await node.publish("ann", "before")
    async with open_stream("ann") as client:
        await publish_sentinel(node, client)
    assert messages(client) == ["sentinel"]


async def test_read_and_delete_reach_the_stream(node: Node, open_stream: OpenStream) -> None:
    await node.publish("ann", "one")
    await node.publish("ann", "two")
    async with open_stream("ann") as client:
        await node.service.mark_read("ann", ids=[1])
        await node.service.delete("ann", 2)
        await publish_sentinel(node, client)
    events = [(e.event, json.loads(e.data)) for e in client.events()]
    assert events[:2] == [
        ("notifications-read", {"unread": 1, "ids": [1]}),
        ("notification-deleted", {"id": 2, "unread": 0}),
    ]


# --- ordering ------------------------------------------------------------------------------------


async def test_an_event_the_bus_delivers_twice_is_sent_once(
    node: Node, open_stream: OpenStream
) -> None:
    async with open_stream("ann") as client:
        [n] = (await node.publish("ann", "once")).notifications
        node.bus.send(Published("ann", n.seq, n))
        node.bus.send(Published("ann", n.seq))
        await publish_sentinel(node, client)
    assert messages(client) == ["once", "sentinel"]


async def test_an_announcement_that_overtakes_an_earlier_one_is_sent_after_it(
    node: Node, open_stream: OpenStream
) -> None:
    async with open_stream("ann") as client:
        node.bus.hold = True
        await node.publish("ann", "first")
        await node.publish("ann", "second")
        first, second = node.bus.held
        node.bus.release([second, first])
        await until_message(client, "second")
        node.bus.hold = False
        await publish_sentinel(node, client)
    assert messages(client) == ["first", "second", "sentinel"]
    assert ids(client) == ["1", "2", "3"]


async def test_an_announcement_without_the_notification_is_read_from_the_store(
    node: Node, open_stream: OpenStream
) -> None:
    async with open_stream("ann") as client:
        node.bus.hold = True
        await node.publish("ann", "too large for the bus")
        node.bus.release([Published("ann", 1)])
        await until_message(client, "too large for the bus")
    assert ids(client) == ["1"]


async def test_after_a_resync_the_stream_sends_what_the_bus_lost(
    node: Node, open_stream: OpenStream
) -> None:
    async with open_stream("ann") as client:
        node.bus.hold = True
        await node.publish("ann", "lost one")
        await node.publish("ann", "lost two")
        node.bus.held.clear()  # the bus dropped them
        node.bus.send(Resync())
        await until_message(client, "lost two")
        node.bus.hold = False
        await publish_sentinel(node, client)
    assert messages(client) == ["lost one", "lost two", "sentinel"]


async def test_a_stream_keeps_going_while_the_store_is_away_and_catches_up_after(
    node: Node, open_stream: OpenStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "CATCH_UP_RETRY_MIN", 0.01)
    monkeypatch.setattr(stream, "CATCH_UP_RETRY_MAX", 0.02)
    async with open_stream("ann") as client:
        node.bus.hold = True
        await node.publish("ann", "stored while the bus was quiet")
        node.store.down = True
        node.bus.send(Resync())
        await node.store.failed.wait()
        node.store.down = False
        await until_message(client, "stored while the bus was quiet")
        assert not client.finished


# --- resuming ------------------------------------------------------------------------------------


async def test_a_stream_resumes_after_its_last_event_id(
    node: Node, open_stream: OpenStream
) -> None:
    for message in ("one", "two", "three"):
        await node.publish("ann", message)
    async with open_stream("ann", last_event_id="1") as client:
        await publish_sentinel(node, client)
    assert messages(client) == ["two", "three", "sentinel"]
    assert not [e for e in client.events() if e.event == "reset"]


async def test_resuming_exactly_at_the_pruned_point_replays_what_is_left(
    node: Node, open_stream: OpenStream
) -> None:
    for message in ("one", "two", "three"):
        await node.publish("ann", message)
    node.store.forget("ann", up_to=1)
    async with open_stream("ann", last_event_id="1") as client:
        await publish_sentinel(node, client)
    assert messages(client) == ["two", "three", "sentinel"]


@pytest.mark.parametrize(
    ("last_event_id", "reason"),
    [
        ("abc", "invalid"),
        ("-1", "invalid"),
        ("1.0", "invalid"),
        ("\uff11", "invalid"),  # a full-width digit: isdigit() says yes, int() would accept it
        ("9" * 19, "invalid"),
        ("6", "future"),
        ("1", "pruned"),
        ("2", "too_far"),
    ],
)
async def test_a_resume_point_that_cannot_be_honoured_is_a_reset_to_now(
    last_event_id: str, reason: str, settings: Settings, node: Node, open_stream: OpenStream
) -> None:
    # Five stored, the first two pruned, at most two replayed: only 3, 4 and 5 resume.
    assert settings.replay_max == 2
    for i in range(5):
        await node.publish("ann", f"n{i + 1}")
    node.store.forget("ann", up_to=2)
    async with open_stream("ann", last_event_id=last_event_id) as client:
        await publish_sentinel(node, client)
    assert reset_of(client) == {"last_seq": 5, "reason": reason}
    assert messages(client) == ["sentinel"]
    assert node.metric("tidings_stream_resets_total", {"reason": reason}) == 1


async def test_a_live_stream_too_far_behind_after_a_resync_is_reset(
    node: Node, open_stream: OpenStream
) -> None:
    async with open_stream("ann") as client:
        node.bus.hold = True
        for message in ("a", "b", "c"):
            await node.publish("ann", message)
        node.bus.held.clear()
        node.bus.send(Resync())
        await client.wait_until(lambda: any(e.event == "reset" for e in client.events()))
        node.bus.hold = False
        await publish_sentinel(node, client)
    assert reset_of(client) == {"last_seq": 3, "reason": "too_far"}
    assert messages(client) == ["sentinel"]
    assert ids(client) == ["4"]


# --- refusals and endings ------------------------------------------------------------------------


async def test_no_token_is_a_401_in_the_error_shape(node: Node, open_stream: OpenStream) -> None:
    async with open_stream() as client:
        pass
    assert client.status == 401
    assert json.loads(client.body)["error"] == "unauthorized"
    assert node.metric("tidings_streams_refused_total", {"reason": "unauthorized"}) == 1


async def test_an_expired_token_is_refused(open_stream: OpenStream) -> None:
    async with open_stream(token=make_token("ann", ttl=-60)) as client:
        pass
    assert client.status == 401
    assert json.loads(client.body)["error"] == "token_expired"


async def test_only_get_is_allowed(open_stream: OpenStream) -> None:
    async with open_stream("ann", method="POST") as client:
        pass
    assert client.status == 405
    assert client.response_headers[b"allow"] == b"GET"


async def test_a_stream_is_refused_while_the_store_is_away(
    node: Node, open_stream: OpenStream
) -> None:
    node.store.down = True
    async with open_stream("ann") as client:
        await client.wait_until(lambda: client.finished)
    assert client.status == 503
    assert json.loads(client.body)["error"] == "store_unavailable"
    assert client.response_headers[b"retry-after"] == b"2"


async def test_the_streams_per_user_cap_answers_429(
    node: Node, open_stream: OpenStream, settings: Settings
) -> None:
    async with open_stream("ann") as first, open_stream("ann") as second:
        assert first.status == 200
        assert second.status == 200
        async with open_stream("ann") as third, open_stream("bob") as other:
            assert third.status == 429
            assert json.loads(third.body)["error"] == "too_many_streams"
            assert other.status == 200
    assert settings.max_streams_per_user == 2


async def test_a_draining_node_ends_its_streams_with_a_retry(
    node: Node, open_stream: OpenStream, settings: Settings
) -> None:
    async with open_stream("ann") as client:
        await publish_sentinel(node, client)
        node.service.hub.drain()
        await client.wait_until(lambda: client.finished)
        async with open_stream("bob") as late:
            await late.wait_until(lambda: late.finished)
    for ended in (client, late):
        retry = ended.blocks()[-1].retry
        assert retry is not None
        assert 500 <= retry <= settings.drain_retry_max_ms
    assert node.metric("tidings_stream_disconnects_total", {"reason": "drain"}) == 1
    assert node.metric("tidings_streams_refused_total", {"reason": "draining"}) == 1


async def test_a_stream_ends_when_its_token_expires(node: Node, open_stream: OpenStream) -> None:
    # Within the 5 s leeway the token is accepted, and its expiry is already past.
    async with open_stream(token=make_token("ann", ttl=-1)) as client:
        await client.wait_until(lambda: client.finished)
    assert client.status == 200
    assert node.metric("tidings_stream_disconnects_total", {"reason": "expired"}) == 1


async def test_a_client_that_stops_reading_is_cut_off_as_slow(
    node: Node, open_stream: OpenStream, settings: Settings
) -> None:
    async with open_stream("ann") as client:
        await publish_sentinel(node, client)
        client.stop_reading()
        for i in range(settings.stream_queue + 2):
            await node.publish("ann", f"unread {i}")
        await client.wait_until(
            lambda: node.metric("tidings_stream_disconnects_total", {"reason": "slow"}) == 1
        )
    assert len(node.service.hub) == 0


async def test_a_client_that_hangs_up_is_counted(node: Node, open_stream: OpenStream) -> None:
    async with open_stream("ann") as client:
        await publish_sentinel(node, client)
    assert node.metric("tidings_stream_disconnects_total", {"reason": "client"}) == 1
    assert len(node.service.hub) == 0
