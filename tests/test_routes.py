"""One way in for every route: the method check (405 + `Allow`) and CORS, raw routes included."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support import PUBLISHER_KEY, Server, cookieless_client, make_token, serving

ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("routes"), {"TIDINGS_CORS_ORIGINS": ORIGIN}) as started:
        yield started


WRONG_METHODS = {
    # A fixed path is not taken for `/notifications/{seq}`: 405, not a 422 about `seq`.
    ("DELETE", "/notifications/unread-count"): "GET",
    ("DELETE", "/notifications/read"): "POST",
    ("DELETE", "/notifications/stream"): "GET",
    ("OPTIONS", "/notifications/session"): "DELETE, POST",
    ("PUT", "/notifications/7"): "DELETE",
    ("GET", "/api/notifications"): "POST",
    ("OPTIONS", "/api/notifications"): "POST",
    ("POST", "/notifications/stream"): "GET",
    ("PATCH", "/metrics"): "GET",
    ("DELETE", "/api/users/u1"): "GET, PUT",
    ("DELETE", "/notifications/unsubscribe"): "GET, POST",
    # Web Push: a fixed path, never `/notifications/{seq}`.
    ("GET", "/notifications/push-subscriptions"): "DELETE, POST",
    ("POST", "/notifications/push/key"): "GET",
}


@pytest.mark.parametrize(("method", "path"), WRONG_METHODS)
def test_a_wrong_method_is_405_with_the_routes_methods(
    server: Server, method: str, path: str
) -> None:
    with cookieless_client() as http:
        response = http.request(
            method,
            f"{server.url}{path}",
            headers={"authorization": f"Bearer {make_token('u')}"},
        )
    assert response.status_code == 405
    assert response.headers["allow"] == WRONG_METHODS[(method, path)]
    assert response.json() == {
        "error": "method_not_allowed",
        "detail": f"use {WRONG_METHODS[(method, path)]}",
    }


def test_a_cors_preflight_is_answered_for_the_raw_routes_too(server: Server) -> None:
    with cookieless_client() as http:
        for path, method in (("/notifications/stream", "GET"), ("/api/notifications", "POST")):
            response = http.options(
                f"{server.url}{path}",
                headers={
                    "origin": ORIGIN,
                    "access-control-request-method": method,
                    "access-control-request-headers": "authorization",
                },
            )
            assert response.status_code == 200, path
            assert response.headers["access-control-allow-origin"] == ORIGIN
            assert method in response.headers["access-control-allow-methods"]


def test_an_error_of_a_raw_route_carries_the_cors_headers(server: Server) -> None:
    with cookieless_client() as http:
        refused = http.get(f"{server.url}/notifications/stream", headers={"origin": ORIGIN})
        published = http.post(
            f"{server.url}/api/notifications",
            json={"user_id": "u", "message": "hello"},
            headers={"authorization": f"Bearer {PUBLISHER_KEY}", "origin": ORIGIN},
        )
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert refused.json()["error"] == "unauthorized"
    assert published.status_code == 201
    assert published.headers["access-control-allow-origin"] == ORIGIN
    assert published.headers["access-control-expose-headers"] == "link"


def test_the_schema_states_errors_bounds_and_media_types_as_answered(server: Server) -> None:
    with cookieless_client() as http:
        raw = http.get(f"{server.url}/openapi.json").text
    schema = json.loads(raw)
    # 2**63 - 1 exactly: FastAPI's model would turn it into the float 2**63.
    assert "e+18" not in raw
    assert '"maximum":9223372036854775807' in raw.replace(" ", "")
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/readyz":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
