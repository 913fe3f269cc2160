"""What a publisher may send, checked once for the HTTP API and the CLI alike."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from tidings.clock import now_ms
from tidings.errors import ApiError
from tidings.models import Action, Actor, Draft
from tidings.settings import Settings

__all__ = [
    "ActionIn",
    "ActorIn",
    "ApiError",
    "PublishIn",
    "WholeNumber",
    "check_muted",
    "check_user_id",
    "describe",
    "exactly_one",
    "is_unicode",
    "make_draft",
    "snooze_until_ms",
    "whole",
]

MAX_USER_ID_CHARS = 128
# Deeper data gains nothing and comes near the JSON libraries' recursion limits on the way out.
MAX_DATA_DEPTH = 32
LINK_RULE = "must be an http(s) URL or a path starting with /"
HOST_UNPARSABLE = "is not a valid URL: its host does not parse (a bracket, or NFKC changes it)"
# Buttons of one notification: what a bell row has room for (the contract says two).
MAX_ACTIONS = 2
# RFC 3339, the profile of ISO 8601 JSON Schema's `date-time` names: an offset is required, since
# a time without one means a different moment on every server.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    # What Python's isoformat() writes for a historic zone too: seconds in the offset.
    r"([Zz]|[+-]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
)
MIN_TIME_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp()) * 1000
MAX_TIME_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()) * 1000 + 999
TIME_RULE = "must be an ISO 8601 time with an offset, like 2026-12-01T09:00:00Z"


def whole(value: object) -> object:
    # JSON does not tell 3 from 3.0 (JSON Schema calls both integers): a whole float is that
    # integer. Strings and booleans stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer in JSON's sense: `3` or `3.0`, never `"3"` or `true`.
# With bounds: Annotated[int, Field(strict=True, ge=…), BeforeValidator(whole)] (this order, so
# the bounds stay in the JSON schema).
WholeNumber = Annotated[StrictInt, BeforeValidator(whole)]


class ActorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    avatar_url: StrictStr | None = None


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: StrictStr
    url: StrictStr


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: StrictStr | WholeNumber | None = None
    user_ids: list[StrictStr | WholeNumber] | None = None
    message: StrictStr
    link: StrictStr | None = None
    kind: StrictStr | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    category: StrictStr | None = None
    actor: ActorIn | None = None
    actions: list[ActionIn] | None = None
    group: StrictStr | None = None
    deliver_at: StrictStr | None = None
    expires_at: StrictStr | None = None
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


DAY_MS = 24 * 3600 * 1000
# `data` as JSON, refusing NaN and Infinity (one encoder for every publish, as `COMPACT`).
_STRICT: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def make_draft(body: PublishIn, settings: Settings, *, now: int | None = None) -> Draft:
    """The publish as a `Draft`; `now` (ms) is what `deliver_at`'s limit counts from."""
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
        problem = _link_problem(link)
        if problem is not None:
            raise _invalid("link", problem)

    kind = body.kind or None
    if kind is not None and _utf8_size("kind", kind) > settings.max_kind_bytes:
        raise _invalid("kind", f"at most {settings.max_kind_bytes} bytes (TIDINGS_MAX_KIND_BYTES)")

    if _depth(body.data) > MAX_DATA_DEPTH:
        raise _invalid("data", f"nests at most {MAX_DATA_DEPTH} levels deep")
    try:
        # NaN and Infinity parse in Python but are not JSON: a browser could not read them back.
        encoded = _STRICT.encode(body.data)
    except ValueError:
        raise _invalid("data", "must be JSON: NaN and Infinity are not allowed") from None
    if _utf8_size("data", encoded) > settings.max_data_bytes:
        raise _invalid(
            "data", f"at most {settings.max_data_bytes} bytes as JSON (TIDINGS_MAX_DATA_BYTES)"
        )

    if body.idempotency_key is not None:
        _utf8_size("idempotency_key", body.idempotency_key)

    category = _label("category", body.category, settings.max_category_bytes, "CATEGORY")
    group = _label("group", body.group, settings.max_group_bytes, "GROUP")
    actor = None
    if body.actor is not None:
        name = _label("actor.name", body.actor.name, settings.max_actor_name_bytes, "ACTOR_NAME")
        if name is None:
            raise _invalid("actor.name", "must not be empty")
        actor = Actor(
            name=name, avatar_url=_url("actor.avatar_url", body.actor.avatar_url, settings)
        )
    actions = tuple(_action(i, a, settings) for i, a in enumerate(body.actions or ()))
    if len(actions) > MAX_ACTIONS:
        raise _invalid("actions", f"at most {MAX_ACTIONS} actions")
    expires_ms = None if body.expires_at is None else _time_ms("expires_at", body.expires_at)
    deliver_ms = None
    # Empty means none (now), as for the labels: the schema admits it.
    if body.deliver_at:
        deliver_ms = _time_ms("deliver_at", body.deliver_at)
        ahead = settings.max_schedule_days
        if deliver_ms - (now_ms() if now is None else now) > ahead * DAY_MS:
            raise _invalid(
                "deliver_at", f"at most {ahead:g} days ahead (TIDINGS_MAX_SCHEDULE_DAYS)"
            )

    return Draft(
        user_ids=tuple(user_ids),
        message=message,
        link=link,
        kind=kind,
        data=body.data,
        category=category,
        actor=actor,
        actions=actions,
        group=group,
        expires_ms=expires_ms,
        deliver_ms=deliver_ms,
    )


