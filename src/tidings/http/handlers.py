"""Every error of the framework's routes answered as an `ApiError`, written as the raw routes
write theirs (`tidings.routes.serve_raw`): the same `{"error", "detail"}` bytes."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings.errors import (
    ApiError,
    error_response,
    internal_error,
    invalid_json,
    is_json_media,
    store_unavailable,
    unsupported_media_type,
)
from tidings.http.deps import check_credentials
from tidings.store import StoreUnavailable

__all__ = ["STATUS_CODES", "add_error_handlers"]

log = logging.getLogger("tidings.api")

# The framework's own HTTPExceptions (unknown path, an unreadable body) by status.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of the framework's routes as an `ApiError` (tidings.app: raw routes)."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def store_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreUnavailable)
        log.warning("store unavailable: %s", exc)
        return error_response(store_unavailable(exc))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # FastAPI parses the body before it runs the credential dependencies: a caller without
        # a valid credential learns that first, not what a valid body looks like. The checks
        # are those the route declared (tidings.http.deps), whatever its router or tag.
        try:
            check_credentials(request)
        except ApiError as refused:
            return error_response(refused)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(invalid_json())
        if not is_json_media(request.headers.get("content-type", "")) and any(
            tuple(e.get("loc", ())) == ("body",) for e in errors
        ):
            # `curl -d` sends a form content type; say what is wrong instead of "not an object".
            return error_response(unsupported_media_type())
        detail = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in errors
        ]
        return error_response(ApiError(422, "invalid_request", detail))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = STATUS_CODES.get(exc.status_code, "error")
        headers = (exc.headers or {}).items()
        return error_response(ApiError(exc.status_code, code, exc.detail, headers))

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(internal_error())

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StoreUnavailable, store_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
