"""The stream's guarantees as a user sees them: delivery, resume, reset, read state, limits."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import (
    PUBLISHER_KEY,
    Server,
    Stream,
    make_token,
    open_stream,
    publish_sentinel,
    serving,
)
from tidings.clock import Clock, now_ms
from tidings.models import Draft
from tidings.store import create_store

pytestmark = pytest.mark.anyio

_serial = itertools.count(1)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that need no settings of their own (a start costs seconds).

    Each test uses users of its own (the `alice` and `bob` fixtures), so they do not meet.
    """
    env = {"TIDINGS_HEARTBEAT": "0.5", "TIDINGS_MAX_STREAMS_PER_USER": "2"}
    with serving(tmp_path_factory.mktemp("stream"), env) as server:
        yield server


@pytest.fixture
def alice() -> str:
    return f"alice-{next(_serial)}"


@pytest.fixture
def bob() -> str:
    return f"bob-{next(_serial)}"


async def publish(server: Server, user: str, count: int, prefix: str = "n") -> list[int]:
    """Publish `count` notifications to `user` one after another; return their seqs."""
    seqs: list[int] = []
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {PUBLISHER_KEY}"}, timeout=10
    ) as client:
        for i in range(count):
            response = await client.post(
                "/api/notifications", json={"user_id": user, "message": f"{prefix}{i}"}
            )
            assert response.status_code == 201, response.text
            seqs.append(response.json()["id"])
    return seqs


def user_api(server: Server, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {make_token(user)}"}, timeout=10
    )


async def seqs_of(stream: Stream, count: int, timeout: float = 10.0) -> list[int]:
    return [n["id"] for n in await stream.notifications(count, timeout)]


# --- 1. delivery to every stream of the user, and to no one else -------------------------------


async def test_each_notification_reaches_every_stream_of_its_user_only(
    shared: Server, alice: str, bob: str
) -> None:
    async with (
        open_stream(shared.url, make_token(alice)) as a1,
        open_stream(shared.url, make_token(alice)) as a2,
        open_stream(shared.url, make_token(bob)) as b,
    ):
        await publish(shared, alice, 3, prefix="for alice ")
        await publish(shared, bob, 1, prefix="for bob ")
        for stream in (a1, a2):
            got = await stream.notifications(3)
            assert [n["id"] for n in got] == [1, 2, 3]
            assert {n["user_id"] for n in got} == {alice}
            assert [n["message"] for n in got] == ["for alice 0", "for alice 1", "for alice 2"]
        [bobs] = await b.notifications(1)
        assert (bobs["user_id"], bobs["id"], bobs["message"]) == (bob, 1, "for bob 0")
        await publish_sentinel(shared, alice, a1, a2)
        await publish_sentinel(shared, bob, b)


