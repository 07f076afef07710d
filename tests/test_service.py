"""The content service without HTTP: generation per channel, the cache, partial results,
retries that reuse what was stored, publishing, rollback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from toombos_edge.cache import ContentCache
from toombos_edge.content.publish import PublishConfig, Publisher, PublishError
from toombos_edge.content.render import Renderer
from toombos_edge.content.request import parse
from toombos_edge.content.request_body import GenerateFields
from toombos_edge.content.service import ContentService, GenerationFailed, GenerationImpossible
from toombos_edge.content.templates import TemplateLibrary
from toombos_edge.errors import Invalid, Unavailable
from toombos_edge.events import EventBus
from toombos_edge.store import Database
from toombos_edge.store.sqlite.cache import SqliteInvalidationHistory
from toombos_edge.store.sqlite.content import SqliteContentStore

FIXTURE = (Path(__file__).parent / "fixtures" / "launch.md").read_text()


@pytest.fixture
async def service(tmp_path: Path, db: Database) -> AsyncIterator[ContentService]:
    cache = ContentCache(tmp_path / "cache", history=SqliteInvalidationHistory(db))
    await cache.open()
    store = SqliteContentStore(db)
    config = PublishConfig("http://edge.test", tmp_path / "outbox", b"secret")
    made = ContentService(store, Renderer(TemplateLibrary(tmp_path / "templates")),
                          Publisher(config, store, EventBus()), cache=cache)
    yield made
    made.rendering.close()
    await cache.close()


def request(**extra: object) -> dict[str, object]:
    return {"title": "Offline sync", "text": FIXTURE, "tags": ["offline sync"], **extra}


async def test_every_channel_is_stored_as_a_draft(service: ContentService) -> None:
    results, partial = await service.generate(parse(request()), job_id="job_a")
    assert not partial and set(results) == {"email", "website", "twitter", "linkedin",
                                            "facebook"}
    for result in results.values():
        assert result["status"] == "success" and result["content_id"].startswith("cnt_")
        assert result["sent"] is False and result["timestamp"].endswith("Z")
    website = await service.items.get(results["website"]["content_id"])
    assert website.status == "draft" and website.slug == "offline-sync"
    email = await service.items.get(results["email"]["content_id"])
    assert "http://edge.test/site/offline-sync" in email.body["text"]  # links to the page


async def test_the_second_generation_comes_from_the_cache(service: ContentService) -> None:
    await service.generate(parse(request()), job_id="job_a")
    assert (service.rendering.rendered, service.rendering.cache_hits) == (5, 0)
    await service.generate(parse(request()), job_id="job_b")
    assert (service.rendering.rendered, service.rendering.cache_hits) == (5, 5)
    assert service.cache is not None
    await service.generate(parse(request(tone="encouraging")), job_id="job_c")
    assert service.rendering.rendered == 10  # a different tone is a different render


async def test_dry_run_stores_nothing(service: ContentService) -> None:
    results, _ = await service.generate(parse(request(dry_run=True, channels=["email"])),
                                        job_id="job_d")
    assert results["email"]["content_id"] is None
    assert results["email"]["content"]["subject"] == "Update: Offline sync"
    assert await service.items.for_job("job_d") == []


async def test_publish_failures_retry_then_end_partial(service: ContentService) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.json_response({"error": "maintenance"}, status=502)

    app = web.Application()
    app.router.add_post("/hook", down)
    wanted = parse(request(channels=["website", "social_twitter"], publish=True))
    async with TestServer(app, host="127.0.0.1") as server:
        service.publisher.config.webhooks["twitter"] = str(server.make_url("/hook"))
        with pytest.raises(PublishError, match="twitter"):
            await service.generate(wanted, job_id="job_p", final_attempt=False)
        first = {i.channel: i for i in await service.items.for_job("job_p")}
        assert first["website"].status == "published"  # done once, kept
        results, partial = await service.generate(wanted, job_id="job_p", final_attempt=True)
    assert partial and results["twitter"]["status"] == "failed"
    assert "webhook answered 502" in results["twitter"]["error"]
    assert results["website"]["url"] == "http://edge.test/site/offline-sync"
    assert {i.id for i in await service.items.for_job("job_p")} == {i.id for i in
                                                                     first.values()}


async def test_an_unconfigured_channel_is_a_draft_not_a_failure(
    service: ContentService,
) -> None:
    wanted = parse(request(channels=["website", "social_twitter"], publish=True))
    results, partial = await service.generate(wanted, job_id="job_u", final_attempt=False)
    assert not partial and results["website"]["sent"] is True
    twitter = results["twitter"]
    assert (twitter["status"], twitter["sent"], twitter["error"]) == ("draft", False, None)
    assert "TOOMBOS_WEBHOOK_TWITTER" in twitter["reason"]
    assert (await service.items.get(twitter["content_id"])).status == "draft"
    assert service.publisher.failed == 0  # nothing was tried, so nothing failed


async def test_sync_publishes_to_a_webhook(service: ContentService) -> None:
    posts: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        posts.append(await request.read())
        return web.json_response({"url": "https://social.example/1"})

    app = web.Application()
    app.router.add_post("/hook", receive)
    async with TestServer(app, host="127.0.0.1") as server:
        service.publisher.config.webhooks["linkedin"] = str(server.make_url("/hook"))
        results, partial = await service.generate(
            parse(request(channels=["linkedin"], publish=True)), job_id="job_s")
    assert not partial and results["linkedin"]["sent"] is True
    assert results["linkedin"]["url"] == "https://social.example/1" and len(posts) == 1


async def test_a_broken_template_fails_only_its_channel(
    service: ContentService, tmp_path: Path
) -> None:
    (tmp_path / "templates" / "social").mkdir(parents=True)
    (tmp_path / "templates" / "social" / "modern.txt").write_text("{{ no_such_function() }}")
    results, partial = await service.generate(
        parse(request(channels=["email", "twitter", "linkedin"])), job_id="job_t")
    assert partial and results["email"]["status"] == "success"
    assert results["twitter"]["status"] == results["linkedin"]["status"] == "failed"
    assert "Undefined" in results["twitter"]["error"]
    assert [i.channel for i in await service.items.for_job("job_t")] == ["email"]


async def test_all_channels_failing_fails_the_job(service: ContentService) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "page removed"}, status=410)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    async with TestServer(app, host="127.0.0.1") as server:
        service.publisher.config.webhooks["facebook"] = str(server.make_url("/hook"))
        with pytest.raises(GenerationImpossible) as raised:  # a 410 is final: no retry
            await service.generate(parse(request(channels=["facebook"], publish=True)),
                                   job_id="job_f")
    assert isinstance(raised.value, GenerationFailed) and raised.value.outcome is not None
    assert raised.value.outcome.results["facebook"]["status"] == "failed"


async def test_edit_and_rollback(service: ContentService) -> None:
    results, _ = await service.generate(parse(request(channels=["email"])), job_id="job_r")
    content_id = results["email"]["content_id"]
    edited = await service.items.update(content_id, {"subject": "Typo in subjcet"})
    assert edited.version == 2 and edited.body["text"]  # other fields kept
    with pytest.raises(Invalid):
        await service.items.update(content_id, {"version": 9})
    rolled = await service.items.rollback_job("job_r", republish=False)
    assert rolled[0]["content"]["body"]["subject"] == "Update: Offline sync"
    assert rolled[0]["content"]["version"] == 3


async def test_jobs_need_the_engine(service: ContentService) -> None:
    with pytest.raises(Unavailable):
        await service.submit(msgspec.convert(request(), GenerateFields))
    with pytest.raises(Unavailable):
        await service.emergency({"content_id": "cnt_x"})
    with pytest.raises(Unavailable):
        await service.items.submit_publish("cnt_x", [])
