"""The content service: render (through the cache), store and publish per channel; the
generate jobs of a request, a batch, an emergency; previews, validation, templates.

Used by the ``generate`` and ``publish`` job handlers and by the content API (stored items
are ``ContentService.items``, see ``items.py``). Rendering runs in threads; every step that
can fail for one channel fails only that channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..cache.protocol import Cache
from ..errors import Invalid, Unavailable
from ..events import EventBus
from ..ids import iso, now_ms
from ..jobs.kinds import Outcome, PermanentFailure
from ..records.content import ContentItem, new_item
from ..records.job import Job
from ..store.content import ContentStore
from .batch import BatchPlan
from .cached_render import CachedRenderer, Rendered
from .channels import Channel, parse_channel
from .items import ContentItems, JobSubmitter, announce
from .publish import Publisher, PublishError
from .render import Renderer, RenderOptions
from .request import GenerateRequest, parse
from .request_body import GenerateFields, request_of
from .source import DocumentLookup, Source, resolve
from .text import slugify
from .validate import validate

log = logging.getLogger(__name__)

Progress = Callable[[float, str], Awaitable[None]]
#: A channel's result when its content was made but has no sink to go to on this server.
DRAFT = "draft"


class GenerationFailed(Exception):
    """Every channel of a generate job failed; the job fails (and may be retried)."""


class GenerationImpossible(GenerationFailed, PermanentFailure):
    """Every channel failed for a reason a retry cannot cure (a template that does not
    render, a sink that refused for good): the job fails at once, its results kept."""


async def _no_progress(percent: float, message: str) -> None:
    return None


class ContentService:
    """Generation: previews, generate jobs (one, a batch, an emergency) and what they run;
    ``items`` does everything with the stored items. Collaborators are injected so tests
    can build it."""

    def __init__(
        self,
        store: ContentStore,
        renderer: Renderer,
        publisher: Publisher,
        cache: Cache | None = None,
        documents: DocumentLookup | None = None,
        *,
        bus: EventBus | None = None,
        jobs: JobSubmitter | None = None,
    ) -> None:
        self._store = store
        self.bus = bus
        self.renderer = renderer
        self.publisher = publisher
        self.cache = cache
        self.rendering = CachedRenderer(renderer, cache)
        self.documents = documents
        self.jobs = jobs  #: None: no engine (a test of rendering); submitting is refused
        self.items = ContentItems(store, publisher, jobs=jobs, bus=bus)

    def __repr__(self) -> str:
        return f"<ContentService {self.rendering!r}>"

    # -- rendering --------------------------------------------------------------------

    async def source(self, request: GenerateRequest) -> Source:
        return await resolve(request, self.documents)

    def options(self, request: GenerateRequest, source: Source) -> RenderOptions:
        link = request.link
        if link is None and Channel.website in request.channels:
            link = self.publisher.config.site_url(slugify(source.title))
        return RenderOptions(request.style, request.tone, request.content_type, link)

    async def preview(self, request: GenerateRequest) -> dict[str, Any]:
        """Every requested channel rendered, nothing stored (the preview call)."""
        source = await self.source(request)
        options = self.options(request, source)
        previews: dict[str, Any] = {}
        rendered = await self.rendering.render_many(source, request.channels, options)
        for channel, body in rendered.items():
            if isinstance(body, Exception):
                raise body
            previews[channel.result_key] = body
        return {"document_id": source.document_id, "title": source.title,
                "channels": [c.value for c in request.channels], "previews": previews,
                "template_style": request.style.value, "tone": request.tone.value,
                "content_type": request.content_type.value, "generated_at": iso(now_ms())}

    # -- generation -------------------------------------------------------------------

    async def generate(
        self,
        request: GenerateRequest,
        job_id: str | None = None,
        progress: Progress = _no_progress,
        final_attempt: bool = True,
    ) -> tuple[dict[str, Any], bool]:
        """Render, store and (when asked) publish each channel; returns (results, partial).

        Idempotent per job: a retried job reuses the items it stored and skips those it
        already published. Raises ``GenerationFailed`` when every channel failed
        (``GenerationImpossible`` when none of them can succeed on a retry), and
        ``PublishError`` when a sink failed in a way a retry may cure and attempts remain.
        """
        source = await self.source(request)
        options = self.options(request, source)
        existing = {i.channel: i for i in await self._store.for_job(job_id)} if job_id else {}
        await progress(5, "rendering")
        todo = [c for c in request.channels if c.value not in existing]
        bodies = await self.rendering.render_many(source, todo, options) if todo else {}
        items = {**existing, **await self._store_new(request, source, bodies, job_id)}
        results: dict[str, Any] = {}
        retryable: list[str] = []
        for index, channel in enumerate(request.channels):
            await progress(10 + 90 * index / len(request.channels), channel.value)
            result = await self._channel_result(request, bodies.get(channel),
                                                items.get(channel.value))
            if result.pop("_retryable", False):
                retryable.append(channel.result_key)
            results[channel.result_key] = result
        return self._conclude(results, retryable, final_attempt)

    async def _store_new(
        self, request: GenerateRequest, source: Source, bodies: dict[Channel, Rendered],
        job_id: str | None,
    ) -> dict[str, ContentItem]:
        """Store the fresh renders as drafts, in one write (none for a dry run)."""
        if request.dry_run:
            return {}
        fresh = [new_item(channel.value, body, job_id=job_id, document_id=source.document_id,
                          style=request.style.value, tone=request.tone.value,
                          content_type=request.content_type.value)
                 for channel, body in bodies.items() if not isinstance(body, Exception)]
        return {item.channel: item for item in await self._store.add_many(fresh)}

    @staticmethod
    def _conclude(
        results: dict[str, Any], retryable: list[str], final_attempt: bool
    ) -> tuple[dict[str, Any], bool]:
        failed = [name for name, r in results.items() if r["status"] == "failed"]
        if failed and len(failed) == len(results):
            errors = "; ".join(f"{n}: {results[n]['error']}" for n in failed)
            if retryable:
                raise GenerationFailed(f"every channel failed: {errors}")
            raise GenerationImpossible(f"every channel failed: {errors}", Outcome(results))
        if retryable and not final_attempt:
            raise PublishError(f"publishing failed for {', '.join(retryable)}; retrying")
        return results, bool(failed)

    async def _channel_result(
        self, request: GenerateRequest, body: Rendered | None, item: ContentItem | None
    ) -> dict[str, Any]:
        if isinstance(body, Exception):
            return _result(status="failed", error=f"{type(body).__name__}: {body}")
        if item is None:  # a dry run: the render is the result
            assert body is not None
            return _result(sent=False, content=body, url=body.get("url"))
        if not request.publish or item.status == "published":
            return _result(content_id=item.id, version=item.version,
                           sent=item.status == "published", url=item.published_url)
        missing = self.publisher.missing_sink(parse_channel(item.channel))
        if missing is not None:  # generated all the same: kept as a draft, not a failure
            return _result(status=DRAFT, content_id=item.id, version=item.version,
                           reason=f"{missing}; kept as a draft")
        return await self._publish_result(item, request.recipients)

    async def _publish_result(
        self, item: ContentItem, recipients: tuple[str, ...]
    ) -> dict[str, Any]:
        try:
            publication = await self.publisher.publish(item, recipients)
        except PublishError as exc:
            return _result(status="failed", content_id=item.id, version=item.version,
                           error=str(exc), _retryable=not isinstance(exc, PermanentFailure))
        return _result(content_id=item.id, version=item.version, sent=True,
                       url=publication.url, detail=publication.detail)

    # -- jobs -------------------------------------------------------------------------

    async def submit(
        self, body: GenerateFields, *, publish: bool | None = None, social_only: bool = False,
        **options: Any,
    ) -> Job:
        """Create the ``generate`` job a client's body asks for (``publish`` overrides the
        body's; ``social_only`` refuses other channels; options: correlation_id …)."""
        request = request_of(body, publish=publish)
        if social_only and any(not c.is_social for c in request.channels):
            raise Invalid("channels: this path makes social posts only", {"field": "channels"})
        return await self._submit(request, **options)

    async def _submit(self, request: GenerateRequest, **options: Any) -> Job:
        """Create the ``generate`` job of a parsed request (options: urgent …)."""
        if self.jobs is None:
            raise Unavailable("the job engine is not running")
        if request.document_id is not None:
            await self._check_document(request.document_id)
        return await self.jobs.submit(
            "generate", request.to_params(), document_id=request.document_id,
            channels=[c.value for c in request.channels], scheduled_for=request.scheduled_for,
            metadata=request.metadata, validated=True, **options)

    async def _check_document(self, document_id: str) -> None:
        """Refuse a request for a document that is not there before a job is made of it."""
        if self.documents is None:
            raise Unavailable("documents are not available on this server; send 'text' inline")
        await self.documents.get(document_id)  # NotFound (404)

    async def submit_batch(self, plan: BatchPlan, **options: Any) -> dict[str, Any]:
        """Create every job of a checked batch, in order.

        In an ordered batch each job depends on the one before it (stored: the engine
        claims it only once that one has ended, and a fail-fast batch cancels the rest
        after a failure), so no worker waits and a restart loses nothing.
        """
        jobs: list[Job] = []
        for request in plan.requests:
            after = None if plan.parallel or not jobs else jobs[-1].id
            jobs.append(await self._submit(
                request, depends_on=after, fail_fast=plan.fail_fast and after is not None,
                **options))
        return {"batch_id": plan.id, "jobs": [job.to_json() for job in jobs],
                "total": len(jobs), "errors": plan.errors, "parallel": plan.parallel,
                "fail_fast": plan.fail_fast}

    async def emergency(self, body: dict[str, Any], **options: Any) -> list[Job]:
        """Publish now, ahead of everything queued (even when paused).

        ``content_id`` / ``content_ids`` publish stored items; any other body is a generate
        request that is generated and published.
        """
        if self.jobs is None:
            raise Unavailable("the job engine is not running")
        ids = body.get("content_ids", [body["content_id"]] if "content_id" in body else None)
        if ids is None:
            jobs = [await self._submit(parse(body, publish=True), urgent=True, **options)]
        else:
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise Invalid("'content_ids' must be a non-empty list of content ids")
            for content_id in ids:
                await self.items.get(content_id)  # NotFound before anything is queued
            recipients = body.get("recipients", [])
            jobs = [await self.jobs.submit("publish", {"content_id": i, "recipients": recipients},
                                           urgent=True, **options) for i in ids]
        announce(self.bus, "emergency_publish", content_ids=ids,
                 job_ids=[job.id for job in jobs])
        return jobs

    async def validate(self, body: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(validate, body)

    async def templates(self) -> dict[str, Any]:
        library = self.renderer.templates

        def listing() -> dict[str, Any]:
            found = [info.to_json() for info in library.list()]
            return {"templates": found, "total": len(found), "version": library.version()}

        return await asyncio.to_thread(listing)

def _result(status: str = "success", **fields: Any) -> dict[str, Any]:
    """One channel's entry in a job's results (the client contract's shape)."""
    return {"status": status, "sent": fields.pop("sent", False),
            "content_id": fields.pop("content_id", None), "url": fields.pop("url", None),
            "error": fields.pop("error", None), "timestamp": iso(now_ms()), **fields}