async def test_the_stream_starts_with_retry_and_sse_headers(shared: Server, alice: str) -> None:
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "GET",
            f"{shared.url}/notifications/stream",
            headers={"authorization": f"Bearer {make_token(alice)}"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in response.headers
        first = await anext(response.aiter_lines())
        assert first.startswith("retry: ")


# --- 2. resume with Last-Event-ID (header or query) -------------------------------------------


@pytest.mark.parametrize("how", ["header", "query"])
async def test_resume_replays_exactly_what_follows_then_continues_live(
    shared: Server, alice: str, how: str
) -> None:
    await publish(shared, alice, 5)
    resume: dict[str, Any] = (
        {"last_event_id": "2"} if how == "header" else {"query": "?last_event_id=2"}
    )
    async with open_stream(shared.url, make_token(alice), **resume) as stream:
        assert await seqs_of(stream, 3) == [3, 4, 5]
        await publish(shared, alice, 2)
        assert await seqs_of(stream, 2) == [6, 7]
        await publish_sentinel(shared, alice, stream)


async def test_the_header_wins_over_the_query_parameter(shared: Server, alice: str) -> None:
    await publish(shared, alice, 4)
    async with open_stream(
        shared.url, make_token(alice), last_event_id="3", query="?last_event_id=1"
    ) as stream:
        assert await seqs_of(stream, 1) == [4]
        await publish_sentinel(shared, alice, stream)


async def test_no_resume_point_means_now(shared: Server, alice: str) -> None:
    await publish(shared, alice, 3)
    async with open_stream(shared.url, make_token(alice)) as stream:
        await publish(shared, alice, 1)
        # A replay of 1-3 would come first: the new notification is the sentinel.
        assert await seqs_of(stream, 1) == [4]


async def test_no_duplicate_and_no_gap_at_the_seam_while_publishing(
    shared: Server, alice: str
) -> None:
    """Reconnects land in the middle of a burst: each sees exactly the seqs after its point."""
    total = 120
    token = make_token(alice)
    publisher = asyncio.create_task(publish(shared, alice, total))
    try:
        seen: list[int] = []
        while len(seen) < total:
            # Read a few, then reconnect from the last one seen, as a browser would.
            resume = str(seen[-1]) if seen else "0"
            async with open_stream(shared.url, token, last_event_id=resume) as stream:
                seen += await seqs_of(stream, min(17, total - len(seen)), timeout=20)
        assert seen == list(range(1, total + 1))
    finally:
        await publisher


# --- 5. reset: pruned, beyond the replay cap, garbage --------------------------------------------


async def next_reset(stream: Stream) -> tuple[str, dict[str, Any]]:
    event = await stream.next()
    assert event.event == "reset", event
    return event.id, event.json()


@pytest.mark.parametrize("garbage", ["abc", "-1", "1.5", "99999999999999999999", " ", "٣"])
async def test_a_garbage_resume_point_gets_reset_and_then_live(
    shared: Server, alice: str, garbage: str
) -> None:
    await publish(shared, alice, 2)
    async with open_stream(
        shared.url, make_token(alice), query=f"?last_event_id={garbage}"
    ) as stream:
        assert stream.status == 200
        assert await next_reset(stream) == ("2", {"last_seq": 2, "reason": "invalid"})
        await publish(shared, alice, 1)
        assert await seqs_of(stream, 1) == [3]


async def test_a_garbage_header_gets_reset(shared: Server, alice: str) -> None:
    async with open_stream(shared.url, make_token(alice), last_event_id="seven") as stream:
        assert stream.status == 200
        assert await next_reset(stream) == ("0", {"last_seq": 0, "reason": "invalid"})


async def test_a_resume_point_from_the_future_gets_reset(shared: Server, alice: str) -> None:
    await publish(shared, alice, 2)
    async with open_stream(shared.url, make_token(alice), last_event_id="9") as stream:
        assert await next_reset(stream) == ("2", {"last_seq": 2, "reason": "future"})


@pytest.mark.slow
async def test_reset_beyond_the_replay_cap(make_server: ServerFactory, alice: str) -> None:
    server = make_server(replay_max="5")
    await publish(server, alice, 10)
    token = make_token(alice)
    async with open_stream(server.url, token, last_event_id="4") as stream:
        assert await next_reset(stream) == ("10", {"last_seq": 10, "reason": "too_far"})
        # After a reset the stream continues live from the newest seq.
        await publish(server, alice, 1)
        assert await seqs_of(stream, 1) == [11]
    async with open_stream(server.url, token, last_event_id="6") as stream:
        assert await seqs_of(stream, 5) == [7, 8, 9, 10, 11]
        await read_sentinel(server, alice, stream, 7)


@pytest.mark.slow
async def test_reset_for_a_point_pruned_at_start_up(
    make_server: ServerFactory, database_url: str, alice: str, bob: str
) -> None:
    # Alice's first eight notifications were stored long ago (a store whose clock says 1970),
    # the rest now; the server prunes the old ones as it starts.
    clock = Clock(0)
    store = create_store(database_url, clock=clock)
    await store.open()
    try:
        for i in range(11):
            if i == 8:
                clock.set(now_ms())
            await store.add(Draft(user_ids=(alice,), message=f"n{i}"))
        for i in range(2):
            await store.add(Draft(user_ids=(bob,), message=f"n{i}"))
    finally:
        await store.close()
    server = make_server()
    token = make_token(alice)
    async with user_api(server, alice) as api:
        deadline = time.monotonic() + 10
        while [n["id"] for n in (await api.get("/notifications")).json()] != [11, 10, 9]:
            assert time.monotonic() < deadline, "start-up pruning did not happen"
            await asyncio.sleep(0.1)
    for resume in ("0", "1", "7"):
        async with open_stream(server.url, token, last_event_id=resume) as stream:
            assert await next_reset(stream) == ("11", {"last_seq": 11, "reason": "pruned"})
    # From the newest pruned seq on, nothing is missing: replay as usual.
    async with open_stream(server.url, token, last_event_id="8") as stream:
        assert await seqs_of(stream, 3) == [9, 10, 11]
        await publish_sentinel(server, alice, stream)
    # Bob's log was not touched.
    async with open_stream(server.url, make_token(bob), last_event_id="0") as stream:
        assert await seqs_of(stream, 2) == [1, 2]


@pytest.mark.slow
async def test_periodic_pruning_with_a_short_retention(
    make_server: ServerFactory, alice: str
) -> None:
    # 0.5 s of retention, checked every 0.2 s: a resume point older than that is gone.
    server = make_server(retention_days=str(0.5 / 86400), prune_interval="0.2")
    await publish(server, alice, 3)
    token = make_token(alice)
    async with user_api(server, alice) as api:
        deadline = time.monotonic() + 10
        while (await api.get("/notifications")).json():
            assert time.monotonic() < deadline, "periodic pruning did not happen"
            await asyncio.sleep(0.1)
    async with open_stream(server.url, token, last_event_id="1") as stream:
        assert await next_reset(stream) == ("3", {"last_seq": 3, "reason": "pruned"})
        await publish(server, alice, 1)
        assert await seqs_of(stream, 1) == [4]
    # A resume at the newest seq lost nothing, so it is no reset.
    async with open_stream(server.url, token, last_event_id="4") as stream:
        await publish_sentinel(server, alice, stream)


# --- 6. read state, on every stream of the user ---------------------------------------------------


async def read_sentinel(server: Server, user: str, stream: Stream, seq: int) -> None:
    """Mark `seq` read and expect that as the stream's next event: a sentinel that leaves the
    user's log as it was (a notification would shift every seq after it)."""
    async with user_api(server, user) as api:
        response = await api.post("/notifications/read", json={"ids": [seq]})
    assert response.json()["ids"] == [seq], response.text
    assert (await next_read(stream))["ids"] == [seq]


async def next_read(stream: Stream) -> dict[str, Any]:
    event = await stream.next()
    assert event.event == "notifications-read", event
    body: dict[str, Any] = event.json()
    return body


async def test_mark_read_reaches_every_stream_and_respects_up_to(
    shared: Server, alice: str, bob: str
) -> None:
    await publish(shared, alice, 5)
    await publish(shared, bob, 2)
    async with (
        user_api(shared, alice) as api,
        user_api(shared, bob) as bob_api,
        open_stream(shared.url, make_token(alice)) as a1,
        open_stream(shared.url, make_token(alice)) as a2,
        open_stream(shared.url, make_token(bob)) as b,
    ):
        response = await api.post("/notifications/read", json={"ids": [1, 2, 99]})
        assert response.status_code == 200, response.text
        assert response.json() == {"unread": 3, "ids": [1, 2]}
        for stream in (a1, a2):
            assert await next_read(stream) == {"unread": 3, "ids": [1, 2]}

        # A notification arrives after the client last looked: "mark all read" up to 5 must
        # leave it unread.
        await publish(shared, alice, 1)
        for stream in (a1, a2):
            assert await seqs_of(stream, 1) == [6]
        response = await api.post("/notifications/read", json={"up_to": 5})
        assert response.json() == {"unread": 1, "up_to": 5}
        for stream in (a1, a2):
            assert await next_read(stream) == {"unread": 1, "up_to": 5}
        unread = (await api.get("/notifications", params={"unread": 1})).json()
        assert [n["id"] for n in unread] == [6]
        count = (await api.get("/notifications/unread-count")).json()
        assert count == {"unread": 1, "unseen": 6, "last_seq": 6, "categories": {}}

        # Bob names seqs only alice has: nothing of alice's changes, no stream hears of it.
        response = await bob_api.post("/notifications/read", json={"ids": [3, 4, 5, 6]})
        assert response.json() == {"unread": 2, "ids": []}
        count = (await api.get("/notifications/unread-count")).json()
        assert count == {"unread": 1, "unseen": 6, "last_seq": 6, "categories": {}}

        # Bob marking his own reaches only bob. It is b's sentinel for the step above (had b
        # heard of bob's first call, that would come first); alice's sentinel covers both steps.
        response = await bob_api.post("/notifications/read", json={"up_to": 1})
        assert response.json() == {"unread": 1, "up_to": 1}
        assert await next_read(b) == {"unread": 1, "up_to": 1}
        await publish_sentinel(shared, alice, a1, a2)


async def test_a_deletion_reaches_every_stream_of_the_user(
    shared: Server, alice: str, bob: str
) -> None:
    await publish(shared, alice, 2)
    async with (
        user_api(shared, alice) as api,
        user_api(shared, bob) as bob_api,
        open_stream(shared.url, make_token(alice)) as a1,
        open_stream(shared.url, make_token(alice)) as a2,
    ):
        assert (await bob_api.delete("/notifications/1")).status_code == 404
        assert (await api.delete("/notifications/1")).status_code == 204
        for stream in (a1, a2):
            event = await stream.next()
            assert event.event == "notification-deleted"
            assert event.json() == {"id": 1, "unread": 1}
        await publish_sentinel(shared, alice, a1, a2)


# --- 9. an idle stream costs no query, and gets its ping ----------------------------------------


async def test_an_idle_stream_makes_no_store_query_and_gets_a_ping_every_heartbeat(
    shared: Server, alice: str
) -> None:
    # The shared server beats every 0.5 s.
    async with open_stream(shared.url, make_token(alice), last_event_id="0") as stream:
        first = await stream.next(5, skip_pings=False)
        assert first.event == "ping"
        queries = store_queries(shared)
        began = time.monotonic()
        # Five more heartbeats, each well within its time (2.5 s: a loaded machine is slow) and
        # nothing else in between.
        for _ in range(5):
            event = await stream.next(2.5, skip_pings=False)
            assert event.event == "ping", event
            assert event.json() == {"heartbeat": 0.5}  # announced for the client's watchdog
        # One ping per heartbeat, not more: five intervals of 0.5 s each (less some delivery
        # jitter); two pings a beat would take half that.
        assert time.monotonic() - began >= 2.0
        assert store_queries(shared) == queries


def store_queries(server: Server) -> dict[str, float]:
    """The store queries by operation, from one scrape of /metrics (two scrapes, one for the
    total and one for an operation, let a query fall between them), less the node's own sweep
    for scheduled rows a dead node delivered: one indexed query per TIDINGS_SCHEDULER_SWEEP
    while it holds streams, however many, which is not a stream's."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    found = re.findall(r'^tidings_store_queries_total\{op="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {op: float(value) for op, value in found if op != "delivered_between"}


# --- 10. credentials: expiry, none, too many streams ---------------------------------------------


async def test_the_stream_ends_when_its_token_expires(shared: Server, alice: str) -> None:
    expired_before = shared.metric("tidings_stream_disconnects_total", 'reason="expired"')
    began = time.monotonic()
    async with open_stream(shared.url, make_token(alice, ttl=2)) as stream:
        assert stream.status == 200
        await asyncio.wait_for(stream.ended.wait(), 10)
        # The token's exp is a whole second 1-2 s ahead: the end comes then, not at once.
        assert 0.5 < time.monotonic() - began < 8
    deadline = time.monotonic() + 5
    while shared.metric("tidings_stream_disconnects_total", 'reason="expired"') == expired_before:
        assert time.monotonic() < deadline, "the end was not counted as an expiry"
        await asyncio.sleep(0.1)


async def test_an_expired_token_within_the_decoding_leeway_ends_at_once(
    shared: Server, alice: str
) -> None:
    async with open_stream(shared.url, make_token(alice, ttl=-2)) as stream:
        await asyncio.wait_for(stream.ended.wait(), 5)
        assert stream.status in (200, 401)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer not-a-jwt"},
        {"authorization": f"Bearer {make_token('alice', secret='another-secret' * 4)}"},
        {"authorization": f"Bearer {make_token('alice', ttl=-60)}"},
        {"authorization": "Basic YWxpY2U6eA=="},
    ],
)
async def test_no_valid_credential_is_401_json(shared: Server, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{shared.url}/notifications/stream", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"error", "detail"}


async def test_a_query_token_is_refused_by_default(shared: Server, alice: str) -> None:
    async with open_stream(shared.url, None, query=f"?token={make_token(alice)}") as stream:
        assert stream.status == 401


async def test_streams_past_the_per_user_cap_get_429(shared: Server, alice: str, bob: str) -> None:
    # The shared server allows two streams per user.
    token = make_token(alice)
    async with open_stream(shared.url, token) as a1, open_stream(shared.url, token) as a2:
        assert (a1.status, a2.status) == (200, 200)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(
                f"{shared.url}/notifications/stream", headers={"authorization": f"Bearer {token}"}
            )
        assert response.status_code == 429
        assert response.json()["error"] == "too_many_streams"
        async with open_stream(shared.url, make_token(bob)) as b:
            assert b.status == 200
        # The refused request left the two streams working.
        await publish(shared, alice, 1)
        for stream in (a1, a2):
            assert await seqs_of(stream, 1) == [1]
    # Once the client has gone, its place is free again.
    deadline = time.monotonic() + 10
    while True:
        async with open_stream(shared.url, token) as a3, open_stream(shared.url, token) as a4:
            if (a3.status, a4.status) == (200, 200):
                break
        assert time.monotonic() < deadline, "closed streams kept their places"
        await asyncio.sleep(0.2)
