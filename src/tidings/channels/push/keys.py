"""VAPID keys (RFC 8292) and the encrypted request of one push (RFC 8291, `aes128gcm`).

pywebpush encrypts the payload and py-vapid signs the JWT; the request itself is sent by
`delivery.py` with httpx, so every outbound request has the timeout of the settings.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher

from tidings.models import PushSubscription

__all__ = ["PushRequest", "Vapid", "new_key_pair"]

# A VAPID JWT may live 24 h at most (RFC 8292 §2); a shorter one limits what a leaked header
# allows, and one is signed per request anyway.
JWT_LIFETIME = 12 * 3600


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_key_pair() -> tuple[str, str]:
    """A new P-256 key pair: (private key, 32 bytes; public key, 65 bytes uncompressed), both
    base64url without padding, as `TIDINGS_VAPID_PRIVATE_KEY` and `applicationServerKey` take
    them."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url(private), public_key_of(key)


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(raw)


@dataclass(frozen=True, slots=True)
class PushRequest:
    """What goes to a push service: the endpoint, the headers and the encrypted body."""

    url: str
    headers: dict[str, str]
    body: bytes


class Vapid:
    """The server's VAPID identity: signs requests, and encrypts payloads for subscriptions."""

    def __init__(self, private_key: str, subject: str) -> None:
        self._vapid = Vapid02.from_raw(private_key.encode())
        self.subject = subject
        self.public_key = public_key_of(cast(ec.EllipticCurvePrivateKey, self._vapid.private_key))

    def request(
        self, sub: PushSubscription, payload: bytes, *, ttl: int, topic: str
    ) -> PushRequest:
        info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
        body = cast(bytes, WebPusher(info).encode(payload, "aes128gcm")["body"])
        parts = urlsplit(sub.endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "sub": self.subject,
            "exp": int(time.time()) + JWT_LIFETIME,
        }
        signed = cast(dict[str, Any], self._vapid.sign(claims))
        headers = {
            "Authorization": str(signed["Authorization"]),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(ttl),
            # RFC 8030 §5.4: a push service keeps one undelivered message per topic, so a
            # repeat of the same notification replaces the first instead of adding a second.
            "Topic": topic,
            "Urgency": "normal",
        }
        return PushRequest(url=sub.endpoint, headers=headers, body=body)
