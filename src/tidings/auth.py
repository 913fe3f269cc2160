"""Credentials: user tokens (HS256 JWT), publisher keys, and the CSRF rule for cookie sessions."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_decode
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


# The secret's HMAC state, keyed once (None: a secret PyJWT refuses or warns about, left to it).
_KEYED: dict[str, hmac.HMAC | None] = {}
# Header segments already seen to be {"alg": "HS256"} with at most a string `typ`.
_PLAIN_HEADERS: dict[bytes, bool] = {}
_CLAIMS_CHECKED_BY_PYJWT = ("aud", "jti")


def _keyed(secret: str) -> hmac.HMAC | None:
    if secret not in _KEYED:
        algorithm = HMACAlgorithm(HMACAlgorithm.SHA256)
        keyed: hmac.HMAC | None = None
        try:
            key = algorithm.prepare_key(secret)
            if not algorithm.check_key_length(key):
                keyed = hmac.new(key, digestmod=hashlib.sha256)
        except jwt.InvalidKeyError:
            pass
        if len(_KEYED) > 8:  # a few secrets per process at most
            _KEYED.clear()
        _KEYED[secret] = keyed
    return _KEYED[secret]


def _plain_header(segment: bytes) -> bool:
    plain = _PLAIN_HEADERS.get(segment)
    if plain is None:
        try:
            header = json.loads(base64url_decode(segment))
        except (ValueError, RecursionError):
            header = None
        plain = (
            isinstance(header, dict)
            and header.get("alg") == ALGORITHM
            and set(header) <= {"alg", "typ"}
            and isinstance(header.get("typ", ""), str)
        )
        if len(_PLAIN_HEADERS) > 64:  # minted by one or two libraries in practice
            _PLAIN_HEADERS.clear()
        _PLAIN_HEADERS[segment] = plain
    return plain


def _claims_if_plain(secret: str, token: str) -> dict[str, object] | None:
    """The claims of a plain, valid HS256 token, checked as `jwt.decode` below checks them, in
    a fraction of its time; None for anything else, which then takes PyJWT's path (and gets its
    error). PyJWT prepares the key anew for every token (a JSON parse and two DER loads of the
    secret, to refuse asymmetric keys) and decodes the header each time: a third of a
    reconnect's token check, and the token check a sixth of a reconnect storm's CPU.

    Only a subset of what PyJWT accepts passes here: a header of `alg` HS256 and at most `typ`,
    a matching signature, a JSON object payload with `sub` and a numeric `exp` in the future,
    `iat` and `nbf` (if any) numeric and not in the future, no `aud`, no `jti`. The same leeway.
    """
    keyed = _keyed(secret)
    if keyed is None:
        return None
    raw = token.encode()
    signing_input, _, signature = raw.rpartition(b".")
    header, dot, payload = signing_input.partition(b".")
    if not dot or b"." in payload or not _plain_header(header):
        return None
    try:
        mac = keyed.copy()
        mac.update(signing_input)
        if not hmac.compare_digest(mac.digest(), base64url_decode(signature)):
            return None
        claims = json.loads(base64url_decode(payload))
    except (ValueError, RecursionError):
        return None
    if not isinstance(claims, dict) or any(c in claims for c in _CLAIMS_CHECKED_BY_PYJWT):
        return None
    now = time.time()
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if value is None:
            if name == "exp":
                return None
            continue
        if type(value) not in (int, float) or value != value or abs(value) > MAX_EXPIRY:
            return None
        if name == "exp" and int(value) <= now - LEEWAY_SECONDS:
            return None
        if name != "exp" and int(value) > now + LEEWAY_SECONDS:
            return None
    if claims.get("sub") is None:
        return None
    return claims


def decode_token(secret: str, token: str) -> tuple[str, float]:
    if not is_unicode(token):
        raise ApiError(401, "invalid_token", "the user token is not valid: not a JWT")
    claims = _claims_if_plain(secret, token)
    if claims is None:
        claims = _decode_with_pyjwt(secret, token)
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
        expires = float(claims["exp"])  # type: ignore[arg-type]
    except OverflowError:
        # Far beyond any clock; the stream's expiry timer still wants a finite number.
        expires = MAX_EXPIRY
    return user_id, min(expires, MAX_EXPIRY)


def _decode_with_pyjwt(secret: str, token: str) -> dict[str, object]:
    try:
        claims: dict[str, object] = jwt.decode(
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
    return claims


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
