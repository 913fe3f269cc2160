"""`tidings.client` against a real tidings server, and through a real flaky hop for retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.flaky import FlakyProxy, body_of
from tests.support import PUBLISHER_KEY, SECRET, Server, make_token, open_stream, serving
from tidings.client import AsyncClient, Client, TidingsError, mint_token

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("client")) as started:
        yield started


async def test_publish_returns_what_the_open_stream_receives(server: Server) -> None:
    user = "client-live"
    async with open_stream(server.url, make_token(user)) as stream:
        assert stream.status == 200
        with Client(server.url, PUBLISHER_KEY) as tidings:
            stored = await asyncio.to_thread(
                tidings.publish,
                user,
                "Invoice #7 was paid",
                link="https://app.example/invoices/7",
                kind="invoice.paid",
                data={"invoice": 7},
            )
        [got] = await stream.notifications(1)
    assert got == stored
    assert stored["id"] == 1
    assert stored["user_id"] == user
    assert stored["link"] == "https://app.example/invoices/7"
    assert stored["kind"] == "invoice.paid"
    assert stored["data"] == {"invoice": 7}


def test_publish_many_stores_one_per_user_and_a_trailing_slash_works(server: Server) -> None:
    with Client(server.url + "/", PUBLISHER_KEY) as tidings:
        stored = tidings.publish_many(["client-many-a", 42], "Maintenance at 22:00")
    assert [(n["user_id"], n["message"]) for n in stored] == [
        ("client-many-a", "Maintenance at 22:00"),
        ("42", "Maintenance at 22:00"),
    ]
    assert [n["message"] for n in server.listed("client-many-a")] == ["Maintenance at 22:00"]


def test_an_idempotency_key_given_twice_stores_once(server: Server) -> None:
    with Client(server.url, PUBLISHER_KEY) as tidings:
        first = tidings.publish("client-idem", "once", idempotency_key="invoice-7-paid")
        again = tidings.publish("client-idem", "once", idempotency_key="invoice-7-paid")
    assert first == again
    assert len(server.listed("client-idem")) == 1


async def test_a_token_from_the_server_opens_the_stream(server: Server) -> None:
    async with AsyncClient(server.url, PUBLISHER_KEY) as tidings:
        token = await tidings.token("client-token", ttl=120)
        async with open_stream(server.url, token) as stream:
            assert stream.status == 200
            stored = await tidings.publish("client-token", "hello", kind="greeting")
            many = await tidings.publish_many(["client-token"], "again")
            got = await stream.notifications(2)
    assert got == [stored, *many]


async def test_a_locally_minted_token_opens_the_stream(server: Server) -> None:
    async with open_stream(server.url, mint_token(SECRET, 77)) as stream:
        assert stream.status == 200
        with Client(server.url, PUBLISHER_KEY) as tidings:
            stored = await asyncio.to_thread(tidings.publish, 77, "for seventy-seven")
        assert await stream.notifications(1) == [stored]


async def test_the_inbox_fields_are_sent_and_come_back(server: Server) -> None:
    async with open_stream(server.url, mint_token(SECRET, "client-inbox")) as stream:
        with Client(server.url, PUBLISHER_KEY) as tidings:
            stored = await asyncio.to_thread(
                tidings.publish,
                "client-inbox",
                "Ada commented",
                category="mentions",
                actor={"name": "Ada", "avatar_url": "/ada.png"},
                actions=[{"label": "Reply", "url": "/reply"}],
                group="thread-1",
                expires_at=datetime(2030, 1, 1, tzinfo=UTC),
            )
        assert await stream.notifications(1) == [stored]
    assert stored["category"] == "mentions"
    assert stored["actor"] == {"name": "Ada", "avatar_url": "/ada.png"}
    assert stored["actions"] == [{"label": "Reply", "url": "/reply"}]
    assert stored["group"] == "thread-1"
    assert stored["expires_at"] == "2030-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("key", "fields", "status", "error", "field"),
    [
        (PUBLISHER_KEY, {"link": "javascript:alert(1)"}, 422, "invalid_notification", "link"),
        ("wrong-key", {}, 403, "forbidden", None),
        # Further ahead than TIDINGS_MAX_SCHEDULE_DAYS (30).
        (
            PUBLISHER_KEY,
            {"deliver_at": "2099-01-01T00:00:00Z"},
            422,
            "invalid_notification",
            "deliver_at",
        ),
    ],
)
def test_a_refusal_raises_tidings_error_with_the_servers_answer(
    server: Server,
    key: str,
    fields: dict[str, str],
    status: int,
    error: str | None,
    field: str | None,
) -> None:
    with Client(server.url, key) as tidings, pytest.raises(TidingsError) as info:
        tidings.publish("client-refused", "hi", **fields)  # type: ignore[arg-type]
    assert info.value.status == status
    if error is not None:
        assert info.value.error == error
    if field is not None:
        assert field in json.dumps(info.value.detail)
    assert server.listed("client-refused") == []


def test_fields_left_out_are_not_sent(server: Server) -> None:
    with FlakyProxy(server.port, ["pass"]) as proxy, Client(proxy.url, PUBLISHER_KEY) as tidings:
        tidings.publish("client-absent", "plain")
    sent = json.loads(body_of(proxy.requests[0]))
    assert set(sent) == {"user_id", "message", "idempotency_key"}


def test_a_naive_time_is_refused_before_sending(server: Server) -> None:
    with Client(server.url, PUBLISHER_KEY) as tidings, pytest.raises(ValueError, match="aware"):
        tidings.publish("client-naive", "later", deliver_at=datetime.now() + timedelta(hours=1))
    assert server.listed("client-naive") == []


def test_a_scheduled_publish_returns_what_was_scheduled_and_can_be_cancelled(
    server: Server,
) -> None:
    aware = datetime.now(UTC) + timedelta(hours=1)
    with Client(server.url, PUBLISHER_KEY) as tidings:
        scheduled = tidings.publish("client-later", "later", deliver_at=aware)
        many = tidings.publish_many(["client-later", "client-later-2"], "both", deliver_at=aware)
        assert set(scheduled) == {"idempotency_key", "deliver_at", "user_ids"}
        assert scheduled["user_ids"] == ["client-later"]
        assert scheduled["deliver_at"] == aware.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )
        assert many["user_ids"] == ["client-later", "client-later-2"]
        # A made-up key, since none was given: the handle to cancel it.
        assert tidings.cancel_scheduled(scheduled["idempotency_key"]) is True
        assert tidings.cancel_scheduled(scheduled["idempotency_key"]) is False
        assert tidings.cancel_scheduled("never/scheduled key") is False
        assert tidings.cancel_scheduled(many["idempotency_key"]) is True
    assert server.listed("client-later") == []


async def test_the_async_client_schedules_and_cancels(server: Server) -> None:
    aware = datetime.now(UTC) + timedelta(hours=1)
    async with AsyncClient(server.url, PUBLISHER_KEY) as tidings:
        scheduled = await tidings.publish(
            "client-later-async", "later", deliver_at=aware, idempotency_key="a key/with?odd#chars"
        )
        assert scheduled["idempotency_key"] == "a key/with?odd#chars"
        assert await tidings.cancel_scheduled("a key/with?odd#chars") is True
        assert await tidings.cancel_scheduled("a key/with?odd#chars") is False
        with pytest.raises(TidingsError) as info:
            await tidings.cancel_scheduled("x" * 201)
        assert info.value.status == 422


@pytest.mark.parametrize("failure", ["drop", "503"])
def test_a_failed_attempt_is_retried_with_the_same_key_and_stored_once(
    server: Server, failure: str
) -> None:
    user = f"client-retry-{failure}"
    with (
        FlakyProxy(server.port, [failure]) as proxy,
        Client(proxy.url, PUBLISHER_KEY, backoff=0.01) as tidings,
    ):
        stored = tidings.publish(user, "paid")
    assert proxy.connections == 2
    keys = [json.loads(body_of(r))["idempotency_key"] for r in proxy.requests]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert server.listed(user) == [stored]


async def test_the_async_client_retries_a_dropped_answer_and_stores_once(server: Server) -> None:
    user = "client-retry-async"
    with FlakyProxy(server.port, ["drop", "503"]) as proxy:
        async with AsyncClient(proxy.url, PUBLISHER_KEY, backoff=0.01) as tidings:
            stored = await tidings.publish(user, "paid", idempotency_key="async-paid")
    assert proxy.connections == 3
    assert [json.loads(body_of(r))["idempotency_key"] for r in proxy.requests] == ["async-paid"] * 3
    assert await asyncio.to_thread(server.listed, user) == [stored]


def test_retries_are_bounded_and_end_in_tidings_error(server: Server) -> None:
    with (
        FlakyProxy(server.port, ["503"] * 10) as proxy,
        Client(proxy.url, PUBLISHER_KEY, retries=2, backoff=0.01) as tidings,
        pytest.raises(TidingsError) as info,
    ):
        tidings.publish("client-bounded", "never")
    assert (info.value.status, info.value.error) == (503, "store_unavailable")
    assert proxy.connections == 3


def test_an_unreachable_server_is_a_network_error_after_the_retries() -> None:
    from tests.support import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with (
        Client(url, PUBLISHER_KEY, retries=1, backoff=0.01) as tidings,
        pytest.raises(TidingsError) as info,
    ):
        tidings.publish("u", "hi")
    assert info.value.status is None
    assert info.value.error == "network_error"
