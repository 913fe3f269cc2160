"""Server-side request forgery through Web Push (issue 22, item 9): an endpoint that is, or
resolves to, a non-global address is refused when stored and again before each send."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import ServerFactory
from tests.push.helpers import PUBLIC_KEY, PUSH_ENV, subscribe
from tests.push.standin import Browser, standin
from tests.support import HTTP, Server, make_token, tidings_env

pytestmark = pytest.mark.anyio

# Without TIDINGS_PUSH_ALLOW_PRIVATE, as in production.
STRICT = {k: v for k, v in PUSH_ENV.items() if k != "TIDINGS_PUSH_ALLOW_PRIVATE"}

INWARD = [
    "https://169.254.169.254/latest/meta-data/",  # the cloud's metadata service (link-local)
    "https://127.0.0.1:9/x",
    "https://localhost:6379/",  # a name that resolves to loopback
    "https://10.0.0.5/admin",
    "https://192.168.1.1/",
    "https://172.16.0.1/",
    "https://100.64.0.1/",  # carrier-grade NAT
    "https://2130706433/",  # 127.0.0.1 in decimal
    "https://127.1/",  # 127.0.0.1 in short form
    "https://0x7f.1/",  # in hex
    "https://0177.0.0.1/",  # in octal
    "https://0.0.0.0/",
    "https://224.0.0.1/",  # multicast
    "https://240.0.0.1/",  # reserved
    "https://255.255.255.255/",
    "https://[::1]/x",  # IPv6 loopback
    "https://[::ffff:127.0.0.1]/x",  # IPv4-mapped
    "https://[fe80::1]/x",
    "https://[fd00::1]/x",
]


def post(server: Server, user: str, endpoint: str) -> tuple[int, dict[str, object]]:
    response = HTTP.post(
        f"{server.url}/notifications/push-subscriptions",
        json=Browser(endpoint).to_json(),
        headers={"authorization": f"Bearer {make_token(user)}"},
    )
    return response.status_code, response.json()


def test_endpoints_that_point_inward_are_refused_at_registration(
    make_server: ServerFactory,
) -> None:
    server = make_server(**STRICT)
    stored = []
    for endpoint in INWARD:
        status, body = post(server, "ssrf", endpoint)
        if status != 422:
            stored.append((endpoint, status))
            continue
        assert body["error"] == "invalid_subscription", body
        detail = body["detail"]
        assert isinstance(detail, dict)
        assert detail["field"] == "endpoint"
        assert "non-global" in detail["problem"] or "IPv6" in detail["problem"], (endpoint, body)
    assert not stored, f"stored although they point inward: {stored}"
    # A public address is still taken (registration sends nothing), and so is a name that does
    # not resolve at the moment: each send checks again.
    assert post(server, "ssrf", "https://8.8.8.8/push/x")[0] == 201
    assert post(server, "ssrf", "https://push.invalid/x")[0] == 201
    # The problem names the address meant and the setting that would admit it.
    status, body = post(server, "ssrf-msg", "https://2130706433/")
    assert status == 422
    problem = str(body["detail"])
    assert "127.0.0.1" in problem
    assert "TIDINGS_PUSH_ALLOW_PRIVATE" in problem


def _subscriptions(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT endpoint FROM push_subscriptions")]


async def test_an_endpoint_is_checked_again_before_each_send(tmp_path: Path) -> None:
    # Stored while private addresses were allowed (or while its name still pointed outward),
    # then served by a node that refuses them: no request reaches it, and it is deleted.
    database = tmp_path / "tidings.db"
    async with standin() as push:
        push.vapid_public_key = PUBLIC_KEY
        # A name, not an address: the send resolves it, and connects to the address it checked.
        endpoint = f"http://localhost:{push.port}/push/rebound"
        push.browsers["rebound"] = Browser(endpoint)
        allowed = Server(tidings_env(f"sqlite:///{database}", PUSH_ENV), tmp_path / "a.log")
        try:
            await asyncio.to_thread(allowed.start)
            subscribe(allowed, "rebound", push.browsers["rebound"])
            assert (await asyncio.to_thread(allowed.publish, "rebound", "one")).status_code == 201
            [first] = await push.wait_for("rebound", 1)
            # The connection went to the checked address; the name stayed in the Host header.
            assert first.headers["Host"] == f"localhost:{push.port}"
            await asyncio.to_thread(allowed.stop)
        finally:
            allowed.close()

        strict = Server(tidings_env(f"sqlite:///{database}", STRICT), tmp_path / "b.log")
        try:
            await asyncio.to_thread(strict.start)
            assert (await asyncio.to_thread(strict.publish, "rebound", "two")).status_code == 201
            deadline = time.monotonic() + 15
            while _subscriptions(database):
                assert time.monotonic() < deadline, strict.log()
                await asyncio.sleep(0.1)
            assert "push endpoint refused: localhost resolves to a non-global" in strict.log()
        finally:
            strict.close()
        assert push.answered["rebound"] == [201], "a push went to a refused address"
