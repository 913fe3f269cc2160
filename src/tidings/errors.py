"""The one error type of the HTTP API, and the one way it is written on the wire.

Every error a caller can cause (or a dependency that is down) is an `ApiError`: a status, a code
from the table in docs/api.md, a detail, and maybe headers (`Allow`, `Retry-After`). The raw routes
answer it with `send_error`; the framework's routes with `error_response`. Both write the same
bytes: JSON `{"error", "detail"}` compact, as Starlette's `JSONResponse`
renders it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.responses import Response
from starlette.types import Send

__all__ = [
    "ERROR_SCHEMA",
    "ApiError",
    "error_response",
    "error_responses",
    "internal_error",
    "invalid_json",
    "is_json_media",
    "method_not_allowed",
    "send_error",
    "send_json",
    "store_unavailable",
    "too_large",
    "unsupported_media_type",
]

JSON_MEDIA = "application/json"
# How long a client waits before it retries after a 503 (the store is away, or just restarted).
RETRY_AFTER_SECONDS = 2


# The shape of every error answer, as /openapi.json describes it.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "a code from the table in docs/api.md"},
        "detail": {"description": "what is wrong: a sentence, or the fields at fault"},
    },
    "required": ["error", "detail"],
}
_WHY = {
    400: "the body is not valid JSON (`invalid_json`) or could not be read (`bad_request`)",
    401: "no valid credential",
    403: "a wrong publisher key, or a cookie request from a foreign origin",
    404: "no such notification",
    405: "a method the route does not answer (see `Allow`)",
    409: "the idempotency key was used before with a different body (`idempotency_conflict`)",
    413: "the body exceeds TIDINGS_MAX_BODY_BYTES",
    415: "the body is not sent as application/json",
    422: "a field is missing or wrong",
    429: "too many streams for this user on this node",
    503: "the store is unavailable: nothing was written; retry after `Retry-After` seconds",
}


def error_responses(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entries of these error statuses, all with the error schema."""
    content = {JSON_MEDIA: {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {status: {"description": _WHY[status], "content": content} for status in statuses}


class ApiError(Exception):
    """An error the caller caused (or a dependency is down): status, code and a clear detail."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: object = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = tuple(headers)

    def body(self) -> bytes:
        return json.dumps(
            {"error": self.error, "detail": self.detail},
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode()


def store_unavailable(cause: Exception) -> ApiError:
    """Nothing was written: the caller may retry (with the same idempotency key) shortly."""
    return ApiError(
        503, "store_unavailable", str(cause), [("retry-after", str(RETRY_AFTER_SECONDS))]
    )


def method_not_allowed(allowed: Iterable[str]) -> ApiError:
    methods = ", ".join(sorted(allowed))
    return ApiError(405, "method_not_allowed", f"use {methods}", [("allow", methods)])


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the body exceeds {limit} bytes (TIDINGS_MAX_BODY_BYTES)")


def invalid_json() -> ApiError:
    return ApiError(400, "invalid_json", "the body is not valid JSON")


def unsupported_media_type() -> ApiError:
    return ApiError(
        415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json"
    )


def internal_error() -> ApiError:
    # The traceback goes to the log, never to the caller.
    return ApiError(500, "internal_error", "an unexpected error; see the server log")


def is_json_media(content_type: str) -> bool:
    """What the framework parses as JSON (`application/json`, `application/*+json`).

    All of it needs a CORS preflight cross-site, which is what the CSRF rule relies on.
    """
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def send_error(send: Send, exc: ApiError) -> None:
    """Answer `exc` on a raw ASGI route."""
    extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in exc.headers]
    await send_json(send, exc.status, exc.body(), extra)


async def send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    """A complete JSON answer on a raw ASGI route: `body` is already encoded."""
    headers = [
        (b"content-type", JSON_MEDIA.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_response(exc: ApiError) -> Response:
    """Answer `exc` on a framework route."""
    return Response(
        exc.body(), status_code=exc.status, headers=dict(exc.headers), media_type=JSON_MEDIA
    )
