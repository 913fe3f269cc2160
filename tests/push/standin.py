"""A push service stand-in on 127.0.0.1: what FCM or Mozilla's autopush do, for the tests.

It receives a push as a push service does (RFC 8030), checks the VAPID header (RFC 8292: an
ES256 JWT signed with the server's key, `aud` the endpoint's origin, `exp` within 24 h, `sub` a
mailto: or https: URL) and decrypts the `aes128gcm` body (RFC 8291) with the subscription's own
private key and auth secret, which the test holds as a browser would. It answers 201, or what a
test scripted for that subscription (410, 429 …), or holds the request open (a push service that
never answers) so a test can kill the sender mid-request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import http_ece
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import free_port

__all__ = ["Browser", "Push", "StandIn", "standin"]

MAX_BODY = 4096


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """One browser's subscription: the keys a browser makes, and the endpoint it was given."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def to_json(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives the page."""
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }


@dataclass(frozen=True)
class Push:
    """One request the stand-in received and accepted, decrypted."""

    name: str
    payload: dict[str, Any]
    headers: dict[str, str]
    body_size: int
    received: float


class StandIn:
    def __init__(self, vapid_public_key: str | None = None) -> None:
        self.port = free_port()
        # The server's VAPID public key, once the test knows it (GET /notifications/push/key).
        self.vapid_public_key = vapid_public_key
        self.browsers: dict[str, Browser] = {}
        # Pushes answered 2xx, per subscription name, in arrival order.
        self.accepted: dict[str, list[Push]] = {}
        # Every request per subscription name, with the status it was answered.
        self.answered: dict[str, list[int]] = {}
        # Per name, statuses to answer next (then 201); "hold" keeps the request open.
        self.script: dict[str, list[int | str]] = {}
        # Requests being held open, per name (set when one arrives).
        self.holding: dict[str, asyncio.Event] = {}
        self.problems: list[str] = []
        self._arrived = asyncio.Condition()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def browser(self, name: str) -> Browser:
        """A new subscription whose endpoint is on this stand-in."""
        made = Browser(endpoint=f"{self.origin}/push/{name}")
        self.browsers[name] = made
        return made

    async def wait_for(self, name: str, count: int, timeout: float = 15.0) -> list[Push]:
        """Wait until `count` pushes to `name` were accepted; return them."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.accepted.get(name, [])) >= count)
        return list(self.accepted[name])

    async def wait_for_id(self, name: str, seq: int, timeout: float = 15.0) -> list[Push]:
        """Wait until a push of notification `seq` to `name` was accepted; return all so far."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(
                lambda: any(p.payload.get("id") == seq for p in self.accepted.get(name, []))
            )
        return list(self.accepted[name])

    async def wait_answered(self, name: str, count: int, timeout: float = 15.0) -> list[int]:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.answered.get(name, [])) >= count)
        return list(self.answered[name])

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.read()
        try:
            push = self._check(name, request, body)
        except AssertionError as exc:
            self.problems.append(f"{name}: {exc}")
            return await self._answer(name, 400, None)
        script = self.script.get(name, [])
        status = script.pop(0) if script else 201
        if status == "hold":
            self.holding.setdefault(name, asyncio.Event()).set()
            # Until the sender goes away (killed), as a push service that never answers.
            await asyncio.Event().wait()
        assert isinstance(status, int)
        return await self._answer(name, status, push)

    async def _answer(self, name: str, status: int, push: Push | None) -> web.Response:
        async with self._arrived:
            self.answered.setdefault(name, []).append(status)
            if push is not None and 200 <= status < 300:
                self.accepted.setdefault(name, []).append(push)
            self._arrived.notify_all()
        headers = {"retry-after": "1"} if status == 429 else {}
        return web.Response(status=status, headers=headers)

    def _check(self, name: str, request: web.Request, body: bytes) -> Push:
        browser = self.browsers.get(name)
        assert browser is not None, "no such subscription"
        assert len(body) <= MAX_BODY, f"body of {len(body)} bytes"
        assert request.headers.get("content-encoding") == "aes128gcm"
        assert int(request.headers["ttl"]) > 0
        assert request.headers.get("topic"), "no Topic header"
        scheme, _, params = request.headers["authorization"].partition(" ")
        assert scheme == "vapid", scheme
        parts = dict(p.strip().split("=", 1) for p in params.split(","))
        if self.vapid_public_key is not None:
            assert parts["k"] == self.vapid_public_key, "signed with another key"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(parts["k"]))
        endpoint = urlsplit(browser.endpoint)
        claims = jwt.decode(
            parts["t"],
            public,
            algorithms=["ES256"],
            audience=f"{endpoint.scheme}://{endpoint.netloc}",
            options={"require": ["exp", "aud", "sub"]},
        )
        assert claims["exp"] <= time.time() + 24 * 3600, "exp more than 24 h ahead"
        assert str(claims["sub"]).startswith(("mailto:", "https://")), claims["sub"]
        plain = http_ece.decrypt(
            body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm"
        )
        return Push(
            name=name,
            payload=json.loads(plain),
            headers=dict(request.headers),
            body_size=len(body),
            received=time.time(),
        )


@contextlib.asynccontextmanager
async def standin() -> AsyncIterator[StandIn]:
    service = StandIn()
    app = web.Application()
    app.router.add_post("/push/{name}", service._handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", service.port)
    await site.start()
    try:
        yield service
    finally:
        await runner.cleanup()
    assert not service.problems, service.problems


# What WebKit's declarative Web Push admits in `notification` (https://webkit.org/blog/16535/),
# with each field's JSON type.
DECLARATIVE_FIELDS = {
    "title": str,
    "navigate": str,
    "body": str,
    "lang": str,
    "dir": str,
    "tag": str,
    "image": str,
    "icon": str,
    "badge": str,
    "timestamp": int,
    "silent": bool,
    "renotify": bool,
    "requireInteraction": bool,
    "data": dict,
    "actions": list,
    "vibrate": list,
}


def check_shapes(payload: dict[str, Any]) -> None:
    """A decrypted payload is both what tidings-sw.js takes (its `payloadOf`: an integer `id`
    and a string `message`; `tag` for the notification's tag) and a declarative Web Push
    message Safari shows by itself: `web_push` 8030, a `notification` with a non-empty `title`
    and an absolute http(s) `navigate`, only fields of the format, each of its type."""
    assert isinstance(payload["id"], int), payload
    assert isinstance(payload["message"], str), payload
    assert isinstance(payload["tag"], str), payload
    assert payload["web_push"] == 8030, payload
    assert payload.get("mutable", False) in (True, False)
    shown = payload["notification"]
    assert isinstance(shown["title"], str), shown
    assert shown["title"], shown
    assert urlsplit(shown["navigate"]).scheme in ("https", "http"), shown
    for name, value in shown.items():
        assert name in DECLARATIVE_FIELDS, f"not a declarative field: {name}"
        assert isinstance(value, DECLARATIVE_FIELDS[name]), (name, value)
    for action in shown.get("actions", []):
        assert set(action) <= {"action", "title", "navigate", "icon"}, action
        assert urlsplit(action["navigate"]).scheme in ("https", "http"), action
