"""The publisher's framework routes: minting user tokens, cancelling a scheduled publish.
(The publish itself is raw: `tidings.publish`.) The router declares the publisher key, so
every route on it needs one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from tidings.auth import mint_token
from tidings.errors import ApiError, error_responses
from tidings.http.deps import PublisherDep, ServiceDep
from tidings.http.schemas import TokenIn, TokenOut
from tidings.validation import check_user_id

__all__ = ["publisher_router"]

publisher_router = APIRouter(tags=["publisher"], dependencies=[PublisherDep])


@publisher_router.post(
    "/api/tokens",
    response_model=TokenOut,
    responses=error_responses((400, 401, 403, 413, 415, 422)),
)
async def create_token(body: TokenIn, service: ServiceDep) -> TokenOut:
    """Mint a user token, for host apps without a JWT library."""
    try:
        user_id = check_user_id(body.user_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", {"field": "user_id", "problem": str(exc)}) from None
    if body.ttl > service.settings.max_token_ttl:
        raise ApiError(
            422,
            "invalid_request",
            {"field": "ttl", "problem": f"at most {service.settings.max_token_ttl} seconds"},
        )
    token, expires = mint_token(service.settings.secret, user_id, body.ttl)
    return TokenOut(token=token, expires_at=expires)


# --- scheduled notifications ------------------------------------------------------------------

# What a key's rows being in a state means, for the 404 that cancels nothing.
_NOT_PENDING = {
    "delivered": "it was delivered already",
    "cancelled": "it was cancelled already",
    "muted": "it was due and skipped (the user muted its category)",
    "pending": "it is being delivered right now",
}


@publisher_router.delete(
    "/api/notifications/scheduled/{idempotency_key:path}",
    status_code=204,
    responses=error_responses((401, 403, 404, 422, 503)),
)
async def cancel_scheduled(
    idempotency_key: Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00]+$")],
    service: ServiceDep,
) -> Response:
    """Cancel a scheduled notification (a publish with a future `deliver_at`) before it is due,
    for every user it was scheduled for: 204. The key is URL-encoded; it may contain `/`.
    404 `not_scheduled` when nothing is pending under the key: unknown, delivered or cancelled
    already (the detail says which)."""
    cancelled, states = await service.cancel_scheduled(idempotency_key)
    if cancelled:
        return Response(status_code=204)
    why = "; ".join(_NOT_PENDING.get(s, s) for s in states) or "no publish was scheduled with it"
    raise ApiError(
        404,
        "not_scheduled",
        f"nothing is pending under idempotency key {idempotency_key!r}: {why}",
    )