def check_muted(categories: list[str], settings: Settings) -> tuple[str, ...]:
    """The categories a user mutes: each under the rules of `category`, no repeats."""
    if len(categories) > settings.max_muted_categories:
        raise ApiError(
            422,
            "invalid_preferences",
            {
                "field": "muted_categories",
                "problem": (
                    f"at most {settings.max_muted_categories} (TIDINGS_MAX_MUTED_CATEGORIES)"
                ),
            },
        )
    muted: dict[str, None] = {}
    for index, text in enumerate(categories):
        field = f"muted_categories[{index}]"
        limit = settings.max_category_bytes
        try:
            # In characters, as the schema says (JSON Schema cannot count bytes): one longer in
            # bytes than a category may be matches nothing, and costs at most 4 bytes a character.
            if len(text) > limit:
                raise _invalid(field, f"at most {limit} characters (TIDINGS_MAX_CATEGORY_BYTES)")
            category = _label(field, text, 4 * limit, "CATEGORY")
        except ApiError as exc:
            raise ApiError(422, "invalid_preferences", exc.detail) from None
        if category is None:
            raise ApiError(
                422, "invalid_preferences", {"field": field, "problem": "must not be empty"}
            )
        muted[category] = None
    return tuple(muted)


def _label(field: str, text: str | None, limit: int, setting: str) -> str | None:
    """A short text shown or matched as it is: not blank (empty means none), no control
    characters, at most `limit` bytes."""
    if not text:
        return None
    if not text.strip():
        raise _invalid(field, "must not be blank")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise _invalid(field, "must not contain control characters")
    if _utf8_size(field, text) > limit:
        raise _invalid(field, f"at most {limit} bytes (TIDINGS_MAX_{setting}_BYTES)")
    return text


def _url(field: str, url: str | None, settings: Settings) -> str | None:
    """A URL under the rules of `link` (empty means none)."""
    if not url:
        return None
    if _utf8_size(field, url) > settings.max_link_bytes:
        raise _invalid(field, f"at most {settings.max_link_bytes} bytes (TIDINGS_MAX_LINK_BYTES)")
    problem = _link_problem(url)
    if problem is not None:
        raise _invalid(field, problem)
    return url


def _action(index: int, action: ActionIn, settings: Settings) -> Action:
    field = f"actions[{index}]"
    label = _label(f"{field}.label", action.label, settings.max_action_label_bytes, "ACTION_LABEL")
    if label is None:
        raise _invalid(f"{field}.label", "must not be empty")
    url = _url(f"{field}.url", action.url, settings)
    if url is None:
        raise _invalid(f"{field}.url", "must not be empty")
    return Action(label=label, url=url)


def snooze_until_ms(text: str, settings: Settings, *, now: int) -> int:
    """`until` of a snooze: a time with an offset, in the future, at most
    `TIDINGS_MAX_SCHEDULE_DAYS` ahead."""

    def invalid(problem: str) -> ApiError:
        return ApiError(422, "invalid_request", {"field": "until", "problem": problem})

    try:
        until = _time_ms("until", text)
    except ApiError as exc:
        detail = exc.detail
        raise invalid(detail["problem"] if isinstance(detail, dict) else TIME_RULE) from None
    if until <= now:
        raise invalid("must be in the future")
    ahead = settings.max_schedule_days
    if until - now > ahead * DAY_MS:
        raise invalid(f"at most {ahead:g} days ahead (TIDINGS_MAX_SCHEDULE_DAYS)")
    return until


