"""The OpenAPI document, built from the route table and its types so it never drifts.

Request bodies, query parameters with their constraints, every reply by status, and the
role each operation needs (as the bearer scheme's scope) all come from the table
(:mod:`.routes`) and the msgspec types it names; msgspec writes the JSON Schemas.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

import msgspec
import orjson

from . import __version__, openapi_links
from .api.contract import Body, ErrorBody, Media, Query, RouteLike, all_replies

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_WORD = re.compile(r"\W+")
_REF = "#/components/schemas/{name}"
_BINARY = {"type": "string", "format": "binary"}


class Document:
    """``/openapi.json``'s bytes, built on first use (not at start: that costs startup)."""

    def __init__(self, routes: Iterable[RouteLike]) -> None:
        self._routes = tuple(routes)
        self._body: bytes | None = None

    def __repr__(self) -> str:
        return f"<openapi.Document routes={len(self._routes)} built={self._body is not None}>"

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = orjson.dumps(build(self._routes))
        return self._body


def build(routes: Iterable[RouteLike]) -> dict[str, Any]:
    routes = tuple(routes)
    types = sorted(set(_types(routes)), key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    named = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _PARAM.sub(r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, path, named,
                                                                      components)
    for kind in types:  # a query's fields became parameters; its schema is not referenced
        if issubclass(kind, Query):
            components.pop(kind.__name__, None)
    return openapi_links.attach({
        "openapi": "3.1.0",
        "info": {"title": "Toombos Edge", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API key (tbe_…) or, when TOOMBOS_JWT_SECRET or "
                                          "TOOMBOS_JWT_JWKS is set, a JWT from the identity "
                                          "provider; the scope names the least role"},
                "token": {"type": "apiKey", "in": "query", "name": "token",
                          "description": "WebSockets: a token of POST /api/auth/ws-token"},
            },
            "schemas": dict(sorted(components.items())),
        },
    })


def _types(routes: Iterable[RouteLike]) -> Iterator[type]:
    yield ErrorBody
    for route in routes:
        for value in (route.body, route.query, *route.replies.values()):
            if isinstance(value, type):
                yield value
            elif isinstance(value, Media) and value.fields:
                yield from value.fields.values()


def _operation(route: RouteLike, path: str, named: dict[type, Any],
               components: dict[str, Any]) -> dict[str, Any]:
    doc = inspect.getdoc(route.handler) or ""
    operation: dict[str, Any] = {
        "summary": doc.splitlines()[0] if doc else route.handler.__name__,
        "description": doc,
        "operationId": route.method.lower() + _WORD.sub("_", path).rstrip("_"),
        "parameters": _parameters(route, components),
    }
    if route.body is not None:
        operation["requestBody"] = _request_body(route.body, named, components)
    statuses = all_replies(route.method, route.role, route.body, route.query, route.replies,
                           probe=route.probe)
    operation["responses"] = {str(status): _reply(status, kind, named)
                              for status, kind in statuses.items()}
    operation["responses"]["default"] = _reply(500, ErrorBody, named)
    if route.role is None:
        operation["security"] = []
    else:
        operation["security"] = [{"bearer": [route.role.name]}]
        if route.gated:
            operation["security"].append({"token": [route.role.name]})
        operation["x-role"] = route.role.name
    return operation


def _parameters(route: RouteLike, components: dict[str, Any]) -> list[dict[str, Any]]:
    found = [{"name": name, "in": "path", "required": True,
              "schema": {"type": "string", "minLength": 1}}
             for name in _PARAM.findall(route.path)]
    if route.gated:
        found.append({"name": "token", "in": "query", "required": False,
                      "schema": {"type": "string"},
                      "description": "a WebSocket token or an API key (or send the header)"})
    if route.query is not None:
        schema = components[route.query.__name__]
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            param = {"name": name, "in": "query", "required": name in required,
                     "schema": _not_null(prop)}
            if prop.get("type") == "array":
                param["style"], param["explode"] = "form", True
            found.append(param)
    return found


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: a query string has no null (absent is the default)."""
    out = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    options = [o for o in out.pop("anyOf", ()) if o != {"type": "null"}]
    if len(options) == 1:
        out = {**options[0], **out}
    elif options:
        out["anyOf"] = options
    return out


def _request_body(body: Any, named: dict[type, Any],
                  components: dict[str, Any]) -> dict[str, Any]:
    if isinstance(body, Media):
        fields = body.fields or {}
        return {"required": True, "content": {
            media: {"schema": named[fields[media]] if media in fields else _BINARY}
            for media in body.types}}
    assert isinstance(body, type) and issubclass(body, Body)
    required = bool(components[body.__name__].get("required"))
    return {"required": required,
            "content": {"application/json": {"schema": named[body]}}}


def _free(media: str, kind: Media) -> dict[str, Any]:
    """The schema of a reply no type describes: bytes, text, or any JSON."""
    if kind.binary:
        return _BINARY
    return {} if media.endswith("json") else {"type": "string"}


def _reply(status: int, kind: Any, named: dict[type, Any]) -> dict[str, Any]:
    reply: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if isinstance(kind, Media):
        fields = kind.fields or {}
        reply["content"] = {
            media: {"schema": named[fields[media]] if media in fields else _free(media, kind)}
            for media in kind.types}
    elif kind is not None:
        reply["content"] = {"application/json": {"schema": named[kind]}}
    return reply
