"""The OpenAPI document, built from the route table so it never drifts from it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any, Protocol

from . import __version__, openapi_links
from .keys import Role

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_WORD = re.compile(r"\W+")


class RouteLike(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def role(self) -> Role | None: ...
    @property
    def handler(self) -> Any: ...


def build(routes: Iterable[RouteLike]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _PARAM.sub(r"{\1}", route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, path)
    return openapi_links.attach({
        "openapi": "3.1.0",
        "info": {"title": "Toombos Edge", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": _BEARER},
            "schemas": {"Error": _ERROR_SCHEMA},
        },
    })


def _operation(route: RouteLike, path: str) -> dict[str, Any]:
    doc = inspect.getdoc(route.handler) or ""
    operation: dict[str, Any] = {
        "summary": doc.splitlines()[0] if doc else route.handler.__name__,
        "operationId": route.method.lower() + _WORD.sub("_", path).rstrip("_"),
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ],
        "responses": {"default": {"description": "JSON; errors use the Error schema"}},
    }
    if route.role is not None:
        operation["security"] = [{"bearer": []}]
        operation["x-role"] = route.role.name
    return operation


#: One scheme, two kinds of bearer: the header is the same, the server tells them apart.
_BEARER = {
    "type": "http", "scheme": "bearer",
    "description": "An API key (tbe_…) or, when TOOMBOS_JWT_SECRET or TOOMBOS_JWT_JWKS is "
                   "set, a JWT from the identity provider (Supabase, Auth0, Keycloak …).",
}

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["detail", "error"],
    "properties": {
        "detail": {"type": "string"},
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "code": {"type": "string"},
                "status": {"type": "integer"},
                "details": {},
            },
        },
    },
}