def _time_ms(field: str, text: str) -> int:
    """An RFC 3339 time as ms since the epoch."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise _invalid(field, TIME_RULE)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        # A leap second (:60) counts as the end of :59: Python's datetime has no 60.
        local = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),
            tzinfo=UTC,
        )
    except ValueError:
        raise _invalid(field, f"{TIME_RULE} (and a real date)") from None
    shift = 0
    if offset not in ("Z", "z"):
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        seconds = float(offset[7:] or 0)
        if hours > 23 or minutes > 59 or seconds >= 60:
            raise _invalid(field, f"{TIME_RULE} (and a real offset)")
        sign = 1 if offset[0] == "+" else -1
        shift = sign * (((hours * 60 + minutes) * 60_000) + int(seconds * 1000))
    ms = int(local.timestamp()) * 1000 + int((fraction or ".0")[1:4].ljust(3, "0")) - shift
    # An offset can move year 1 or 9999 out of what the API can write back; so close to either
    # end, the nearest time that can be written is the same for any purpose.
    return min(max(ms, MIN_TIME_MS), MAX_TIME_MS)


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


def _link_problem(link: str) -> str | None:
    """Why `link` is not a link a browser could follow safely, or None when it is one."""
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in link):
        return LINK_RULE
    # Browsers read a backslash as "/" in http(s) URLs: "/\evil.example" goes to evil.example.
    if "\\" in link:
        return LINK_RULE
    try:
        parts = urlsplit(link)
    except ValueError:
        # Unbalanced brackets ("http://[x", "http://a]b/") or a host that NFKC changes.
        return HOST_UNPARSABLE
    try:
        port = parts.port  # reading it checks it: "http://a:b/" and "http://a:99999/" raise
    except ValueError:
        return "is not a valid URL: its port is not a number from 1 to 65535"
    if not parts.scheme:
        # A root-relative path on the host app's own site; "//host" would be another site.
        if link.startswith("/") and not link.startswith("//"):
            return None
        return LINK_RULE
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return LINK_RULE
    if port == 0:
        return "is not a valid URL: its port is not a number from 1 to 65535"
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(parts.hostname)
        except ValueError:
            return HOST_UNPARSABLE
    elif not parts.hostname.isascii():
        try:
            # What a browser does with an international name; a host it cannot encode
            # (an empty or over-long label, a forbidden character) leads nowhere.
            parts.hostname.encode("idna")
        except UnicodeError:
            return "is not a valid URL: its host is not a valid international domain name"
    return None


# --- the same rules, as /openapi.json states them ------------------------------------------------

# Neither NUL nor any other control character (what `check_user_id` refuses).
_USER_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
_NO_NUL = r"^[^\x00]*$"
# What `str.strip()` strips (`str.isspace()`), spelled out: `\s` means less in JSON Schema's
# regular expressions (ECMA-262), which leave out \x1c-\x1f and \x85.
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# At least one character that is neither space nor NUL, and no NUL.
_NOT_BLANK = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"
# 1 to 65535 (leading zeros allowed, as the URL parser reads them), or nothing.
_PORT = (
    r"(?:0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
    r"|655[0-2][0-9]|6553[0-5]))?"
)
# What `_link_problem` accepts, narrowed where a URL parser is stricter than the rule (the host).
_LINK_PATTERN = (
    r"^(?:/(?:[^/\x00-\x20\x7f\\][^\x00-\x20\x7f\\]*)?"
    r"|[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::" + _PORT + r")?(?:[/?#][^\x00-\x20\x7f\\]*)?)?$"
)
# The same, not empty (an action's `url`).
_URL_PATTERN = _LINK_PATTERN.removesuffix(")?$") + ")$"
# What `_label` accepts: no control character, not blank; empty (none) where it is optional.
_LABEL = r"[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]*"
_LABEL_PATTERN = f"^{_LABEL}$"
_OPTIONAL_LABEL_PATTERN = f"^(?:{_LABEL})?$"


def _user_id_schema() -> dict[str, Any]:
    return {
        "anyOf": [
            {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_USER_ID_CHARS,
                "pattern": _USER_ID_PATTERN,
            },
            # Its decimal string is the user id: at most MAX_USER_ID_CHARS digits and sign.
            {
                "type": "integer",
                "minimum": -(10 ** (MAX_USER_ID_CHARS - 1) - 1),
                "maximum": 10**MAX_USER_ID_CHARS - 1,
            },
        ]
    }


def _text(max_bytes: int, pattern: str, description: str) -> dict[str, Any]:
    """A string limited in bytes of UTF-8: `maxLength` (characters) holds, and the format says
    the rest (`utf8-max-N`: at most N bytes), which JSON Schema cannot count."""
    return {
        "type": "string",
        "description": f"{description}; at most {max_bytes} bytes of UTF-8",
        "format": f"utf8-max-{max_bytes}",
        "maxLength": max_bytes,
        "pattern": pattern,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def exactly_one(first: str, second: str) -> dict[str, Any]:
    """JSON schema for: one of the two properties is given (not null), the other not."""

    def given(name: str, other: str) -> dict[str, Any]:
        return {
            "required": [name],
            "properties": {name: {"not": {"type": "null"}}, other: {"type": "null"}},
        }

    return {"oneOf": [given(first, second), given(second, first)]}


def describe(schemas: dict[str, Any], settings: Settings) -> None:
    """Write the rules `make_draft` and the token route check into the models' JSON schemas.

    Pydantic sees the types only; the limits come from the running settings. The byte limits
    appear as `maxLength`, which counts characters: the description says which is meant.
    """
    publish = schemas["PublishIn"]
    props = publish["properties"]
    props["user_id"] = _nullable(_user_id_schema())
    props["user_ids"] = _nullable(
        {
            "type": "array",
            "items": _user_id_schema(),
            "minItems": 1,
            "maxItems": settings.max_user_ids,
        }
    )
    props["message"] = _text(settings.max_message_bytes, _NOT_BLANK, "not blank, no NUL")
    props["link"] = _nullable(
        _text(settings.max_link_bytes, _LINK_PATTERN, "an http(s) URL or a path starting with /")
    )
    props["kind"] = _nullable(_text(settings.max_kind_bytes, _NO_NUL, "a label, no NUL"))
    label = "a label: not blank, no control characters; empty means none"
    props["category"] = _nullable(
        _text(settings.max_category_bytes, _OPTIONAL_LABEL_PATTERN, f"a tab of the bell, {label}")
    )
    props["group"] = _nullable(
        _text(settings.max_group_bytes, _OPTIONAL_LABEL_PATTERN, f"a collapse key, {label}")
    )
    props["actions"] = _nullable(
        {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ActionIn"},
            "maxItems": MAX_ACTIONS,
        }
    )
    props["expires_at"] = _nullable(
        {"type": "string", "format": "date-time", "description": "ISO 8601 time with an offset"}
    )
    # Not `date-time`: the limit counts from now, which JSON Schema cannot say. The format names
    # it (`date-time-max-N-days`: a date-time at most N days from now) as `utf8-max-N` does.
    days = f"{settings.max_schedule_days:g}"
    props["deliver_at"] = _nullable(
        {
            "type": "string",
            "format": f"date-time-max-{days}-days",
            # The format is ours: a client that does not know it still sees the shape.
            "pattern": f"^(?:{_DATE_TIME.pattern})?$",
            "description": (
                f"ISO 8601 time with an offset, at most {days} days from now. In the future: "
                "answered 202 and delivered then; otherwise (or empty) published now"
            ),
        }
    )
    link_rule = "an http(s) URL or a path starting with /"
    actor = schemas["ActorIn"]["properties"]
    actor["name"] = _text(
        settings.max_actor_name_bytes, _LABEL_PATTERN, "not blank, no control characters"
    )
    actor["avatar_url"] = _nullable(
        _text(settings.max_link_bytes, _LINK_PATTERN, f"{link_rule}; empty means none")
    )
    action = schemas["ActionIn"]["properties"]
    action["label"] = _text(
        settings.max_action_label_bytes, _LABEL_PATTERN, "not blank, no control characters"
    )
    action["url"] = _text(settings.max_link_bytes, _URL_PATTERN, link_rule)
    key = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _NO_NUL}
    props["idempotency_key"] = _nullable(key)
    props["data"]["description"] = (
        f"at most {settings.max_data_bytes} bytes as JSON, nested at most {MAX_DATA_DEPTH} deep"
    )
    publish.update(exactly_one("user_id", "user_ids"))
    preferences = schemas.get("PreferencesIn")
    if preferences is not None:
        # Characters, not bytes, as JSON Schema counts: a muted entry longer in bytes than a
        # category can be matches no notification, and is harmless.
        item = {
            "type": "string",
            "description": f"a category; at most {settings.max_category_bytes} characters",
            "maxLength": settings.max_category_bytes,
            "pattern": _LABEL_PATTERN,
        }
        preferences["properties"]["muted_categories"].update(
            items=item, maxItems=settings.max_muted_categories
        )
    token = schemas.get("TokenIn")
    if token is not None:
        token["properties"]["user_id"] = _user_id_schema()
        token["properties"]["ttl"]["maximum"] = settings.max_token_ttl
