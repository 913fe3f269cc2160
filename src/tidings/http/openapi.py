"""Everything tidings adds to the schema FastAPI generates, in one place: the error shape every
error answer refers to, exact integer bounds, the raw routes' operations, and the running limits
(each module that owns a rule describes it: `validation.describe`, and the `describe` of the
email and snooze routes; `install` calls them all).

A route's own entry (its `responses`, its security scheme from the credential dependency it
declares) is written where the route is; the error schema and `error_responses` are in
`tidings.errors`, beside the error type they describe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI

from tidings.errors import ERROR_SCHEMA, error_responses
from tidings.http.schemas import MAX_SEQ
from tidings.routes import RawRoute
from tidings.settings import Settings

__all__ = ["Describe", "document", "install", "raw_openapi"]

# Puts a running limit (a setting) into the component schemas.
Describe = Callable[[dict[str, Any], Settings], None]


def install(
    api: FastAPI, settings: Settings, raw: Sequence[RawRoute], describers: Iterable[Describe]
) -> None:
    """Make `api.openapi()` answer the whole schema: FastAPI's, then everything added here."""
    original = api.openapi
    describers = tuple(describers)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = document(original())
            raw_openapi(raw, schema)
            for describe in describers:
                describe(schema["components"]["schemas"], settings)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated schema, with the error shape every error answer refers to."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    _integer_bounds(schema)
    return schema


# FastAPI's OpenAPI model holds `maximum` as a float, which turns 2**63 - 1 into 2**63.
_EXACT_BOUNDS = {float(MAX_SEQ): MAX_SEQ, float(-MAX_SEQ): -MAX_SEQ}


def _integer_bounds(node: object) -> None:
    """Give every integer's bounds back as exact integers."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
                value = node.get(key)
                if isinstance(value, float):
                    node[key] = _EXACT_BOUNDS.get(value, int(value))
        for child in node.values():
            _integer_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _integer_bounds(child)


def raw_openapi(routes: Iterable[RawRoute], schema: dict[str, Any]) -> None:
    """Add each raw route's operation to a schema FastAPI generated for its own routes."""
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    for route in routes:
        responses: dict[str, Any] = {}
        for status, (description, media, body_schema) in route.answers.items():
            content = {media: {} if body_schema is None else {"schema": body_schema}}
            responses[str(status)] = {"description": description, "content": content}
        responses.update({str(k): v for k, v in error_responses(route.errors).items()})
        operation: dict[str, Any] = {
            "tags": [route.tag],
            "summary": route.summary,
            "description": route.description,
            "operationId": f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}",
            "responses": responses,
            "security": [{route.security: []}],
        }
        if route.parameters:
            operation["parameters"] = [dict(p) for p in route.parameters]
        if route.body is not None:
            name = route.body.__name__
            model = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model.pop("$defs", {}))
            components[name] = model
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
        schema["paths"][route.path] = {route.method.lower(): operation}
