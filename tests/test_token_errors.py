"""A refused user token is answered with a fixed sentence, never the JWT library's own text.

The library's messages can quote the token back (a codec error on a megabyte of it) and mean
nothing to a caller.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.support import Server, cookieless_client, make_token, serving

# Every detail a bad token may get: a short, fixed sentence each.
FIXED = {
    "the user token is not valid: not a JWT",
    "the user token is not valid: not a well-formed JWT, or a claim of the wrong type",
    "the user token is not valid: its signature does not match (signed with another secret?)",
    "the user token is not valid: it must be signed with HS256",
    "the user token is not valid: it is not valid yet (nbf or iat is in the future)",
    "the user token is not valid",
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _header(value: dict[str, str]) -> str:
    return _b64(json.dumps(value).encode())


def _token(header: bytes, payload: bytes) -> str:
    return f"{_b64(header)}.{_b64(payload)}.{_b64(b'x')}"


BAD = {
    # A megabyte of bytes that are not UTF-8 once decoded: PyJWT's codec error quotes them.
    "megabyte": _token(b"\xff" * 786_432, b"{}"),
    "header not utf-8": _token(b"\xfe\xff", b"{}"),
    "bad padding": "a.b.c",
    "payload not json": f"{_header({'alg': 'HS256'})}.{_b64(b'[1')}.{_b64(b'x')}",
    "signed elsewhere": make_token("u", secret="another-secret-0123456789-abcdefghijk"),
    "not yet valid": make_token("u", nbf=4102444800),
    "four parts": "a.b.c.d",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("token-errors")) as started:
        yield started


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_token_gets_a_fixed_short_detail(server: Server, kind: str) -> None:
    token = BAD[kind]
    with cookieless_client() as http:
        # In a body (a session), where a megabyte fits; the header route gets the same answer.
        response = http.post(f"{server.url}/notifications/session", json={"token": token})
        assert response.status_code == 401
        body = response.json()
        assert body["error"] == "invalid_token"
        assert body["detail"] in FIXED, body["detail"]
        if len(token) < 8000:
            again = http.get(
                f"{server.url}/notifications", headers={"authorization": f"Bearer {token}"}
            )
            assert again.status_code == 401
            assert again.json() == body
