"""Critical operations: emergency publishing past a paused queue, rollback, status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, auth, finished, settings_for

from toombos_edge.appkeys import CONTENT, ENGINE
from toombos_edge.settings import Settings

pytestmark = pytest.mark.backends

TEXT = "The first version of the page.\n\nIt has **two** paragraphs."


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path, job_retry_base=0.01, job_retry_cap=0.05)


@pytest.fixture
async def keys(make_key: Callable[[str], Awaitable[str]], admin_key: str) -> dict[str, Any]:
    return {"admin": auth(admin_key), "operator": auth(await make_key("operator")),
            "viewer": auth(await make_key("viewer"))}


async def draft_page(client: Client, keys: dict[str, Any]) -> str:
    response = await client.post("/api/v2/content/generate", headers=keys["operator"],
                                 json={"title": "Status page", "text": TEXT,
                                       "channels": ["website"]})
    job = await finished(client, (await response.json())["job_id"])
    return str(job["results"]["website"]["content_id"])


async def test_emergency_publish_runs_while_the_queue_is_paused(
    client: Client, keys: dict[str, Any]
) -> None:
    content_id = await draft_page(client, keys)
    client.app[ENGINE].pause()
    queued = await client.post("/api/v2/content/generate", headers=keys["operator"],
                               json={"text": "waits", "channels": ["email"]})
    denied = await client.post("/api/critical/emergency-publish", headers=keys["operator"],
                               json={"content_id": content_id})
    assert denied.status == 403
    response = await client.post("/api/critical/emergency-publish", headers=keys["admin"],
                                 json={"content_id": content_id})
    answer = await response.json()
    assert response.status == 202 and answer["urgent"] is True
    job = await finished(client, answer["jobs"][0]["job_id"])
    assert job["status"] == "completed" and job["results"]["website"]["sent"] is True
    assert (await client.get("/site/status-page")).status == 200
    waiting = await client.app[ENGINE].get((await queued.json())["job_id"])
    assert waiting.status.value == "pending"  # the paused queue held the ordinary job
    missing = await client.post("/api/critical/emergency-publish", headers=keys["admin"],
                                json={"content_id": "cnt_nothing"})
    assert missing.status == 404


async def test_emergency_generate_and_publish_from_text(
    client: Client, keys: dict[str, Any]
) -> None:
    client.app[ENGINE].pause()
    response = await client.post("/api/critical/emergency-publish", headers=keys["admin"],
                                 json={"title": "Outage notice", "text": "We are on it.",
                                       "channels": ["website"]})
    job = await finished(client, (await response.json())["jobs"][0]["job_id"])
    assert job["status"] == "completed" and job["results"]["website"]["sent"] is True
    assert "We are on it." in await (await client.get("/site/outage-notice")).text()


async def test_rollback_restores_and_republishes(client: Client, keys: dict[str, Any]) -> None:
    content_id = await draft_page(client, keys)
    publish = await client.post("/api/critical/emergency-publish", headers=keys["admin"],
                                json={"content_ids": [content_id]})
    await finished(client, (await publish.json())["jobs"][0]["job_id"])
    broken = "<html><body><p>Oops, a broken edit</p></body></html>"
    edit = await client.put(f"/api/v2/content/{content_id}", headers=keys["operator"],
                            json={"html": broken})
    assert (await edit.json())["version"] == 2
    assert "broken edit" in await (await client.get("/site/status-page")).text()
    response = await client.post("/api/critical/rollback", headers=keys["admin"],
                                 json={"content_id": content_id})
    answer = await response.json()
    rolled = answer["rolled_back"][0]
    assert response.status == 200 and rolled["content"]["version"] == 3
    await finished(client, rolled["republish_job_id"])
    page = await (await client.get("/site/status-page")).text()
    assert "broken edit" not in page and "<strong>two</strong>" in page
    nothing = await client.post("/api/critical/rollback", headers=keys["admin"],
                                json={"content_id": content_id, "to_version": 99})
    assert nothing.status == 409
    bad = await client.post("/api/critical/rollback", headers=keys["admin"], json={})
    assert bad.status == 422


async def test_rollback_of_a_whole_job(client: Client, keys: dict[str, Any]) -> None:
    response = await client.post("/api/v2/content/generate", headers=keys["operator"],
                                 json={"text": TEXT, "channels": ["email", "linkedin"]})
    job = await finished(client, (await response.json())["job_id"])
    service = client.app[CONTENT]
    for result in job["results"].values():
        await service.items.update(result["content_id"], {"text": "edited"})
    answer = await (await client.post("/api/critical/rollback", headers=keys["admin"],
                                      json={"job_id": job["job_id"]})).json()
    assert answer["total"] == 2
    for result in job["results"].values():
        item = await service.items.get(result["content_id"])
        assert item.version == 3 and item.body["text"] != "edited"


async def test_status_reports_queue_failures_and_components(
    client: Client, keys: dict[str, Any]
) -> None:
    healthy = await (await client.get("/api/critical/status", headers=keys["viewer"])).json()
    assert healthy["status"] == "ok" and healthy["failing_jobs"] == []
    assert healthy["queue"]["paused"] is False and healthy["degraded_components"] == {}
    drafted = await client.post("/api/v2/content/generate", headers=keys["operator"],
                                json={"text": TEXT, "channels": ["facebook"]})
    draft = await finished(client, (await drafted.json())["job_id"])
    content_id = draft["results"]["facebook"]["content_id"]
    # Publishing it asks for a sink this server does not have: that job fails.
    failing = await client.post(f"/api/v2/content/{content_id}/publish",
                                headers=keys["operator"], json={})
    failed = await finished(client, (await failing.json())["job_id"])
    assert failed["status"] == "failed"
    report = await (await client.get("/api/critical/status", headers=keys["viewer"])).json()
    assert report["status"] == "degraded" and report["failed_total"] == 1
    assert report["failing_jobs"][0]["job_id"] == failed["job_id"]
    assert "TOOMBOS_WEBHOOK_FACEBOOK" in report["last_errors"][0]["error"]
    client.app[ENGINE].pause()
    paused = await (await client.get("/api/critical/status", headers=keys["viewer"])).json()
    assert paused["status"] == "degraded" and paused["queue"]["paused"] is True
