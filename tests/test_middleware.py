"""The request pipeline: correlation ids, JSON errors, auth headers and CORS."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from aiohttp import web
from conftest import Client, ClientFactory, auth

from toombos_edge.app import create_app
from toombos_edge.routes import ROUTES, Route, setup_routes
from toombos_edge.settings import Settings

DASHBOARD = "http://localhost:3000"


def assert_error(body: dict[str, object], status: int, code: str) -> None:
    """The one error shape both clients read: detail, and error{message, code, status}."""
    assert set(body) == {"detail", "error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"] == body["detail"] and isinstance(body["detail"], str)


async def test_correlation_id_is_echoed_when_sent(client: Client) -> None:
    response = await client.get("/live", headers={"X-Correlation-ID": "abc-123.x:y"})
    assert response.headers["X-Correlation-ID"] == "abc-123.x:y"


async def test_correlation_id_is_generated_otherwise(client: Client) -> None:
    first = (await client.get("/live")).headers["X-Correlation-ID"]
    second = (await client.get("/live")).headers["X-Correlation-ID"]
    assert first != second and first.startswith("req_")
    assert re.fullmatch(r"req_[0-9a-f]{12}[0-9a-f]{8,}", first)


async def test_unusable_correlation_id_is_replaced(client: Client) -> None:
    response = await client.get("/live", headers={"X-Correlation-ID": "bad id\twith spaces"})
    assert response.headers["X-Correlation-ID"].startswith("req_")


async def test_errors_carry_the_correlation_id_too(client: Client) -> None:
    response = await client.get("/nowhere", headers={"X-Correlation-ID": "trace-1"})
    assert response.headers["X-Correlation-ID"] == "trace-1"


async def test_unknown_route_is_a_json_404(client: Client) -> None:
    response = await client.get("/no/such/thing")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert_error(await response.json(), 404, "not_found")


async def test_a_path_with_a_line_break_is_a_json_404_too(client: Client) -> None:
    """``.`` in a route's pattern stops at a newline: such a path once fell past the
    catch-all to aiohttp's own text/plain 404."""
    for path in ("/no/such%0Athing", "/static/v1/%5B%0A%C2%83"):
        response = await client.get(path)
        assert (response.status, response.content_type) == (404, "application/json"), path
        assert_error(await response.json(), 404, "not_found")


async def test_wrong_method_is_a_json_405_with_allow(client: Client) -> None:
    response = await client.delete("/health")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert_error(await response.json(), 405, "method_not_allowed")


async def test_a_405_allows_exactly_the_methods_of_the_path_that_matched(
    client: Client,
) -> None:
    """``/api/v2/content/{content_id}`` also fits ``/api/v2/content/sync``: its methods are
    not the fixed path's."""
    expected = {
        "/api/v2/content/sync": "POST",
        "/api/v2/content/batch": "POST",
        "/api/v2/content/validate": "POST",
        "/api/v2/content/generate": "POST",
        "/api/v2/content/cnt_1": "DELETE,GET,PUT",
        "/api/jobs/export": "GET",
        "/api/jobs": "GET,POST",
    }
    for path, allow in expected.items():
        response = await client.patch(path)
        assert response.status == 405, path
        assert response.headers["Allow"] == allow, path
        assert_error(await response.json(), 405, "method_not_allowed")


async def test_too_large_body_is_a_json_413(client: Client, admin_key: str) -> None:
    body = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = await client.post("/admin/keys", data=io.BytesIO(body), headers=auth(admin_key))
    assert response.status == 413
    error = await response.json()
    assert_error(error, 413, "payload_too_large")
    assert "limit of 1024 KiB" in error["error"]["message"]  # which limit, and its setting
    assert error["error"]["details"] == {"max_kb": 1024}


async def test_bad_json_is_a_400_and_changes_nothing(client: Client, admin_key: str) -> None:
    response = await client.post("/admin/keys", data=b"{nope", headers=auth(admin_key))
    assert response.status == 400
    assert_error(await response.json(), 400, "bad_request")
    response = await client.post("/admin/keys", data=b"[1]", headers=auth(admin_key))
    assert_error(await response.json(), 422, "invalid")
    listed = await (await client.get("/admin/keys", headers=auth(admin_key))).json()
    assert len(listed["keys"]) == 1


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals at /srv/app.py line 42")


