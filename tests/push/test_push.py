"""Web Push end to end: a real server pushes to a stand-in push service, which checks VAPID and
decrypts; the cases of issue 11 where a push must go out once, or not at all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.push.helpers import (
    GRACE,
    PUBLIC_KEY,
    PUSH_ENV,
    skipped,
    subscribe,
    user_post,
    wait_skipped,
)
from tests.push.standin import check_shapes, standin
from tests.support import HTTP, Server, make_token, open_stream, serving

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("push"), PUSH_ENV) as started:
        yield started


def _published(server: Server, user: str, message: str, **fields: object) -> dict[str, object]:
    response = server.publish(user, message, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def publish(server: Server, user: str, message: str, **fields: object) -> dict[str, object]:
    return await asyncio.to_thread(_published, server, user, message, **fields)


async def test_no_stream_gets_exactly_one_push_after_the_grace(server: Server) -> None:
    async with standin() as push:
        push.vapid_public_key = PUBLIC_KEY
        subscribe(server, "away-1", push.browser("away-1"))
        sent = await publish(
            server,
            "away-1",
            "Ada commented on your invoice",
            link="https://app.example/invoices/7",
            category="billing",
            actor={"name": "Ada", "avatar_url": "https://cdn.example/ada.png"},
            actions=[{"label": "Pay", "url": "https://app.example/pay/7"}],
        )
        [first] = await push.wait_for("away-1", 1)
        assert first.payload == {
            "id": sent["id"],
            "seq": sent["id"],
            "message": "Ada commented on your invoice",
            "link": "https://app.example/invoices/7",
            "category": "billing",
            "actor": {"name": "Ada", "avatar_url": "https://cdn.example/ada.png"},
            "actions": [{"label": "Pay", "url": "https://app.example/pay/7"}],
            "created_at": sent["created_at"],
            "tag": f"tidings-{sent['id']}",
            "web_push": 8030,
            "notification": {
                "title": "Ada",
                "body": "Ada commented on your invoice",
                "navigate": "https://app.example/invoices/7",
                "tag": f"tidings-{sent['id']}",
                "timestamp": first.payload["notification"]["timestamp"],
                "icon": "https://cdn.example/ada.png",
                "actions": [
                    {"action": "0", "title": "Pay", "navigate": "https://app.example/pay/7"}
                ],
                "data": {"tidings": True, "id": sent["id"]},
            },
            "mutable": True,
        }
        check_shapes(first.payload)
        created = datetime.fromisoformat(str(sent["created_at"])).timestamp()
        assert first.received - created >= GRACE
        assert first.headers["Topic"]
        assert first.headers["Urgency"] == "normal"
        # Exactly one: a later notification is pushed next, nothing in between.
        later = await publish(server, "away-1", "sentinel")
        pushes = await push.wait_for("away-1", 2)
        assert [p.payload["id"] for p in pushes] == [sent["id"], later["id"]]
    assert server.metric("tidings_away_sent_total", 'channel="push"') >= 2


async def test_an_open_stream_gets_no_push(server: Server) -> None:
    async with standin() as push, open_stream(server.url, make_token("here-1")) as stream:
        subscribe(server, "here-1", push.browser("here-1"))
        subscribe(server, "gone-1", push.browser("gone-1"))
        before = skipped(server, "present")
        await publish(server, "here-1", "you are looking")
        [shown] = await stream.notifications(1)
        assert shown["message"] == "you are looking"
        await wait_skipped(server, "present", before)
        # The sentinel: a later notification for a user without a stream is pushed...
        await publish(server, "gone-1", "sentinel")
        await push.wait_for("gone-1", 1)
        # ...and the one with a stream got none.
        assert push.answered.get("here-1", []) == []


async def test_a_stream_opened_within_the_grace_gets_no_push(server: Server) -> None:
    async with standin() as push:
        subscribe(server, "back-1", push.browser("back-1"))
        subscribe(server, "gone-2", push.browser("gone-2"))
        before = skipped(server, "present")
        sent = await publish(server, "back-1", "while you were away")
        # The user comes back before the grace is over, sees it, and leaves again.
        async with open_stream(server.url, make_token("back-1"), last_event_id="0") as stream:
            [shown] = await stream.notifications(1)
            assert shown["id"] == sent["id"]
        await wait_skipped(server, "present", before)
        await publish(server, "gone-2", "sentinel")
        await push.wait_for("gone-2", 1)
        assert push.answered.get("back-1", []) == []


@pytest.mark.parametrize(
    ("reason", "change"),
    [
        ("seen", ("/notifications/seen", {"up_to": 1})),
        ("read", ("/notifications/read", {"ids": [1]})),
        ("archived", ("/notifications/archive", {"ids": [1]})),
    ],
)
async def test_seen_read_or_archived_before_the_grace_gets_no_push(
    server: Server, reason: str, change: tuple[str, dict[str, object]]
) -> None:
    user = f"{reason}-1"
    async with standin() as push:
        subscribe(server, user, push.browser(user))
        subscribe(server, f"{user}-other", push.browser(f"{user}-other"))
        before = skipped(server, reason)
        sent = await publish(server, user, "look at me", category="billing")
        assert sent["id"] == 1
        path, body = change
        await asyncio.to_thread(user_post, server, user, path, body)
        await wait_skipped(server, reason, before)
        await publish(server, f"{user}-other", "sentinel")
        await push.wait_for(f"{user}-other", 1)
        assert push.answered.get(user, []) == []


@pytest.mark.parametrize(
    ("reason", "preferences"),
    [
        ("muted", {"muted_categories": ["billing"]}),
        ("unsubscribed", {"channels": {"push": False, "email": True}}),
    ],
)
async def test_muted_or_push_turned_off_gets_no_push(
    server: Server, reason: str, preferences: dict[str, object]
) -> None:
    user = f"{reason}-1"
    async with standin() as push:
        subscribe(server, user, push.browser(user))
        subscribe(server, f"{user}-other", push.browser(f"{user}-other"))
        before = skipped(server, reason)
        # Published before the change (a muted category is not even stored after it).
        await publish(server, user, "an invoice", category="billing")
        response = await asyncio.to_thread(
            HTTP.put,
            f"{server.url}/notifications/preferences",
            json=preferences,
            headers={"authorization": f"Bearer {make_token(user)}"},
        )
        assert response.status_code == 200, response.text
        await wait_skipped(server, reason, before)
        await publish(server, f"{user}-other", "sentinel")
        await push.wait_for(f"{user}-other", 1)
        assert push.answered.get(user, []) == []


async def test_a_subscription_answered_410_is_deleted(server: Server) -> None:
    async with standin() as push:
        subscribe(server, "moved-1", push.browser("moved-1"))
        subscribe(server, "moved-other", push.browser("moved-other"))
        push.script["moved-1"] = [410]
        await publish(server, "moved-1", "are you there?")
        assert await push.wait_answered("moved-1", 1) == [410]
        # A pass of the loop ends with every subscription it touched done: a push published
        # after the 410 goes out in a later pass, after the deletion.
        await publish(server, "moved-1", "into the void")
        await publish(server, "moved-other", "sentinel")
        await push.wait_for("moved-other", 1)
        response = await asyncio.to_thread(
            HTTP.request,
            "DELETE",
            f"{server.url}/notifications/push-subscriptions",
            json={"endpoint": push.browsers["moved-1"].endpoint},
            headers={"authorization": f"Bearer {make_token('moved-1')}"},
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"
        assert push.answered["moved-1"] == [410]


async def test_a_busy_push_service_is_retried_later_and_pushed_once(server: Server) -> None:
    async with standin() as push:
        subscribe(server, "busy-1", push.browser("busy-1"))
        push.script["busy-1"] = [429, 503]
        failed = server.metric("tidings_away_failed_total", 'channel="push"')
        sent = await publish(server, "busy-1", "eventually")
        [pushed] = await push.wait_for("busy-1", 1, timeout=20)
        assert pushed.payload["id"] == sent["id"]
        later = await publish(server, "busy-1", "sentinel")
        pushes = await push.wait_for("busy-1", 2)
        assert [p.payload["id"] for p in pushes] == [sent["id"], later["id"]]
        assert push.answered["busy-1"] == [429, 503, 201, 201]
        assert server.metric("tidings_away_failed_total", 'channel="push"') == failed + 2
