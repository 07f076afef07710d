"""Stored content items: read, list, edit (each edit a new version), delete, publish, roll
back, and the website's pages with their views.

The content API, the site and the ``publish`` job call these; generation stores items
through the same ``ContentStore``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import Invalid, NotFound, Unavailable
from ..events import CRITICAL_OPERATION, Event, EventBus
from ..records.content import ContentItem
from ..records.job import Job
from ..store.content import LIST_FILTERS, ContentStore
from .edits import parse_edit
from .publish import Publication, Publisher


class JobSubmitter(Protocol):
    """The one engine call content needs (generate jobs, publish jobs after a rollback,
    emergencies)."""

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
        validated: bool = False,
    ) -> Job: ...


def announce(bus: EventBus | None, operation: str, **data: Any) -> None:
    """Announce a critical operation (for the activity log)."""
    if bus is not None:
        bus.publish(Event.data(CRITICAL_OPERATION, {"operation": operation, **data}))


class ContentItems:
    """Everything done with stored items; ``jobs`` None: no engine, publishing is refused."""

    def __init__(
        self, store: ContentStore, publisher: Publisher, *, jobs: JobSubmitter | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._jobs = jobs
        self._bus = bus

    def __repr__(self) -> str:
        return f"<ContentItems {self._store!r}>"

    async def submit_publish(self, content_id: str, recipients: Any, **options: Any) -> Job:
        """Queue a ``publish`` job for a stored item (a reviewed draft, say)."""
        if self._jobs is None:
            raise Unavailable("the job engine is not running")
        item = await self._store.get(content_id)  # NotFound before anything is queued
        return await self._jobs.submit(
            "publish", {"content_id": item.id, "recipients": recipients},
            document_id=item.document_id, channels=[item.channel], **options)

    async def publish(self, content_id: str, recipients: tuple[str, ...] = ()) -> Publication:
        """Publish one stored item now; raises ``PublishError``."""
        return (await self.publish_item(content_id, recipients))[1]

    async def publish_item(
        self, content_id: str, recipients: tuple[str, ...] = ()
    ) -> tuple[ContentItem, Publication]:
        """Publish one stored item now (the ``publish`` job): the item as it was sent and
        its publication; raises ``PublishError``."""
        item = await self._store.get(content_id)
        return item, await self._publisher.publish(item, recipients)

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
        await self._store.count_view(slug, time.strftime("%Y-%m-%d", time.gmtime()))
        return str(item.body.get("html", ""))

    async def update(self, content_id: str, changes: dict[str, Any]) -> ContentItem:
        """Merge ``changes`` into the body as a new version (the old one is kept)."""
        fields, expected = parse_edit(changes)
        return await self._store.update(content_id, fields, expected)

    async def rollback(
        self, content_id: str, to_version: int | None = None, republish: bool = True
    ) -> dict[str, Any]:
        """Restore an earlier version; republish it (urgently) if the item was live."""
        item = await self._store.rollback(content_id, to_version)
        job = None
        if republish and item.status == "published" and self._jobs is not None:
            job = await self._jobs.submit("publish", {"content_id": item.id}, urgent=True)
        job_id = None if job is None else job.id
        announce(self._bus, "rollback", content_id=item.id, version=item.version,
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