async def test_unexpected_failure_is_a_json_500_without_a_stack_trace(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)
    setup_routes(app, (Route("GET", "/boom", _boom, None),))
    client: Client = await aiohttp_client(app)
    response = await client.get("/boom")
    text = await response.text()
    assert response.status == 500
    assert "Traceback" not in text and "secret internals" not in text
    assert_error(await response.json(), 500, "internal_error")
    assert "secret internals" in caplog.text  # the operator still sees it in the log


async def test_missing_and_wrong_keys_are_401_with_www_authenticate(client: Client) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, auth("tbe_not-a-real-key")):
        response = await client.get("/admin/keys", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert_error(await response.json(), 401, "unauthorized")


async def test_preflight_from_the_dashboard(client: Client) -> None:
    response = await client.options(
        "/admin/keys",
        headers={
            "Origin": DASHBOARD,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == DASHBOARD
    allow_headers = response.headers["Access-Control-Allow-Headers"]
    allowed = {h.strip().lower() for h in allow_headers.split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Origin" in response.headers.getall("Vary")


async def test_actual_request_from_the_dashboard(client: Client, admin_key: str) -> None:
    headers = {"Origin": DASHBOARD, "Content-Type": "application/json", **auth(admin_key)}
    response = await client.get("/admin/keys", headers=headers)
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert "X-Correlation-ID" in response.headers["Access-Control-Expose-Headers"]
    assert "Origin" in response.headers.getall("Vary")


async def test_foreign_origin_gets_no_allow_origin(client: Client, admin_key: str) -> None:
    foreign = {"Origin": "https://evil.example"}
    preflight = await client.options(
        "/admin/keys", headers={**foreign, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = await client.get("/admin/keys", headers={**foreign, **auth(admin_key)})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers.getall("Vary")


async def test_vary_origin_even_without_an_origin(client: Client) -> None:
    response = await client.get("/health")
    assert "Origin" in response.headers.getall("Vary")
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_never_a_wildcard_origin(client: Client, admin_key: str) -> None:
    for path in sorted({r.path for r in ROUTES if "{" not in r.path}):
        response = await client.get(path, headers={"Origin": DASHBOARD, **auth(admin_key)})
        assert response.headers.get("Access-Control-Allow-Origin") in {DASHBOARD, None}
        assert "Access-Control-Allow-Credentials" not in response.headers


async def test_configured_origins_replace_the_default(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    custom = dataclasses.replace(settings, allowed_origins=("https://ops.example",))
    client: Client = await aiohttp_client(create_app(custom))
    ok = await client.get("/live", headers={"Origin": "https://ops.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ops.example"
    old = await client.get("/live", headers={"Origin": DASHBOARD})
    assert "Access-Control-Allow-Origin" not in old.headers


async def test_a_body_that_lies_about_its_encoding_is_a_400(
    client: Client, admin_key: str
) -> None:
    headers = {**auth(admin_key), "Content-Type": "application/json",
               "Content-Encoding": "gzip"}
    response = await client.post("/api/v2/content/validate", data=io.BytesIO(b'{"a": 1}'),
                                 headers=headers)
    body = await response.json()
    assert response.status == 400
    assert_error(body, 400, "bad_request")
    assert "Content-Encoding" in body["detail"]


def assert_edge_headers(headers: object, correlation: str) -> None:
    """What every answer carries: server, correlation id, Vary: Origin, the allowed origin."""
    from multidict import CIMultiDictProxy

    assert isinstance(headers, CIMultiDictProxy)
    assert headers["Server"] == "toombos-edge"
    assert headers["X-Correlation-ID"] == correlation
    assert "Origin" in headers.getall("Vary")
    assert headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert headers["Access-Control-Expose-Headers"] == (
        "X-Correlation-ID, Retry-After, RateLimit, RateLimit-Policy")


async def test_every_kind_of_answer_carries_the_edge_headers(
    client: Client, admin_key: str
) -> None:
    """Ordinary, error, streamed (prepared by its handler) and WebSocket-handshake answers."""
    sent = {"Origin": DASHBOARD, **auth(admin_key)}
    for path, status in [("/health", 200), ("/nowhere", 404), ("/api/jobs/export", 200)]:
        correlation = "c" + path.replace("/", ".")
        response = await client.get(path, headers={**sent, "X-Correlation-ID": correlation})
        assert response.status == status
        assert_edge_headers(response.headers, correlation)
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": DASHBOARD,
                 "X-Correlation-ID": "ws-1"}
    response = await client.get("/ws/jobs", params={"token": admin_key}, headers=handshake)
    assert response.status == 101
    assert_edge_headers(response.headers, "ws-1")
    response.close()
