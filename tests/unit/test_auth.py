"""User tokens and where they are read from: the 401 a caller gets, and which credential wins."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt
import pytest
from starlette.requests import HTTPConnection

from tests.support import SECRET, make_token
from tests.unit.conftest import unit_settings
from tidings import auth
from tidings.auth import COOKIE_NAME, decode_token, mint_token, read_user
from tidings.validation import ApiError

OTHER_SECRET = "another-secret-0123456789-abcdefghijk"


def refusal(secret: str, token: str) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as caught:
        decode_token(secret, token)
    return caught.value.status, caught.value.error, str(caught.value.detail)


def test_a_minted_token_names_its_user_and_expiry() -> None:
    token, expires = mint_token(SECRET, "ann", ttl=60)
    assert decode_token(SECRET, token) == ("ann", float(expires))
    assert time.time() + 55 < expires <= time.time() + 60


def test_an_expired_token_is_token_expired() -> None:
    assert refusal(SECRET, make_token("ann", ttl=-60))[:2] == (401, "token_expired")


def test_a_token_a_few_seconds_past_its_expiry_is_still_accepted() -> None:
    # Clocks between the host app and tidings differ a little.
    assert decode_token(SECRET, make_token("ann", ttl=-2))[0] == "ann"


def test_a_token_signed_with_another_secret_is_invalid() -> None:
    assert refusal(SECRET, make_token("ann", secret=OTHER_SECRET))[:2] == (401, "invalid_token")


@pytest.mark.parametrize("claim", ["sub", "exp"])
def test_a_token_without_sub_or_exp_names_the_missing_claim(claim: str) -> None:
    claims = {"sub": "ann", "exp": int(time.time()) + 60}
    del claims[claim]
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    status, error, detail = refusal(SECRET, token)
    assert (status, error) == (401, "invalid_token")
    assert repr(claim) in detail


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("not-a-jwt", "not valid"),
        ("", "not valid"),
        ("a.b\ud800.c", "not a JWT"),
        (jwt.encode({"sub": "ann", "exp": 2**40}, SECRET * 2, algorithm="HS512"), "not valid"),
        (make_token(True), "must be a string"),  # type: ignore[arg-type]
        (make_token(["ann"]), "must be a string"),  # type: ignore[arg-type]
        (make_token(""), "not a user id"),
        (make_token("x" * 129), "not a user id"),
    ],
    ids=[
        "garbage",
        "empty",
        "surrogate",
        "other-algorithm",
        "bool-sub",
        "list-sub",
        "empty-sub",
        "long-sub",
    ],
)
def test_a_token_that_is_not_ours_is_invalid_with_a_reason(token: str, words: str) -> None:
    status, error, detail = refusal(SECRET, token)
    assert (status, error) == (401, "invalid_token")
    assert words in detail


def test_an_integer_sub_is_that_users_decimal_string() -> None:
    assert decode_token(SECRET, make_token(42))[0] == "42"  # type: ignore[arg-type]


def test_an_expiry_beyond_any_clock_is_capped_not_an_error() -> None:
    token = jwt.encode({"sub": "ann", "exp": 10**30}, SECRET, algorithm="HS256")
    user, expires = decode_token(SECRET, token)
    assert user == "ann"
    assert expires == 253402300799.0


# --- where the token is read from ---------------------------------------------------------------


def connection(
    *, bearer: str | None = None, cookie: str | None = None, query: str = ""
) -> HTTPConnection:
    headers: list[tuple[bytes, bytes]] = []
    if bearer is not None:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    if cookie is not None:
        headers.append((b"cookie", f"{COOKIE_NAME}={cookie}".encode()))
    return HTTPConnection(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": headers,
            "query_string": query.encode(),
        }
    )


def test_the_bearer_header_wins_over_a_stale_cookie() -> None:
    stale = make_token("old-session", secret=OTHER_SECRET)
    user = read_user(connection(bearer=make_token("ann"), cookie=stale), unit_settings())
    assert (user.user_id, user.via_cookie) == ("ann", False)


def test_the_cookie_is_used_without_a_header() -> None:
    user = read_user(connection(cookie=make_token("ann")), unit_settings())
    assert (user.user_id, user.via_cookie) == ("ann", True)


def test_an_empty_bearer_falls_back_to_the_cookie() -> None:
    user = read_user(connection(bearer=" ", cookie=make_token("ann")), unit_settings())
    assert user.user_id == "ann"


def test_no_credential_is_unauthorized() -> None:
    with pytest.raises(ApiError) as caught:
        read_user(connection(), unit_settings())
    assert (caught.value.status, caught.value.error) == (401, "unauthorized")


def test_a_token_in_the_url_is_refused_unless_allowed() -> None:
    query = f"token={make_token('ann')}"
    with pytest.raises(ApiError) as caught:
        read_user(connection(query=query), unit_settings())
    assert (caught.value.status, caught.value.error) == (401, "query_token_refused")
    assert "TIDINGS_ALLOW_QUERY_TOKEN" in str(caught.value.detail)
    user = read_user(connection(query=query), unit_settings(allow_query_token=True))
    assert user.user_id == "ann"


def test_the_token_expiry_travels_with_the_user() -> None:
    token, expires = mint_token(SECRET, "ann", ttl=120)
    user = read_user(connection(bearer=token), unit_settings())
    assert user.expires_at == expires


def test_every_minted_token_carries_iat() -> None:
    # The bell renews at a share of exp - iat, whatever the browser's clock says: the server's
    # tokens (POST /api/tokens, `tidings token`) and the Python client's carry it.
    from tidings.client import mint_token as client_mint

    server_token, _ = mint_token(SECRET, "u1", 600)
    for token in (server_token, client_mint(SECRET, "u1", 600)):
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        assert claims["exp"] - claims["iat"] == 600
        assert abs(claims["iat"] - time.time()) < 5


# --- the plain-token path (auth._claims_if_plain) decides as PyJWT does ---------------------------


def _signed(claims: dict[str, object], key: str = SECRET, **header: object) -> str:
    """Signed by hand: PyJWT would refuse to write some of these headers."""
    header = {"alg": "HS256", "typ": "JWT", **header}
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[str(header["alg"])]
    head, body = (jwt.utils.base64url_encode(json.dumps(x).encode()) for x in (header, claims))
    signature = hmac.new(key.encode(), head + b"." + body, digest).digest()
    return b".".join((head, body, jwt.utils.base64url_encode(signature))).decode()


def _tokens() -> list[tuple[str, str]]:
    now = int(time.time())
    good = {"sub": "ann", "iat": now, "exp": now + 60}
    plain = _signed(good)
    head, payload, signature = plain.split(".")
    unsigned = jwt.utils.base64url_encode(b'{"alg":"none"}').decode()
    array = jwt.utils.base64url_encode(b"[1]").decode()
    return [
        ("plain", plain),
        ("float times", _signed({"sub": "ann", "iat": now + 0.5, "exp": now + 60.5})),
        ("integer sub", _signed({"sub": 42, "exp": now + 60})),
        ("boolean sub", _signed({"sub": True, "exp": now + 60})),
        ("sub not a user id", _signed({"sub": "a b\n", "exp": now + 60})),
        ("no iat", _signed({"sub": "ann", "exp": now + 60})),
        ("expired", _signed({"sub": "ann", "exp": now - 60})),
        ("expired within the leeway", _signed({"sub": "ann", "exp": now - 2})),
        ("iat ahead", _signed({"sub": "ann", "iat": now + 100, "exp": now + 600})),
        ("iat ahead within the leeway", _signed({"sub": "ann", "iat": now + 3, "exp": now + 60})),
        ("nbf ahead", _signed({"sub": "ann", "nbf": now + 100, "exp": now + 600})),
        ("nbf a string", _signed({"sub": "ann", "nbf": "soon", "exp": now + 600})),
        ("exp a numeric string", _signed({"sub": "ann", "exp": str(now + 60)})),
        ("exp a boolean", _signed({"sub": "ann", "exp": True})),
        ("exp beyond any clock", _signed({"sub": "ann", "exp": 10**30})),
        ("exp null", _signed({"sub": "ann", "exp": None})),
        ("no sub", _signed({"exp": now + 60})),
        ("sub null", _signed({"sub": None, "exp": now + 60})),
        ("other claims", _signed({**good, "name": "Ann", "iss": "app", "roles": [1]})),
        ("aud", _signed({**good, "aud": "app"})),
        ("jti a number", _signed({**good, "jti": 7})),
        ("jti a string", _signed({**good, "jti": "x"})),
        ("kid", _signed(good, kid="k1")),
        ("kid a number", _signed(good, kid=1)),
        ("typ other", _signed(good, typ="at+jwt")),
        ("crit", _signed(good, crit=["exp"])),
        ("HS512", _signed(good, alg="HS512")),
        ("another secret", _signed(good, key="another-secret-0123456789-abcdefghijk")),
        ("alg none", f"{unsigned}.{payload}."),
        ("payload not an object", f"{head}.{array}.{signature}"),
        ("tampered payload", f"{head}.{payload[:-2]}AA.{signature}"),
        ("tampered signature", f"{head}.{payload}.{signature[:-2]}AA"),
        ("no signature", f"{head}.{payload}."),
        ("four segments", f"{head}.{payload}.{signature}.{signature}"),
        ("a dot inside", f"{head}.{payload[:4]}.{payload[4:]}.{signature}"),
        ("two segments", f"{head}.{payload}"),
        ("not base64", f"{head}.{payload}.***"),
        ("empty", ""),
        ("text", "not a token"),
    ]


def _outcome(token: str) -> object:
    try:
        return decode_token(SECRET, token)
    except ApiError as exc:
        return (exc.status, exc.error, str(exc.detail))


@pytest.mark.parametrize(("name", "token"), _tokens(), ids=[name for name, _ in _tokens()])
def test_the_plain_token_path_decides_as_pyjwt_does(
    name: str, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _outcome(token)
    monkeypatch.setattr(auth, "_claims_if_plain", lambda secret, token: None)
    assert fast == _outcome(token), name


def test_a_plain_token_takes_the_short_path_and_others_do_not() -> None:
    now = int(time.time())
    assert auth._claims_if_plain(SECRET, make_token("ann")) is not None
    assert auth._claims_if_plain(SECRET, mint_token(SECRET, "bob", 60)[0]) is not None
    assert auth._claims_if_plain(SECRET, _signed({"sub": "ann", "exp": now - 60})) is None
    assert auth._claims_if_plain(OTHER_SECRET, make_token("ann")) is None
    # A secret PyJWT refuses as an HMAC key is left to PyJWT, every time.
    pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
    assert auth._claims_if_plain(pem, _signed({"sub": "ann", "exp": now + 60}, key=pem)) is None
