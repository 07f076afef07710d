"""Typed requests: every body and query of the route table is decoded by its named type;
a refusal is a 422 naming the field, malformed JSON a 400, and nothing changes."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

import pytest
from conftest import Client, auth

from toombos_edge.api.contract import Body, Media, Query
from toombos_edge.content.channels import Channel, parse_channel
from toombos_edge.content.request_body import ChannelName
from toombos_edge.errors import Invalid
from toombos_edge.routes import ROUTES

MakeKey = Callable[[str], Awaitable[str]]
_PARAM_VALUE = "x1"


def url_of(path: str) -> str:
    """A concrete URL for a route's template."""
    return "/".join(_PARAM_VALUE if part.startswith("{") else part for part in path.split("/"))


@pytest.fixture
async def admin(make_key: MakeKey) -> dict[str, str]:
    return auth(await make_key("admin"))


async def job_total(client: Client, headers: dict[str, str]) -> int:
    listed = await (await client.get("/api/jobs", headers=headers)).json()
    total: int = listed["total"]
    return total


def test_every_handler_takes_the_type_its_route_declares() -> None:
    """The table names each body and query type once; the handler's own annotation must be
    the same type, so the two cannot drift apart."""
    checked = 0
    for route in ROUTES:
        declared = route.query if route.body is None or isinstance(route.body, Media) \
            else route.body
        params = list(inspect.signature(route.handler).parameters)
        if declared is None:
            assert len(params) == 1, f"{route.method} {route.path} takes {params}"
            continue
        hints = get_type_hints(route.handler)
        assert len(params) == 2, f"{route.method} {route.path} takes {params}"
        assert hints[params[1]] is declared, f"{route.method} {route.path}"
        assert issubclass(declared, Body | Query)
        checked += 1
    assert checked >= 40


async def test_a_bad_channel_is_a_422_naming_its_index_and_creates_nothing(
    client: Client, admin: dict[str, str]
) -> None:
    body = {"text": "Launch notes", "channels": ["email", "website", "fax"]}
    response = await client.post("/api/v2/content/sync", json=body, headers=admin)
    error = await response.json()
    assert response.status == 422, error
    assert error["detail"].startswith("channels[2]: expected one of email, website, "), error
    assert "'fax'" in error["detail"]
    assert error["error"] == {"message": error["detail"], "code": "invalid", "status": 422,
                              "details": {"field": "channels[2]"}}
    assert await job_total(client, admin) == 0


@pytest.mark.parametrize(("body", "message"), [
    ({}, "kind: required"),
    ({"kind": "noop", "priority": "high"}, "priority: expected int | null, got str"),
    ({"kind": "noop", "priority": 5000}, "priority: expected int <= 1000"),
    ({"kind": "noop", "params": [1]}, "params: expected object | null, got array"),
    ({"kind": "noop", "channels": ["email", ""]}, "channels[1]: expected str of length >= 1"),
    ([1, 2], "body: expected object, got array"),
])
async def test_a_body_that_breaks_its_type_is_a_422_naming_the_field(
    client: Client, admin: dict[str, str], body: Any, message: str
) -> None:
    response = await client.post("/api/jobs", json=body, headers=admin)
    error = await response.json()
    assert (response.status, error["detail"]) == (422, message)
    assert await job_total(client, admin) == 0


async def test_every_json_body_route_answers_malformed_json_with_a_400(
    client: Client, admin: dict[str, str]
) -> None:
    routes = [r for r in ROUTES if isinstance(r.body, type)]
    assert len(routes) >= 20
    for route in routes:
        response = await client.request(route.method, url_of(route.path), data=b"{oops",
                                        headers={**admin, "Content-Type": "application/json"})
        error = await response.json()
        assert response.status == 400, (route.method, route.path, error)
        assert error["detail"].startswith("request body is not valid JSON")


async def test_every_query_with_a_limit_answers_one_out_of_range_with_a_422(
    client: Client, admin: dict[str, str]
) -> None:
    """One meaning per status: documents and search said 400 here, the rest 422."""
    routes = [r for r in ROUTES if r.query is not None and "limit" in r.query.__struct_fields__]
    assert {"/api/documents", "/api/search", "/api/jobs", "/api/activity"} <= {
        r.path for r in routes}
    for route in routes:
        for value in ("0", "100001", "ten"):
            response = await client.request(route.method, f"{url_of(route.path)}?q=a&limit="
                                            f"{value}", headers=admin)
            error = await response.json()
            assert response.status == 422, (route.path, value, error)
            assert error["error"]["details"] == {"field": "limit"}, (route.path, error)
            assert error["detail"].startswith("limit: expected int")


@pytest.mark.parametrize(("query", "message"), [
    ("status=pending,lost", "status[1]: expected one of pending, in_progress, completed, "
                            "partial, failed, cancelled, got 'lost'"),
    ("fields=job_id,colour", "fields[1]: expected one of "),
    ("cursor=nope", "cursor: expected str matching regex"),
    ("from=yesterday", "from: expected an ISO 8601 time or milliseconds, got 'yesterday'"),
])
async def test_a_query_that_breaks_its_type_is_a_422_naming_the_parameter(
    client: Client, admin: dict[str, str], query: str, message: str
) -> None:
    response = await client.get(f"/api/v2/jobs?{query}", headers=admin)
    error = await response.json()
    assert response.status == 422, error
    assert error["detail"].startswith(message), error


async def test_lists_repeat_or_split_at_commas_and_numbers_come_from_text(
    client: Client, admin: dict[str, str]
) -> None:
    for _ in range(3):
        created = await client.post("/api/ingest", json={"text": "hello"}, headers=admin)
        assert created.status == 202
    query = "status=pending&status=completed,in_progress&limit=2&fields=job_id,status"
    page = await (await client.get(f"/api/v2/jobs?{query}", headers=admin)).json()
    assert page["page_size"] == 2 and len(page["jobs"]) == 2
    assert all(set(job) == {"job_id", "status"} for job in page["jobs"])


def test_the_channel_names_of_the_schema_are_the_spellings_the_parser_takes() -> None:
    assert {parse_channel(name.value) for name in ChannelName} == set(Channel)
    assert {c.value for c in Channel} <= {name.value for name in ChannelName}
    with pytest.raises(Invalid):
        parse_channel("fax")


async def test_json_the_store_cannot_write_is_refused_not_a_500(
    client: Client, admin_key: str
) -> None:
    """A lone surrogate escape, an integer past 64 bits: valid JSON to a parser, not to the
    store. Each is a 4xx, and no document is made."""
    bodies = [b'{"text": "t", "title": "\\ud884"}',
              b'{"text": "t", "metadata": {"n": 41806855252219223869489152}}']
    for raw in bodies:
        response = await client.post("/api/documents", data=raw, headers={
            **auth(admin_key), "Content-Type": "application/json"})
        assert response.status in (400, 422), raw
    listed = await client.get("/api/documents", headers=auth(admin_key))
    assert (await listed.json())["total"] == 0
