"""The route table, walked for real: no route can slip in without its role."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute, PrefixResource
from conftest import Client, auth

from toombos_edge.app import create_app
from toombos_edge.appkeys import ROUTE_ROLES
from toombos_edge.keys import Role
from toombos_edge.routes import ROUTES
from toombos_edge.settings import Settings

#: Everything a client may call without a key. Adding to this list is a security decision.
PUBLIC_PATHS = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/live"),
    ("GET", "/liveness"),
    ("GET", "/startup"),
    ("POST", "/health/check/{component}"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/site/{slug}"),
    ("GET", "/"),  # the dashboard's page and files: no data in them
    ("GET", "/static/{version}/{path}"),
    ("*", "/{unmatched}"),  # the catch-all: it only ever answers 404 or 405
}
_PARAM = re.compile(r"\{\w+(?::[^}]*)?\}")


def app_routes(app: web.Application) -> Iterator[AbstractRoute]:
    """Every route the router would dispatch to (HEAD twins of GET routes left out)."""
    for route in app.router.routes():
        if route.method != "HEAD":
            yield route


def sample_url(route: AbstractRoute) -> str:
    """A concrete URL that resolves to this route."""
    resource = route.resource
    assert resource is not None
    if isinstance(resource, PrefixResource):
        return resource.canonical.rstrip("/") + "/probe"
    return _PARAM.sub("x1", resource.canonical)


def method_of(route: AbstractRoute) -> str:
    return "GET" if route.method == "*" else route.method


def test_every_registered_route_has_a_role_entry(client: Client) -> None:
    roles = client.app[ROUTE_ROLES]
    missing = [f"{r.method} {sample_url(r)}" for r in app_routes(client.app) if r not in roles]
    assert not missing, f"routes registered outside routes.py: {missing}"


def test_public_routes_are_exactly_the_probes_and_docs(client: Client) -> None:
    roles = client.app[ROUTE_ROLES]
    public = set()
    for route in app_routes(client.app):
        if roles.get(route, Role.admin) is None:
            assert route.resource is not None
            public.add((route.method, route.resource.canonical))
    assert public == PUBLIC_PATHS


async def test_every_protected_route_needs_a_key_of_its_role(
    client: Client, make_key: Callable[[str], Awaitable[str]]
) -> None:
    keys = {role: await make_key(role.name) for role in Role}
    roles = client.app[ROUTE_ROLES]
    checked = 0
    for route in app_routes(client.app):
        role = roles.get(route, Role.admin)
        if role is None:
            continue
        method, url = method_of(route), sample_url(route)
        response = await client.request(method, url)
        assert response.status == 401, f"{method} {url} without a key: {response.status}"
        assert (await response.json())["error"]["code"] == "unauthorized"
        if role > Role.viewer:
            below = keys[Role(role - 1)]
            response = await client.request(method, url, headers=auth(below))
            assert response.status == 403, f"{method} {url} with a lower role"
            assert (await response.json())["error"]["code"] == "forbidden"
        checked += 1
    assert checked >= sum(1 for r in ROUTES if r.role is not None)


async def test_public_routes_answer_without_a_key(client: Client) -> None:
    roles = client.app[ROUTE_ROLES]
    for route in app_routes(client.app):
        if roles.get(route, Role.admin) is None:
            response = await client.request(method_of(route), sample_url(route))
            assert response.status != 401, f"{route.method} {sample_url(route)}"


async def _unlisted(request: web.Request) -> web.Response:
    return web.json_response({"reached": True})


async def test_a_route_added_outside_the_table_stops_the_server_at_start(
    settings: Settings,
) -> None:
    app = create_app(settings)
    app.router.add_get("/sneaky", _unlisted)
    runner = web.AppRunner(app)
    with pytest.raises(RuntimeError, match="/sneaky"):
        await runner.setup()  # refused before any lifetime (database, engine) started
    await runner.cleanup()
    assert not (settings.data_dir / "edge.db").exists()


async def test_what_no_route_matches_is_a_json_404_or_405(client: Client) -> None:
    missing = await client.get("/no/such/path")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    wrong = await client.delete("/health")
    assert wrong.status == 405 and (await wrong.json())["error"]["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "GET"
    assert wrong.headers["X-Correlation-ID"] and "Origin" in wrong.headers["Vary"]


async def test_openapi_lists_every_route_with_its_role(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    for route in ROUTES:
        path = _PARAM.sub(lambda m: "{" + m.group(0)[1:-1].split(":")[0] + "}", route.path)
        operation = spec["paths"][path][route.method.lower()]
        assert operation.get("x-role") == (route.role.name if route.role else None)
