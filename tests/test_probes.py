from __future__ import annotations

from conftest import Client, auth


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
