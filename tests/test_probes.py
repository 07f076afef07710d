from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from conftest import Client, ClientFactory, auth

from toombos_edge import health as health_module
from toombos_edge.app import create_app
from toombos_edge.appkeys import DATABASE, HEALTH, LIFECYCLE
from toombos_edge.settings import Settings


async def test_health_has_the_contract_shape(client: Client) -> None:
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "healthy"
    assert set(body["checks"]) >= {"database", "cache", "external_services", "disk", "memory"}
    for check in body["checks"].values():
        assert check["status"] in {"pass", "warn", "fail"}
        assert isinstance(check["latency_ms"], float)
    assert body["version"] and body["timestamp"].endswith("Z")


async def test_ready_after_start(client: Client) -> None:
    response = await client.get("/ready")
    assert (response.status, await response.json()) == (200, {"ready": True})


async def test_detailed_needs_a_key(client: Client, admin_key: str) -> None:
    assert (await client.get("/health/detailed")).status == 401
    response = await client.get("/health/detailed", headers=auth(admin_key))
    body = await response.json()
    assert body["checks_total"] == len(body["components"]) >= 5
    assert body["checks_passed"] == body["checks_total"]


async def test_live_and_liveness_share_one_handler(client: Client) -> None:
    for path in ("/live", "/liveness"):
        response = await client.get(path)
        assert (response.status, await response.json()) == (200, {"status": "alive"})


async def test_startup_after_the_database_opened(client: Client) -> None:
    response = await client.get("/startup")
    assert (response.status, await response.json()) == (200, {"started": True})


async def test_ready_only_after_every_component_started(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    """The listening socket opens only after start-up, so /ready=false cannot be seen over
    TCP; a component started just before ``ready_ctx`` sees it false, and true after."""
    seen: dict[str, bool] = {}

    async def late_component(app: web.Application) -> AsyncIterator[None]:
        seen["starting"] = app[LIFECYCLE].ready
        yield
        seen["stopping"] = app[LIFECYCLE].ready

    app = create_app(settings)
    app.cleanup_ctx.insert(len(app.cleanup_ctx) - 1, late_component)
    client: Client = await aiohttp_client(app)
    assert (await (await client.get("/ready")).json()) == {"ready": True}
    await client.close()
    assert seen == {"starting": False, "stopping": False}


async def test_unhealthy_database_gives_503(client: Client) -> None:
    await client.app[DATABASE].close()  # the database goes away under the server
    response = await client.get("/health")
    body = await response.json()
    assert (response.status, body["status"]) == (503, "unhealthy")
    assert body["checks"]["database"]["status"] == "fail"
    check = await client.post("/health/check/database")
    assert check.status == 503
    assert (await check.json())["status"] == "fail"


async def test_check_one_component_afresh(client: Client) -> None:
    response = await client.post("/health/check/disk")
    body = await response.json()
    assert response.status == 200
    assert body["component"] == "disk" and body["status"] in {"pass", "warn"}
    assert "MB free" in body["message"]


async def test_check_unknown_component_is_404_with_the_known_ones(client: Client) -> None:
    response = await client.post("/health/check/flux")
    body = await response.json()
    assert response.status == 404
    assert "database" in body["error"]["details"]["known"]


async def test_health_checks_are_cached_for_a_second(client: Client) -> None:
    first = await (await client.get("/health")).json()
    second = await (await client.get("/health")).json()
    assert first["checks"] == second["checks"]  # same latencies: not measured again
    assert first["uptime"] <= second["uptime"]


async def test_the_health_body_is_the_report(client: Client) -> None:
    """The bytes /health sends (encoded once per snapshot) are the service's report."""
    body = await (await client.get("/health")).json()
    report = await client.app[HEALTH].report()
    assert set(body) == set(report) == {"status", "timestamp", "checks", "uptime", "version"}
    assert (body["status"], body["checks"], body["version"]) == (
        report["status"], report["checks"], report["version"])
    assert body["timestamp"] <= report["timestamp"] and body["uptime"] <= report["uptime"]


async def test_a_sent_healthy_body_turns_503_once_the_database_fails(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health_module, "CACHE_SECONDS", 0.0)  # every probe measures afresh
    monkeypatch.setattr(health_module, "now_ms", lambda: 1_763_000_000_000)  # one millisecond
    assert (await client.get("/health")).status == 200
    await client.app[DATABASE].close()
    response = await client.get("/health")
    body = await response.json()
    assert (response.status, body["status"]) == (503, "unhealthy")
    assert body["checks"]["database"]["status"] == "fail"
