"""`POST /api/notifications`: the publish route, as raw ASGI.

It is the one route a busy host app calls per event, so it skips the framework's per-request
machinery (routing, dependency solving, middleware stack), which measured at twice the cost of the
publish itself. Its answers are the same as every other route's: the credential first, then the
body, and every error an `ApiError`, answered by the raw routes' error path in `tidings.app`.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from tidings.auth import check_publisher
from tidings.errors import (
    ApiError,
    invalid_json,
    is_json_media,
    send_json,
    too_large,
    unsupported_media_type,
)
from tidings.models import Scheduled, Stored, one_line_json
from tidings.routes import RawRoute
from tidings.service import Service
from tidings.store import IdempotencyConflict
from tidings.validation import PublishIn, make_draft

__all__ = ["ROUTE", "publish_endpoint"]


async def publish_endpoint(service: Service, scope: Scope, receive: Receive, send: Send) -> None:
    settings = service.settings
    conn = HTTPConnection(scope)
    check_publisher(conn, settings)
    raw = await _read_body(receive, settings.max_body_bytes)
    if not is_json_media(conn.headers.get("content-type", "")):
        raise unsupported_media_type()
    if not raw:
        # As on the framework's routes: a missing body is a missing field, not bad JSON.
        raise ApiError(422, "invalid_request", [{"loc": ["body"], "msg": "Field required"}])
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        # RecursionError: nested deeper than the parser goes, which no real payload is.
        raise invalid_json() from None
    try:
        body = PublishIn.model_validate(parsed)
    except ValidationError as exc:
        detail = [
            {"loc": ["body", *(str(p) for p in e["loc"])], "msg": e["msg"]} for e in exc.errors()
        ]
        raise ApiError(422, "invalid_request", detail) from None
    draft = make_draft(body, settings, now=service.clock.now_ms())
    outcome: Stored | Scheduled
    try:
        if draft.deliver_ms is not None:
            outcome = await service.schedule(draft, body.idempotency_key)
        else:
            outcome = await service.publish(draft, body.idempotency_key)
    except IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc)) from None
    if isinstance(outcome, Scheduled):
        # Nothing visible yet and no seq: what was scheduled, and the key that cancels it.
        replayed = [(b"idempotent-replayed", b"true")] if outcome.replayed else []
        await send_json(send, 202, one_line_json(outcome.to_json()).encode(), replayed)
        return
    stored = outcome
    if body.user_id is not None and stored.skipped:
        # Nothing stored for the one user: say who and why instead of a notification.
        skipped = [{"user_id": u, "reason": reason} for u, reason in stored.skipped]
        await send_json(send, 200, one_line_json({"skipped": skipped}).encode(), [])
        return
    # The same JSON lines the streams are sent (encoded once per notification).
    lines = [n.line for n in stored.notifications]
    # A multi-user answer stays the array of what was stored; the header counts the others
    # (the users missing from the array, all for the reason "muted").
    extra = [(b"tidings-skipped", str(len(stored.skipped)).encode())] if stored.skipped else []
    answer = lines[0] if body.user_id is not None and lines else "[" + ",".join(lines) + "]"
    if stored.replayed:
        await send_json(send, 200, answer.encode(), [(b"idempotent-replayed", b"true"), *extra])
    else:
        await send_json(send, 201, answer.encode(), extra)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "bad_request", "the client went away before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_NOTIFICATIONS = {
    "anyOf": [
        {"$ref": "#/components/schemas/NotificationOut"},
        {"type": "array", "items": {"$ref": "#/components/schemas/NotificationOut"}},
    ]
}
_SKIPPED = {
    "type": "object",
    "required": ["skipped"],
    "properties": {
        "skipped": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["user_id", "reason"],
                "properties": {
                    "user_id": {"type": "string"},
                    "reason": {"type": "string", "enum": ["muted"]},
                },
            },
        }
    },
}

_SCHEDULED = {
    "type": "object",
    "required": ["idempotency_key", "deliver_at", "user_ids"],
    "properties": {
        "idempotency_key": {"type": "string"},
        "deliver_at": {"type": "string", "format": "date-time"},
        "user_ids": {"type": "array", "items": {"type": "string"}},
    },
}

ROUTE = RawRoute(
    path="/api/notifications",
    method="POST",
    endpoint=publish_endpoint,
    tag="publisher",
    summary="Publish",
    description=(
        "Store a notification for `user_id` (answers it) or for each of `user_ids` (answers an "
        "array). A repeated `idempotency_key` answers the original with 200 and "
        "`Idempotent-Replayed: true`; reused with a different body, 409. A user who muted the "
        'notification\'s category is skipped: for `user_id`, 200 with `{"skipped": [...]}`; '
        "for `user_ids`, the array holds the others and `Tidings-Skipped` counts the skipped. "
        "With a future `deliver_at`, 202 with what was scheduled (no seq yet) and the "
        "`idempotency_key` that cancels it (made up when none was given); muted users are "
        "skipped when it is due. "
        "Needs `Authorization: Bearer <publisher key>`."
    ),
    answers={
        201: ("stored", "application/json", _NOTIFICATIONS),
        200: (
            "an idempotent replay: the original notification(s); or the user was skipped",
            "application/json",
            {"anyOf": [*_NOTIFICATIONS["anyOf"], _SKIPPED]},
        ),
        202: ("scheduled: delivered at deliver_at", "application/json", _SCHEDULED),
    },
    errors=(400, 401, 403, 409, 413, 415, 422, 503),
    security="publisherKey",
    body=PublishIn,
)
