"""The generate and publish kinds end to end: HTTP in, engine, content out, pages served."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import Client, auth, finished, settings_for

from toombos_edge.app import create_app
from toombos_edge.appkeys import CONTENT, ENGINE
from toombos_edge.settings import Settings

FIXTURE = (Path(__file__).parent / "fixtures" / "launch.md").read_text()
CHANNELS = ["email", "website", "social_twitter", "social_linkedin", "social_facebook"]




@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Retries after milliseconds, so that the failure paths finish quickly."""
    return settings_for(tmp_path, job_retry_base=0.01, job_retry_cap=0.05)


@pytest.fixture
async def operator(make_key: Callable[[str], Awaitable[str]]) -> dict[str, str]:
    return auth(await make_key("operator"))


def body(**extra: Any) -> dict[str, Any]:
    return {"title": "Offline sync arrives", "text": FIXTURE, "tags": ["offline sync"],
            **extra}


async def test_generate_stores_a_draft_per_channel(
    client: Client, operator: dict[str, str]
) -> None:
    response = await client.post("/api/v2/content/generate", headers=operator,
                                 json=body(channels=CHANNELS, content_type="blog"))
    created = await response.json()
    assert response.status == 202 and created["status"] in {"pending", "in_progress"}
    assert created["channels"] == CHANNELS and created["kind"] == "generate"
    job = await finished(client, created["job_id"])
    assert job["status"] == "completed"
    assert set(job["results"]) == {"email", "website", "twitter", "linkedin", "facebook"}
    for result in job["results"].values():
        assert result["status"] == "success" and result["content_id"].startswith("cnt_")
    item = await (await client.get(f"/api/v1/content/{job['results']['email']['content_id']}",
                                   headers=operator)).json()
    assert item["status"] == "draft" and item["body"]["subject"] == "Offline sync arrives"
    assert (await client.get("/site/offline-sync-arrives")).status == 404  # not published


async def test_sync_generates_and_publishes(client: Client, operator: dict[str, str]) -> None:
    response = await client.post("/api/v2/content/sync", headers=operator,
                                 json=body(channels=["website", "email"]))
    job = await finished(client, (await response.json())["job_id"])
    assert job["status"] == "completed"
    site = job["results"]["website"]
    assert site["sent"] is True and site["url"].endswith("/site/offline-sync-arrives")
    page = await client.get("/site/offline-sync-arrives")
    assert page.status == 200 and "Offline sync arrives" in await page.text()
    outbox = client.app[CONTENT].publisher.config.outbox
    assert len(list(outbox.glob("*.eml"))) == 1  # no SMTP configured: the outbox


async def test_a_content_socket_sees_the_publication(
    client: Client, operator: dict[str, str]
) -> None:
    token = operator["Authorization"].removeprefix("Bearer ")
    ws = await client.ws_connect("/ws/content/reader-1", params={"token": token})
    try:
        response = await client.post("/api/v2/content/sync", headers=operator,
                                     json=body(channels=["website"]))
        job = await finished(client, (await response.json())["job_id"])
        async with asyncio.timeout(10):
            while (message := await ws.receive_json())["type"] != "content_published":
                pass
        assert message["data"]["content_id"] == job["results"]["website"]["content_id"]
        assert message["data"]["url"].endswith("/site/offline-sync-arrives")
    finally:
        await ws.close()


async def test_sync_to_every_sink_through_the_server(
    aiohttp_client: Any, tmp_path: Path, make_smtp: Any
) -> None:
    """SMTP to a real local server, the page on /site, a post to a receiver that checks the
    signature with the secret it shares with the server."""
    inbox, smtp_port = await make_smtp()
    secret = "shared-webhook-secret"
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        raw, stamp = await request.read(), request.headers["X-Toombos-Timestamp"]
        mac = hmac.new(secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256)
        if not hmac.compare_digest("sha256=" + mac.hexdigest(),
                                   request.headers["X-Toombos-Signature"]):
            return web.json_response({"error": "bad signature"}, status=401)
        received.append(await request.json())
        return web.json_response({"url": "https://social.example/thread/1"})

    receiver = web.Application()
    receiver.router.add_post("/twitter", receive)
    async with TestServer(receiver, host="127.0.0.1") as hook:
        settings = Settings.load({}, overrides={
            "data_dir": str(tmp_path / "sinks"), "access_log": "false",
            "smtp_host": "127.0.0.1", "smtp_port": str(smtp_port),
            "smtp_from": "news@edge.test", "smtp_to": "team@edge.test",
            "webhook_twitter": str(hook.make_url("/twitter")), "webhook_secret": secret})
        server = await aiohttp_client(create_app(settings))
        admin = auth((settings.data_dir / "admin.key").read_text().strip())
        response = await server.post("/api/v2/content/sync", headers=admin, json=body(
            channels=["email", "website", "twitter"], recipients=["reader@example.org"]))
        job = await finished(server, (await response.json())["job_id"])
    assert job["status"] == "completed"
    assert {r["sent"] for r in job["results"].values()} == {True}
    [(recipients, raw)] = inbox.messages
    assert recipients == ["reader@example.org"] and b"Offline sync arrives" in raw
    assert received[0]["posts"] and job["results"]["twitter"]["url"].startswith("https://social")
    assert (await server.get("/site/offline-sync-arrives")).status == 200


