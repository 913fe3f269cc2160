"""`POST /api/notifications`: the publish route, as raw ASGI.

It is the one route a busy host app calls per event, so it skips the framework's per-request
machinery (routing, dependency solving, middleware stack), which measured at twice the cost of the
publish itself. Its answers are the same as every other route's: the credential first, then the
body, and every error as JSON `{"error", "detail"}`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from tidings.auth import check_publisher
from tidings.service import Service
from tidings.store import IdempotencyConflict, StoreUnavailable
from tidings.validation import ApiError, PublishIn, make_draft

__all__ = ["PUBLISH_PATH", "publish_endpoint"]

PUBLISH_PATH = "/api/notifications"

log = logging.getLogger("tidings.api")


async def publish_endpoint(service: Service, scope: Scope, receive: Receive, send: Send) -> None:
    settings = service.settings
    conn = HTTPConnection(scope)
    try:
        if scope["method"] != "POST":
            raise ApiError(405, "method_not_allowed", "use POST")
        check_publisher(conn, settings)
        raw = await _read_body(receive, settings.max_body_bytes)
        media = conn.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise ApiError(
                415,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            )
        if not raw:
            # As on the framework's routes: a missing body is a missing field, not bad JSON.
            raise ApiError(422, "invalid_request", [{"loc": ["body"], "msg": "Field required"}])
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            # RecursionError: nested deeper than the parser goes, which no real payload is.
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        try:
            body = PublishIn.model_validate(parsed)
        except ValidationError as exc:
            detail = [
                {"loc": ["body", *(str(p) for p in e["loc"])], "msg": e["msg"]}
                for e in exc.errors()
            ]
            raise ApiError(422, "invalid_request", detail) from None
        draft = make_draft(body, settings)
        try:
            stored = await service.publish(draft, body.idempotency_key)
        except IdempotencyConflict as exc:
            raise ApiError(409, "idempotency_conflict", str(exc)) from None
    except ApiError as exc:
        extra = [(b"allow", b"POST")] if exc.status == 405 else []
        await _respond(send, exc.status, {"error": exc.error, "detail": exc.detail}, extra)
        return
    except StoreUnavailable as exc:
        log.warning("store unavailable: %s", exc)
        await _respond(
            send, 503, {"error": "store_unavailable", "detail": str(exc)}, [(b"retry-after", b"2")]
        )
        return
    except Exception:
        # As the framework's routes do: logged with its traceback, answered as JSON without it.
        log.exception("unexpected error on POST %s", PUBLISH_PATH)
        await _respond(
            send,
            500,
            {"error": "internal_error", "detail": "an unexpected error; see the server log"},
            [],
        )
        return
    # The same JSON lines the streams are sent (encoded once per notification).
    lines = [n.line for n in stored.notifications]
    answer = lines[0] if body.user_id is not None and lines else "[" + ",".join(lines) + "]"
    if stored.replayed:
        await _send_json(send, 200, answer.encode(), [(b"idempotent-replayed", b"true")])
    else:
        await _send_json(send, 201, answer.encode(), [])


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
            raise ApiError(
                413, "too_large", f"the body exceeds {limit} bytes (TIDINGS_MAX_BODY_BYTES)"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, content: Any, extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    await _send_json(send, status, body, extra)


async def _send_json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def openapi_path(components: dict[str, Any]) -> dict[str, Any]:
    """The route's entry in /openapi.json (FastAPI does not see this route)."""
    schema = PublishIn.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components["PublishIn"] = schema
    error = {"description": 'JSON {"error", "detail"}'}
    return {
        "post": {
            "tags": ["publisher"],
            "summary": "Publish",
            "description": (
                "Store a notification for `user_id` (answers it) or for each of `user_ids` "
                "(answers an array). A repeated `idempotency_key` answers the original with 200 "
                "and `Idempotent-Replayed: true`; reused with a different body, 409. "
                "Needs `Authorization: Bearer <publisher key>`."
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PublishIn"}}
                },
            },
            "responses": {
                "201": {
                    "description": "stored",
                    "content": {
                        "application/json": {
                            "schema": {
                                "anyOf": [
                                    {"$ref": "#/components/schemas/NotificationOut"},
                                    {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/NotificationOut"},
                                    },
                                ]
                            }
                        }
                    },
                },
                "200": {"description": "an idempotent replay: the original notification(s)"},
                "400": error,
                "401": error,
                "403": error,
                "409": error,
                "413": error,
                "415": error,
                "422": error,
                "503": error,
            },
            "security": [{"publisherKey": []}],
        }
    }
