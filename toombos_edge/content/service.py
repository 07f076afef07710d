"""The content service: render (through the cache), store, publish, roll back.

Used by the ``generate`` and ``publish`` job handlers and by the content API. Rendering
runs in threads; every step that can fail for one channel fails only that channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from ..cache.protocol import Cache
from ..errors import Invalid, NotFound, Unavailable
from ..events import CRITICAL_OPERATION, Event, EventBus
from ..ids import iso, now_ms
from ..jobs.kinds import Outcome, PermanentFailure
from ..records.content import ContentItem, new_item
from ..store.content import LIST_FILTERS, ContentStore
from .batch import BatchPlan
from .cached_render import CachedRenderer, Rendered
from .channels import Channel, parse_channel
from .edits import parse_edit
from .publish import Publication, Publisher, PublishError
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


class JobSubmitter(Protocol):
    """The one engine call the service needs (publish jobs after a rollback, emergencies)."""

    async def submit(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        scheduled_for: int | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        document_id: str | None = None,
        channels: Sequence[str] | None = None,
        urgent: bool = False,
        depends_on: str | None = None,
        fail_fast: bool = False,
    ) -> Any: ...


async def _no_progress(percent: float, message: str) -> None:
    return None


class ContentService:
    """Everything done with content; collaborators are injected so tests can build it."""

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
    ) -> Any:
        """Create the ``generate`` job a client's body asks for (``publish`` overrides the
        body's; ``social_only`` refuses other channels; options: correlation_id …)."""
        request = request_of(body, publish=publish)
        if social_only and any(not c.is_social for c in request.channels):
            raise Invalid("channels: this path makes social posts only", {"field": "channels"})
        return await self._submit(request, **options)

    async def _submit(self, request: GenerateRequest, **options: Any) -> Any:
        """Create the ``generate`` job of a parsed request (options: urgent …)."""
        if self.jobs is None:
            raise Unavailable("the job engine is not running")
        if request.document_id is not None:
            await self._check_document(request.document_id)
        return await self.jobs.submit(
            "generate", request.to_params(), document_id=request.document_id,
            channels=[c.value for c in request.channels], scheduled_for=request.scheduled_for,
            metadata=request.metadata, **options)

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
        jobs: list[Any] = []
        for request in plan.requests:
            after = None if plan.parallel or not jobs else jobs[-1].id
            jobs.append(await self._submit(
                request, depends_on=after, fail_fast=plan.fail_fast and after is not None,
                **options))
        return {"batch_id": plan.id, "jobs": [job.to_json() for job in jobs],
                "total": len(jobs), "errors": plan.errors, "parallel": plan.parallel,
                "fail_fast": plan.fail_fast}

    async def emergency(self, body: dict[str, Any], **options: Any) -> list[Any]:
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
                await self._store.get(content_id)  # NotFound before anything is queued
            recipients = body.get("recipients", [])
            jobs = [await self.jobs.submit("publish", {"content_id": i, "recipients": recipients},
                                           urgent=True, **options) for i in ids]
        self._critical("emergency_publish", content_ids=ids,
                       job_ids=[getattr(job, "id", None) for job in jobs])
        return jobs

    def _critical(self, operation: str, **data: Any) -> None:
        """Announce a critical operation (for the activity log)."""
        if self.bus is not None:
            self.bus.publish(Event.data(CRITICAL_OPERATION, {"operation": operation, **data}))

    async def validate(self, body: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(validate, body)

    async def templates(self) -> dict[str, Any]:
        library = self.renderer.templates

        def listing() -> dict[str, Any]:
            found = [info.to_json() for info in library.list()]
            return {"templates": found, "total": len(found), "version": library.version()}

        return await asyncio.to_thread(listing)

    # -- content items ------------------------------------------------------------------

    async def submit_publish(self, content_id: str, recipients: Any, **options: Any) -> Any:
        """Queue a ``publish`` job for a stored item (a reviewed draft, say)."""
        if self.jobs is None:
            raise Unavailable("the job engine is not running")
        item = await self._store.get(content_id)  # NotFound before anything is queued
        return await self.jobs.submit("publish", {"content_id": item.id, "recipients": recipients},
                                      document_id=item.document_id, channels=[item.channel],
                                      **options)

    async def publish(self, content_id: str, recipients: tuple[str, ...] = ()) -> Publication:
        """Publish one stored item now; raises ``PublishError``."""
        return (await self.publish_item(content_id, recipients))[1]

    async def publish_item(
        self, content_id: str, recipients: tuple[str, ...] = ()
    ) -> tuple[ContentItem, Publication]:
        """Publish one stored item now (the ``publish`` job): the item as it was sent and
        its publication; raises ``PublishError``."""
        item = await self._store.get(content_id)
        return item, await self.publisher.publish(item, recipients)

    async def get(self, content_id: str) -> ContentItem:
        """One item as it is now (``NotFound``)."""
        return await self._store.get(content_id)

    async def for_job(self, job_id: str) -> list[ContentItem]:
        """The items a job made, in the order they were made."""
        return await self._store.for_job(job_id)

    async def show(self, content_id: str) -> dict[str, Any]:
        """One item's JSON; a website page's with its views per day."""
        item = await self._store.get(content_id)
        shown = item.to_json()
        if item.channel == "website" and item.slug:
            views = await self._store.views(item.slug)
            shown["views"] = {"total": sum(views.values()), "by_day": views}
        return shown

    async def find(self, filters: dict[str, str], limit: int, offset: int) -> dict[str, Any]:
        """A page of items, newest first, by ``LIST_FILTERS`` (other keys are ignored)."""
        wanted = {name: filters[name] for name in LIST_FILTERS if name in filters}
        items, total = await self._store.find(wanted, limit, offset)
        return {"content": [item.to_json() for item in items], "total": total,
                "limit": limit, "offset": offset}

    async def versions(self, content_id: str) -> dict[str, Any]:
        """Every version of an item, the current one first."""
        found = [v.to_json() for v in await self._store.versions(content_id)]
        return {"content_id": content_id, "versions": found, "total": len(found)}

    async def delete(self, content_id: str) -> None:
        """Delete an item and all its versions (``NotFound``)."""
        await self._store.delete(content_id)

    async def view_page(self, slug: str) -> str:
        """The HTML of the page published under ``slug``, counting the view; ``NotFound``
        when no page is published there."""
        item = await self._store.page(slug)
        if item is None:
            raise NotFound(f"no page at /site/{slug}")
        await self._store.count_view(slug, iso(now_ms())[:10])  # type: ignore[index]
        return str(item.body.get("html", ""))

    async def update(self, content_id: str, changes: dict[str, Any]) -> ContentItem:
        """Merge ``changes`` into the body as a new version (the old one is kept)."""
        fields, expected = parse_edit(changes)
        current = await self._store.get(content_id)
        return await self._store.update(content_id, {**current.body, **fields}, expected)

    async def rollback(
        self, content_id: str, to_version: int | None = None, republish: bool = True
    ) -> dict[str, Any]:
        """Restore an earlier version; republish it (urgently) if the item was live."""
        item = await self._store.rollback(content_id, to_version)
        job = None
        if republish and item.status == "published" and self.jobs is not None:
            job = await self.jobs.submit("publish", {"content_id": item.id}, urgent=True)
        job_id = getattr(job, "id", None)
        self._critical("rollback", content_id=item.id, version=item.version,
                       republish_job_id=job_id)
        return {"content": item.to_json(), "republish_job_id": job_id}

    async def rollback_job(self, job_id: str, republish: bool = True) -> list[dict[str, Any]]:
        """Roll back every item a job made; items without an earlier version are skipped."""
        items = await self._store.for_job(job_id)
        if not items:
            raise Invalid(f"job {job_id} made no content to roll back")
        out = []
        for item in items:
            try:
                out.append(await self.rollback(item.id, None, republish))
            except Exception as exc:  # report per item; the others still roll back
                out.append({"content_id": item.id, "error": str(exc)})
        return out


def _result(status: str = "success", **fields: Any) -> dict[str, Any]:
    """One channel's entry in a job's results (the client contract's shape)."""
    return {"status": status, "sent": fields.pop("sent", False),
            "content_id": fields.pop("content_id", None), "url": fields.pop("url", None),
            "error": fields.pop("error", None), "timestamp": iso(now_ms()), **fields}