async def test_a_channel_without_a_sink_is_kept_as_a_draft(
    client: Client, operator: dict[str, str]
) -> None:
    """No webhook configured is not a failure of generation: the job completes, the post
    is stored as a draft and its result says why it was not sent."""
    response = await client.post("/api/v2/content/sync", headers=operator,
                                 json=body(channels=["website", "twitter"]))
    job = await finished(client, (await response.json())["job_id"])
    assert job["status"] == "completed" and job["attempts"] == 1 and not job["errors"]
    assert job["results"]["website"]["status"] == "success"
    twitter = job["results"]["twitter"]
    assert (twitter["status"], twitter["sent"], twitter["error"]) == ("draft", False, None)
    assert "TOOMBOS_WEBHOOK_TWITTER" in twitter["reason"]
    response = await client.get(f"/api/v2/content/{twitter['content_id']}", headers=operator)
    stored = await response.json()
    assert stored["status"] == "draft" and stored["body"]["posts"]


async def test_a_fresh_install_completes_social_requests_as_drafts(
    client: Client, operator: dict[str, str]
) -> None:
    response = await client.post("/api/v2/content/sync", headers=operator, json=body(
        channels=["social_twitter", "social_linkedin", "social_facebook"]))
    job = await finished(client, (await response.json())["job_id"])
    assert job["status"] == "completed" and job["last_error"] is None
    assert {r["status"] for r in job["results"].values()} == {"draft"}


async def test_publishing_to_an_unconfigured_channel_is_not_retried(
    client: Client, operator: dict[str, str]
) -> None:
    response = await client.post("/api/v2/content/generate", headers=operator,
                                 json=body(channels=["linkedin"]))
    draft = await finished(client, (await response.json())["job_id"])
    content_id = draft["results"]["linkedin"]["content_id"]
    response = await client.post(f"/api/v2/content/{content_id}/publish", headers=operator,
                                 json={})
    job = await finished(client, (await response.json())["job_id"])
    assert job["status"] == "failed" and job["attempts"] == 1
    assert "PublishRefused" in job["last_error"] and "TOOMBOS_WEBHOOK_LINKEDIN" in job["last_error"]


@pytest.mark.parametrize(("answer", "attempts"), [(503, 3), (408, 3), (429, 3), (400, 1),
                                                  (404, 1)])
async def test_a_webhook_error_is_retried_unless_it_is_a_refusal(
    aiohttp_client: Any, tmp_path: Path, answer: int, attempts: int
) -> None:
    """5xx, 408 and 429 say "not now" and are retried; any other 4xx is final."""
    hits: list[int] = []

    async def down(request: web.Request) -> web.Response:
        hits.append(1)
        return web.json_response({"error": "no"}, status=answer)

    receiver = web.Application()
    receiver.router.add_post("/twitter", down)
    async with TestServer(receiver, host="127.0.0.1") as hook:
        settings = Settings.load({}, overrides={
            "data_dir": str(tmp_path / "down"), "access_log": "false",
            "job_retry_base": "0.01", "job_retry_cap": "0.05",
            "webhook_twitter": str(hook.make_url("/twitter"))})
        server = await aiohttp_client(create_app(settings))
        admin = auth((settings.data_dir / "admin.key").read_text().strip())
        response = await server.post("/api/v2/content/sync", headers=admin,
                                     json=body(channels=["website", "twitter"]))
        job = await finished(server, (await response.json())["job_id"])
    assert job["status"] == "partial" and job["attempts"] == attempts
    assert len(hits) == attempts
    # The last attempt ended partial; each earlier one is in the errors.
    assert [e["attempt"] for e in job["errors"]] == list(range(1, attempts))
    assert str(answer) in job["results"]["twitter"]["error"]


