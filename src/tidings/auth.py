"""Credentials: user tokens (HS256 JWT), publisher keys, and the CSRF rule for cookie sessions."""

from __future__ import annotations

import contextlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from starlette.requests import HTTPConnection

from tidings.settings import Settings
from tidings.validation import ApiError, check_user_id, is_unicode

__all__ = [
    "COOKIE_NAME",
    "UserCredential",
    "check_origin",
    "check_publisher",
    "mint_token",
    "read_user",
]

COOKIE_NAME = "tidings_session"
ALGORITHM = "HS256"
LEEWAY_SECONDS = 5
# 9999-12-31: an `exp` past this is treated as this (a float holds it; a datetime still does).
MAX_EXPIRY = 253402300799.0


@dataclass(frozen=True, slots=True)
class UserCredential:
    user_id: str
    expires_at: float  # unix seconds
    via_cookie: bool


def mint_token(secret: str, user_id: str, ttl: int) -> tuple[str, int]:
    # `iat` lets the bell renew at a share of the lifetime whatever the browser's clock says.
    now = int(time.time())
    expires = now + ttl
    token = jwt.encode({"sub": user_id, "iat": now, "exp": expires}, secret, algorithm=ALGORITHM)
    return token, expires


def decode_token(secret: str, token: str) -> tuple[str, float]:
    if not is_unicode(token):
        raise ApiError(401, "invalid_token", "the user token is not valid: not a JWT")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # PyJWT refuses a non-string `sub`; host apps commonly mint `"sub": 42`, accepted below.
            options={"require": ["sub", "exp"], "verify_sub": False},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "the user token has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise ApiError(401, "invalid_token", f"the user token has no {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:
        # A fixed sentence: the library's own text can quote the token (a codec error on a
        # megabyte of it), and says nothing a caller could act on.
        raise ApiError(401, "invalid_token", _why_invalid(exc)) from None
    sub = claims["sub"]
    if isinstance(sub, int) and not isinstance(sub, bool):
        sub = str(sub)
    if not isinstance(sub, str):
        raise ApiError(401, "invalid_token", "the token's 'sub' must be a string")
    try:
        user_id = check_user_id(sub)
    except ValueError as exc:
        raise ApiError(401, "invalid_token", f"the token's 'sub' is not a user id: {exc}") from None
    try:
        expires = float(claims["exp"])
    except OverflowError:
        # Far beyond any clock; the stream's expiry timer still wants a finite number.
        expires = MAX_EXPIRY
    return user_id, min(expires, MAX_EXPIRY)


_INVALID = (
    (jwt.InvalidSignatureError, "its signature does not match (signed with another secret?)"),
    (jwt.InvalidAlgorithmError, f"it must be signed with {ALGORITHM}"),
    (jwt.ImmatureSignatureError, "it is not valid yet (nbf or iat is in the future)"),
    (jwt.DecodeError, "not a well-formed JWT, or a claim of the wrong type"),
)


def _why_invalid(exc: jwt.InvalidTokenError) -> str:
    for kind, why in _INVALID:
        if isinstance(exc, kind):
            return f"the user token is not valid: {why}"
    return "the user token is not valid"


def read_user(conn: HTTPConnection, settings: Settings) -> UserCredential:
    """The caller's user credential: `Authorization: Bearer`, else the cookie, else (opt-in) query.

    The header wins because it is explicit: a page's stale session cookie (expired, or signed
    before a secret rotation) must not shadow the fresh token a caller sends on purpose.
    """
    token: str | None = None
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        token = value.strip()
    via_cookie = False
    if not token:
        token = conn.cookies.get(COOKIE_NAME)
        via_cookie = bool(token)
    if not token and "token" in conn.query_params:
        if not settings.allow_query_token:
            raise ApiError(
                401,
                "query_token_refused",
                "tokens in URLs are refused (they end up in logs); use the session cookie "
                "(POST /notifications/session) or set TIDINGS_ALLOW_QUERY_TOKEN=1",
            )
        token = conn.query_params["token"]
    if not token:
        raise ApiError(
            401,
            "unauthorized",
            "a user token is required: the tidings_session cookie or Authorization: Bearer",
        )
    user_id, expires = decode_token(settings.secret, token)
    return UserCredential(user_id=user_id, expires_at=expires, via_cookie=via_cookie)


def check_publisher(conn: HTTPConnection, settings: Settings) -> None:
    scheme, _, key = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized", "a publisher key is required: Authorization: Bearer")
    presented = key.strip().encode()
    # Compare against every key, so the time taken does not tell which one nearly matched.
    matched = False
    for candidate in settings.publisher_keys:
        matched |= hmac.compare_digest(presented, candidate.encode())
    if not matched:
        raise ApiError(403, "forbidden", "the publisher key is not valid")


def check_origin(conn: HTTPConnection, settings: Settings) -> None:
    """CSRF: a cookie-authenticated change must come from our own origin or an allowed one."""
    origin = conn.headers.get("origin")
    if origin is None:
        return  # not a browser cross-site request: browsers send Origin on every POST/DELETE
    if origin in settings.cors_origins:
        return
    with contextlib.suppress(ValueError):  # an Origin urlsplit cannot parse is no own origin
        if urlsplit(origin).netloc == conn.headers.get("host", ""):
            return
    raise ApiError(403, "forbidden_origin", f"requests from origin {origin!r} are not allowed")
