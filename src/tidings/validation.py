"""What a publisher may send, checked once for the HTTP API and the CLI alike."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from tidings.errors import ApiError
from tidings.models import Draft
from tidings.settings import Settings

__all__ = ["ApiError", "PublishIn", "check_user_id", "is_unicode", "make_draft"]

MAX_USER_ID_CHARS = 128
# Deeper data gains nothing and comes near the JSON libraries' recursion limits on the way out.
MAX_DATA_DEPTH = 32


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: StrictStr | StrictInt | None = None
    user_ids: list[StrictStr | StrictInt] | None = None
    message: StrictStr
    link: StrictStr | None = None
    kind: StrictStr | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: StrictStr | None = Field(default=None, min_length=1, max_length=200)


def check_user_id(raw: str | int) -> str:
    """User ids are opaque strings of 1–128 characters; integers become their decimal string."""
    value = str(raw)
    if not value:
        raise ValueError("a user id must not be empty")
    if len(value) > MAX_USER_ID_CHARS:
        raise ValueError(f"a user id has at most {MAX_USER_ID_CHARS} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("a user id must not contain control characters")
    if not is_unicode(value):
        raise ValueError("a user id must be valid Unicode (it has a lone surrogate)")
    return value


def is_unicode(value: str) -> bool:
    """False for a string with lone surrogates: JSON can escape them, UTF-8 cannot hold them."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _utf8_size(field: str, value: str) -> int:
    try:
        return len(value.encode())
    except UnicodeEncodeError:
        raise _invalid(field, "must be valid Unicode (it has a lone surrogate)") from None


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError(422, "invalid_notification", {"field": field, "problem": problem})


def make_draft(body: PublishIn, settings: Settings) -> Draft:
    if (body.user_id is None) == (body.user_ids is None):
        raise _invalid("user_id", "give exactly one of user_id or user_ids")
    raw_ids: list[str | int] = [body.user_id] if body.user_id is not None else body.user_ids or []
    if not raw_ids:
        raise _invalid("user_ids", "must not be empty")
    if len(raw_ids) > settings.max_user_ids:
        raise _invalid(
            "user_ids", f"at most {settings.max_user_ids} users per call (TIDINGS_MAX_USER_IDS)"
        )
    user_ids: dict[str, None] = {}
    for raw in raw_ids:
        try:
            user_ids[check_user_id(raw)] = None
        except ValueError as exc:
            raise _invalid("user_id", str(exc)) from None

    message = body.message
    if not message.strip():
        raise _invalid("message", "must not be empty")
    # NUL is valid JSON but no text column of PostgreSQL can hold it, and no page shows it.
    for field, text in (
        ("message", message),
        ("kind", body.kind),
        ("idempotency_key", body.idempotency_key),
    ):
        if text is not None and "\x00" in text:
            raise _invalid(field, "must not contain NUL (\\u0000) characters")
    if _utf8_size("message", message) > settings.max_message_bytes:
        raise _invalid(
            "message", f"at most {settings.max_message_bytes} bytes (TIDINGS_MAX_MESSAGE_BYTES)"
        )

    link = body.link or None
    if link is not None:
        if _utf8_size("link", link) > settings.max_link_bytes:
            raise _invalid(
                "link", f"at most {settings.max_link_bytes} bytes (TIDINGS_MAX_LINK_BYTES)"
            )
        if not _safe_link(link):
            raise _invalid("link", "must be an http(s) URL or a path starting with /")

    kind = body.kind or None
    if kind is not None and _utf8_size("kind", kind) > settings.max_kind_bytes:
        raise _invalid("kind", f"at most {settings.max_kind_bytes} bytes (TIDINGS_MAX_KIND_BYTES)")

    if _depth(body.data) > MAX_DATA_DEPTH:
        raise _invalid("data", f"nests at most {MAX_DATA_DEPTH} levels deep")
    try:
        # NaN and Infinity parse in Python but are not JSON: a browser could not read them back.
        encoded = json.dumps(body.data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise _invalid("data", "must be JSON: NaN and Infinity are not allowed") from None
    if _utf8_size("data", encoded) > settings.max_data_bytes:
        raise _invalid(
            "data", f"at most {settings.max_data_bytes} bytes as JSON (TIDINGS_MAX_DATA_BYTES)"
        )

    if body.idempotency_key is not None:
        _utf8_size("idempotency_key", body.idempotency_key)

    return Draft(user_ids=tuple(user_ids), message=message, link=link, kind=kind, data=body.data)


def _depth(value: object) -> int:
    """How deeply `value` nests, iteratively: a deep value must not exhaust Python's stack."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DATA_DEPTH:
            return deepest
        if isinstance(item, dict):
            pending.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, level + 1) for child in item)
    return deepest


def _safe_link(link: str) -> bool:
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in link):
        return False
    # Browsers read a backslash as "/" in http(s) URLs: "/\evil.example" goes to evil.example.
    if "\\" in link:
        return False
    parts = urlsplit(link)
    if parts.scheme:
        return parts.scheme.lower() in {"http", "https"} and bool(parts.netloc)
    # A root-relative path on the host app's own site; "//host" would be another site.
    return link.startswith("/") and not link.startswith("//")
