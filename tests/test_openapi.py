"""/openapi.json is built from the route table and its types; with response validation on
(as in every test here), a handler that answers against its schema fails."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from browser_support import LAUNCH_ARGS, chromium
from conftest import Client, ClientFactory, settings_for
from playwright.async_api import async_playwright

from toombos_edge.api.conformance import mismatch
from toombos_edge.api.contract import ErrorBody, Reply, replies
from toombos_edge.api.responses import json_response
from toombos_edge.app import create_app
from toombos_edge.routes import ROUTES, Route, setup_routes

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


async def spec_of(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status == 200
    spec: dict[str, Any] = await response.json()
    return spec


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


async def test_every_route_is_an_operation_with_its_replies_and_security(
    client: Client,
) -> None:
    spec = await spec_of(client)
    for route in ROUTES:
        operation = spec["paths"][_PARAM.sub(r"{\1}", route.path)][route.method.lower()]
        responses = operation["responses"]
        for status in route.replies:
            assert str(status) in responses, (route.path, status)
        for status, reply in responses.items():
            if status == "default" or (status[0] in "45" and int(status) not in route.replies):
                schema = reply["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (route.path, status)
        if route.role is None:
            assert operation["security"] == [], route.path
        else:
            assert {"bearer": [route.role.name]} in operation["security"], route.path
            assert {"401", "503"} <= set(responses), route.path
    assert all(ref.removeprefix("#/components/schemas/") in spec["components"]["schemas"]
               for ref in refs(spec)), "a $ref points at no schema"


async def test_bodies_and_parameters_carry_their_types_and_constraints(client: Client) -> None:
    spec = await spec_of(client)
    schemas = spec["components"]["schemas"]
    sync = spec["paths"]["/api/v2/content/sync"]["post"]
    assert sync["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Generate"}
    channels = schemas["Generate"]["properties"]["channels"]["anyOf"][0]
    assert channels["items"] == {"$ref": "#/components/schemas/ChannelName"}
    assert {"email", "website", "social_twitter", "twitter", "x"} <= set(
        schemas["ChannelName"]["enum"])
    assert sync["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Job"}
    assert {"400", "401", "403", "404", "413", "422", "503"} <= set(sync["responses"])
    limit = {p["name"]: p for p in spec["paths"]["/api/v2/jobs"]["get"]["parameters"]}["limit"]
    assert limit["in"] == "query" and limit["schema"] == {
        "type": "integer", "minimum": 1, "maximum": 500, "default": 50}
    status = schemas["Job"]["properties"]["status"]
    assert set(schemas[status["$ref"].rsplit("/", 1)[1]]["enum"]) == {
        "pending", "in_progress", "completed", "partial", "failed", "cancelled"}
    assert schemas["Job"]["additionalProperties"] is False


async def test_uploads_and_sockets_are_described_too(client: Client) -> None:
    spec = await spec_of(client)
    ingest = spec["paths"]["/api/ingest"]["post"]
    form = ingest["requestBody"]["content"]["multipart/form-data"]["schema"]
    file_field = spec["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]["properties"][
        "file"]
    assert file_field["format"] == "binary"
    assert "application/json" in ingest["requestBody"]["content"]
    assert {"202", "413"} <= set(ingest["responses"])
    socket = spec["paths"]["/ws/status/{job_id}"]["get"]
    assert {p["name"] for p in socket["parameters"]} == {"job_id", "token"}
    assert {"101", "401", "403", "404", "503"} <= set(socket["responses"])
    assert {"token": ["viewer"]} in socket["security"]


async def test_docs_page_shows_each_operation_with_its_body_and_replies(
    aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Any
) -> None:
    """In a real browser: /docs renders the document's operations, one row each."""
    server = await aiohttp_server(create_app(settings))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), args=LAUNCH_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(str(server.make_url("/docs")))
            path = page.locator("td:nth-child(2)", has_text=re.compile(r"^/api/v2/content/sync$"))
            row = page.locator("tr").filter(has=path)
            await row.first.wait_for()
            cells = await row.first.locator("td").all_inner_texts()
        finally:
            await browser.close()
    assert cells[:3] == ["POST", "/api/v2/content/sync", "operator"]
    assert cells[5] == "application/json Generate"
    assert "202 Job" in cells[6] and "422 ErrorBody" in cells[6]


class Answer(Reply):
    answer: int


async def _says_text(request: web.Request) -> web.Response:
    return json_response({"answer": "forty-two"})


async def _says_more(request: web.Request) -> web.Response:
    return json_response({"answer": 42, "extra": True})


async def _says_created(request: web.Request) -> web.Response:
    return json_response({"answer": 42}, status=201)


async def _says_right(request: web.Request) -> web.Response:
    return json_response({"answer": 42})


_TEST_ROUTES = tuple(
    Route("GET", f"/test/{handler.__name__}", handler, None, replies=replies(Answer))
    for handler in (_says_text, _says_more, _says_created, _says_right))


async def test_a_handler_that_disagrees_with_its_schema_fails_in_tests(
    aiohttp_client: ClientFactory, settings: Any
) -> None:
    app = create_app(settings)
    setup_routes(app, _TEST_ROUTES)
    client: Client = await aiohttp_client(app)
    expected = {
        "_says_text": "200 does not match Answer: Expected `int`, got `str` - at `$.answer`",
        "_says_more": "200 does not match Answer: Object contains unknown field `extra`",
        "_says_created": "status 201, which it does not declare (it declares [200, 429, 503])",
    }
    for name, problem in expected.items():
        response = await client.get(f"/test/{name}")
        error = await response.json()
        assert response.status == 500, name
        assert error["error"]["code"] == "reply_mismatch"
        assert error["detail"] == f"GET /test/{name}: {problem}"
    assert await (await client.get("/test/_says_right")).json() == {"answer": 42}


async def test_production_does_not_check_replies(
    aiohttp_client: ClientFactory, tmp_path: Any
) -> None:
    """Off (the default), nothing is wrapped: the mismatch goes out as the handler made it."""
    app = create_app(settings_for(tmp_path, validate_responses="false"))
    setup_routes(app, _TEST_ROUTES)
    client: Client = await aiohttp_client(app)
    response = await client.get("/test/_says_text")
    assert (response.status, await response.json()) == (200, {"answer": "forty-two"})


def test_error_replies_must_be_the_one_error_shape() -> None:
    declared = {200: Answer, 404: ErrorBody}
    assert mismatch(declared, json_response({"answer": 1})) is None
    assert mismatch(declared, json_response({"detail": "x"}, status=404)) == (
        "404 does not match ErrorBody: Object missing required field `error`")
    plain = web.Response(text="no", status=404)
    assert mismatch(declared, plain) == "404 as text/plain, not JSON"
