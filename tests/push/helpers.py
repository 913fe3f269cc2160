"""What the Web Push tests share: a push-enabled server's settings, subscribing, metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.push.standin import Browser
from tests.support import HTTP, Server, make_token
from tidings.channels.push.keys import new_key_pair

# One key pair for the test session: the server signs with it, the stand-in checks against it.
PRIVATE_KEY, PUBLIC_KEY = new_key_pair()
GRACE = 1.0

# Short intervals so a test takes seconds; the grace stays longer than the presence interval
# (the settings refuse otherwise), as in production.
PUSH_ENV = {
    "TIDINGS_VAPID_PRIVATE_KEY": PRIVATE_KEY,
    "TIDINGS_VAPID_SUBJECT": "mailto:ops@tidings.test",
    "TIDINGS_PUSH_GRACE": str(GRACE),
    "TIDINGS_PUSH_INTERVAL": "0.1",
    "TIDINGS_PUSH_PRESENCE_INTERVAL": "0.1",
    # A push service that does not answer in time may have accepted the push: a retry is then a
    # repeat. Generous for a loaded machine, so the tests count what was sent exactly.
    "TIDINGS_PUSH_TIMEOUT": "2",
    "TIDINGS_PUSH_LEASE": "6",
    "TIDINGS_PUSH_ALLOW_HTTP": "1",
    # The stand-in listens on 127.0.0.1, which a real deployment refuses (server-side forgery).
    "TIDINGS_PUSH_ALLOW_PRIVATE": "1",
}


def subscribe(server: Server, user: str, browser: Browser) -> None:
    response = HTTP.post(
        f"{server.url}/notifications/push-subscriptions",
        json=browser.to_json(),
        headers={"authorization": f"Bearer {make_token(user)}"},
    )
    assert response.status_code == 201, response.text


def user_post(server: Server, user: str, path: str, body: dict[str, Any]) -> None:
    response = HTTP.post(
        f"{server.url}{path}", json=body, headers={"authorization": f"Bearer {make_token(user)}"}
    )
    assert response.status_code == 200, response.text


def skipped(server: Server, reason: str) -> float:
    return server.metric("tidings_away_skipped_total", f'reason="{reason}"')


async def wait_skipped(server: Server, reason: str, above: float, timeout: float = 15.0) -> None:
    """Wait until the push loop skipped one more notification for `reason` (an event: the
    decision is final, `done_seq` moved past it)."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(skipped, server, reason) <= above:
        assert time.monotonic() < deadline, f"no push skipped for {reason!r}"
        await asyncio.sleep(0.05)