async def test_seed_form_spellings_and_dry_run(client: Client, operator: dict[str, str]) -> None:
    response = await client.post("/api/v2/content/generate", headers=operator, json={
        "living_doc_id": None, "text": FIXTURE, "channel": "twitter", "tone": "casual",
        "dry_run": True})
    job = await finished(client, (await response.json())["job_id"])
    twitter = job["results"]["twitter"]
    assert job["status"] == "completed" and twitter["content_id"] is None
    assert all(len(post) <= 280 for post in twitter["content"]["posts"])


async def test_v1_paths_pick_their_channels(client: Client, operator: dict[str, str]) -> None:
    email = await client.post("/api/v1/generate/email", headers=operator, json=body())
    social = await client.post("/api/v1/generate/social", headers=operator,
                               json=body(platforms=["linkedin"]))
    everything = await client.post("/api/v1/generate", headers=operator, json=body())
    assert (await email.json())["channels"] == ["email"]
    assert (await social.json())["channels"] == ["social_linkedin"]
    assert (await everything.json())["channels"] == CHANNELS
    refused = await client.post("/api/v1/generate/social", headers=operator,
                                json=body(channels=["email"]))
    assert refused.status == 422


async def test_bad_requests_create_no_job(client: Client, operator: dict[str, str]) -> None:
    for bad in ({"channels": ["email"]}, body(channels=["fax"]), body(tone="angry"),
                body(schedule_time="soon")):
        response = await client.post("/api/v2/content/generate", headers=operator, json=bad)
        assert response.status == 422 and "detail" in await response.json()
    assert client.app[ENGINE].stats()["since_start"]["submitted"] == 0


async def test_schedule_time_defers_the_job(client: Client, operator: dict[str, str]) -> None:
    response = await client.post("/api/v2/content/generate", headers=operator,
                                 json=body(schedule_time="2099-01-01T00:00:00Z"))
    job = await response.json()
    assert job["scheduled_for"] == "2099-01-01T00:00:00.000Z"
    await client.app[ENGINE].join()
    assert (await client.app[ENGINE].get(job["job_id"])).status.value == "pending"


async def test_batches_parallel_and_in_order(client: Client, operator: dict[str, str]) -> None:
    requests = [body(title=f"Note {n}", channels=["email"]) for n in range(3)]
    for path, parallel in (("/api/v2/batch/generate", True), ("/api/v2/content/batch", False),
                           ("/api/v1/batch/generate", True)):
        response = await client.post(path, headers=operator,
                                     json={"requests": requests, "parallel": parallel})
        created = await response.json()
        assert response.status == 202 and created["total"] == 3
        await client.app[ENGINE].join()
        for job in created["jobs"]:
            assert (await client.app[ENGINE].get(job["job_id"])).status.value == "completed"
    refused = await client.post("/api/v2/batch/generate", headers=operator, json={
        "requests": [*requests, {"channels": ["fax"]}], "fail_fast": True})
    assert refused.status == 422
    assert (await refused.json())["error"]["details"]["errors"][0]["index"] == 3


async def test_generate_from_a_stored_document(client: Client, operator: dict[str, str]) -> None:
    created = await client.post("/api/documents", headers=operator, json={
        "title": "Field guide", "text": FIXTURE, "format": "markdown",
        "metadata": {"tags": ["field teams", "offline sync"]}})
    document = await created.json()
    response = await client.post("/api/v2/content/generate", headers=operator, json={
        "living_doc_id": document["id"], "channel": "twitter", "tone": "casual"})
    job = await finished(client, (await response.json())["job_id"])
    assert job["status"] == "completed" and job["document_id"] == document["id"]
    item = await (await client.get(
        f"/api/v2/content/{job['results']['twitter']['content_id']}", headers=operator)).json()
    assert item["document_id"] == document["id"]
    assert "Field guide" in item["body"]["posts"][0] and "#FieldTeams" in item["body"]["posts"][0]
    preview = await client.get("/api/v1/preview", headers=operator,
                               params={"document_id": document["id"], "channels": "email"})
    shown = await preview.json()
    assert shown["document_id"] == document["id"] and shown["title"] == "Field guide"
    assert "Field guide" in shown["previews"]["email"]["subject"]
    missing = await client.post("/api/v2/content/generate", headers=operator,
                                json={"document_id": "doc_missing", "channels": ["email"]})
    assert missing.status == 404
    assert (await client.get("/api/v1/preview", headers=operator,
                             params={"document_id": "doc_missing"})).status == 404
