"""Web Push end to end once per store: `tidings serve` on SQLite, PostgreSQL and MongoDB (with
two worker processes, so two push loops compete for each subscription's lease), a stand-in push
service, and a stream that stops a push."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ServerFactory
from tests.push.helpers import PUBLIC_KEY, PUSH_ENV, subscribe
from tests.push.standin import standin
from tests.support import make_token, open_stream

# Waits on timers (a grace window, a lease, a token's lifetime) more than it computes: in the
# lane of its own beside the parallel pass (scripts/test).
pytestmark = [pytest.mark.anyio, pytest.mark.serial]


async def test_one_push_per_notification_and_none_for_an_open_stream_on_every_store(
    make_server: ServerFactory, served_url: str
) -> None:
    env = {k.removeprefix("TIDINGS_").lower(): v for k, v in PUSH_ENV.items()}
    server = make_server("--workers", "2", database=served_url, **env)
    async with standin() as push:
        push.vapid_public_key = PUBLIC_KEY
        for user in ("away", "here"):
            subscribe(server, user, push.browser(user))
        async with open_stream(server.url, make_token("here")) as stream:
            sent = []
            for i in range(3):
                for user in ("here", "away"):
                    response = await asyncio.to_thread(server.publish, user, f"n{i}")
                    assert response.status_code == 201, response.text
                    if user == "away":
                        sent.append(response.json()["id"])
            assert len(await stream.notifications(3)) == 3
            pushes = await push.wait_for("away", 3, timeout=30)
            assert [p.payload["id"] for p in pushes] == sent
            # The sentinel: the next push to "away" is the next notification, nothing repeated;
            # and by then "here", whose notifications came before it, got none.
            response = await asyncio.to_thread(server.publish, "away", "sentinel")
            pushes = await push.wait_for("away", 4, timeout=30)
            assert [p.payload["id"] for p in pushes] == [*sent, response.json()["id"]]
            assert push.answered.get("here", []) == []
