"""The user's Web Push routes: the server's public key, and their browsers' subscriptions.

Answered 404 `push_disabled` on a server without a VAPID key, so a client can tell "off here"
from a failure. Importing this module imports none of the push crypto: it runs without the
`tidings[push]` extra, where every answer is that 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tidings.channels.push.endpoints import Refused, resolve
from tidings.errors import ApiError, error_responses
from tidings.http.deps import ChangingUserDep, ServiceDep, UserDep
from tidings.models import PushSubscription
from tidings.service import Service
from tidings.settings import b64url_bytes

if TYPE_CHECKING:
    # Only for the type: importing it would import the push crypto (the `tidings[push]` extra).
    from tidings.channels.push.delivery import PushDelivery

__all__ = ["push_router"]

push_router = APIRouter(tags=["user"])

P256DH_BYTES = 65  # an uncompressed P-256 point: 0x04, then x and y
AUTH_BYTES = 16


def _responses(*statuses: int, **why: str) -> dict[int | str, dict[str, Any]]:
    answers = error_responses(statuses)
    for status, text in why.items():
        answers[int(status[1:])] = {**answers[int(status[1:])], "description": text}
    return answers


DISABLED = "`push_disabled`: Web Push is off on this server (no TIDINGS_VAPID_PRIVATE_KEY)"


class PushKeyOut(BaseModel):
    public_key: str = Field(
        description="the VAPID public key, base64url: `applicationServerKey` for "
        "`pushManager.subscribe`"
    )


class PushKeysIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p256dh: StrictStr = Field(max_length=200)
    auth: StrictStr = Field(max_length=100)


class PushSubscriptionIn(BaseModel):
    """A browser's `PushSubscription.toJSON()`."""

    model_config = ConfigDict(extra="forbid")
    endpoint: StrictStr = Field(max_length=8192)
    expirationTime: float | None = None
    keys: PushKeysIn


class PushSubscriptionOut(BaseModel):
    endpoint: str


class PushEndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: StrictStr = Field(max_length=8192)


def _enabled(service: Service) -> PushDelivery:
    running = service.channels.get("push")
    if running is None:
        raise ApiError(
            404,
            "push_disabled",
            "Web Push is off on this server: TIDINGS_VAPID_PRIVATE_KEY is not set",
        )
    return cast("PushDelivery", running)


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError(422, "invalid_subscription", {"field": field, "problem": problem})


def _check_endpoint(endpoint: str, service: Service) -> None:
    settings = service.settings
    if len(endpoint.encode()) > settings.max_push_endpoint_bytes:
        raise _invalid("endpoint", f"longer than {settings.max_push_endpoint_bytes} bytes")
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018  (reading the port is what checks it)
    except ValueError:
        raise _invalid("endpoint", "not a URL") from None
    schemes = ("https", "http") if settings.push_allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise _invalid("endpoint", f"not an absolute {allowed} URL")
    if parts.username is not None or parts.password is not None or ":" in parts.hostname:
        # No push service has them, and the VAPID audience (scheme, host, port) cannot carry
        # a user name or an IPv6 literal.
        raise _invalid("endpoint", "has a user name or an IPv6 address; push services have neither")


async def _check_address(endpoint: str, service: Service) -> None:
    """Refuse a host that is, or resolves to, a non-global address (see `endpoints.py`).

    A name that does not resolve now is stored: it may be a moment's DNS failure, and every send
    checks the address again anyway.
    """
    settings = service.settings
    if settings.push_allow_private:
        return
    parts = urlsplit(endpoint)
    assert parts.hostname is not None  # _check_endpoint made sure
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await resolve(
            parts.hostname, port, dns_timeout=settings.push_dns_timeout, allow_private=False
        )
    except Refused as exc:
        raise _invalid(
            "endpoint",
            f"{exc}: a push endpoint must be a public address (TIDINGS_PUSH_ALLOW_PRIVATE=1 admits "
            "local stand-ins)",
        ) from None
    except (OSError, TimeoutError):
        pass


def _check_keys(keys: PushKeysIn) -> None:
    raw = b64url_bytes(keys.p256dh)
    if raw is None or len(raw) != P256DH_BYTES or raw[0] != 4:
        raise _invalid("keys.p256dh", "not a P-256 public key (65 bytes, base64url)")
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise _invalid("keys.p256dh", "not a point on P-256") from None
    secret = b64url_bytes(keys.auth)
    if secret is None or len(secret) != AUTH_BYTES:
        raise _invalid("keys.auth", "not an auth secret (16 bytes, base64url)")


@push_router.get(
    "/notifications/push/key",
    response_model=PushKeyOut,
    responses=_responses(401, 404, _404=DISABLED),
)
async def push_key(user: UserDep, service: ServiceDep) -> PushKeyOut:
    """The server's VAPID public key, for `pushManager.subscribe({applicationServerKey})`."""
    return PushKeyOut(public_key=_enabled(service).vapid.public_key)


@push_router.post(
    "/notifications/push-subscriptions",
    status_code=201,
    response_model=PushSubscriptionOut,
    responses=_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        415,
        422,
        503,
        _404=DISABLED,
        _409="`push_subscriptions_full`: the user has TIDINGS_MAX_PUSH_SUBSCRIPTIONS already",
        _422="a field is missing or wrong (`invalid_subscription` names it)",
    ),
)
async def add_push_subscription(
    body: PushSubscriptionIn, user: ChangingUserDep, service: ServiceDep
) -> PushSubscriptionOut:
    """Store this browser's subscription for the caller (the same endpoint again only updates
    it). Notifications published from now on reach it when the caller has no open stream."""
    _enabled(service)
    _check_endpoint(body.endpoint, service)
    _check_keys(body.keys)
    await _check_address(body.endpoint, service)
    sub = PushSubscription(
        endpoint=body.endpoint,
        user_id=user.user_id,
        p256dh=body.keys.p256dh.rstrip("="),
        auth=body.keys.auth.rstrip("="),
    )
    limit = service.settings.max_push_subscriptions
    if await service.store.add_push_subscription(sub, limit) == "full":
        raise ApiError(
            409,
            "push_subscriptions_full",
            f"you have {limit} push subscriptions already; remove one first",
        )
    return PushSubscriptionOut(endpoint=body.endpoint)


@push_router.delete(
    "/notifications/push-subscriptions",
    status_code=204,
    responses=_responses(
        400,
        401,
        403,
        404,
        413,
        415,
        422,
        503,
        _404="`push_disabled`, or `not_found`: the caller has no subscription with that endpoint",
    ),
)
async def remove_push_subscription(
    body: PushEndpointIn, user: ChangingUserDep, service: ServiceDep
) -> Response:
    """Remove one of the caller's subscriptions (the browser unsubscribed)."""
    _enabled(service)
    if not await service.store.remove_push_subscription(user.user_id, body.endpoint):
        raise ApiError(404, "not_found", "you have no push subscription with that endpoint")
    return Response(status_code=204)
