"""The content store: content items, their earlier versions, page views, publishing marks.

What any backend must guarantee is said per method. Ids are our string ids (they sort by
creation time), times are integer milliseconds since the epoch (UTC). ``NotFound`` and
``Conflict`` come from ``errors``; nothing here assumes one writer or one node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..ids import iso
from ..records.content import ContentItem

#: The fields a listing may filter on (equality).
LIST_FILTERS = ("job_id", "document_id", "channel", "status")


@dataclass(frozen=True, slots=True)
class ContentVersion:
    """One body an item had (``current``: the one it has now)."""

    version: int
    body: dict[str, Any]
    created_at: int  #: when this body became current
    replaced_at: int | None  #: when a later body replaced it (None for the current one)
    current: bool

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "current": self.current, "body": self.body,
                "created_at": iso(self.created_at), "replaced_at": iso(self.replaced_at)}


class ContentStore(Protocol):
    """Content items and their history. Every change of a body keeps the body it replaced."""

    async def add_many(self, items: list[ContentItem]) -> list[ContentItem]:
        """Store new items (a job's channels) in one transaction: all of them or none."""
        ...

    async def get(self, content_id: str) -> ContentItem:
        """The item as it is now; ``NotFound`` when there is none."""
        ...

    async def for_job(self, job_id: str) -> list[ContentItem]:
        """The items a job made, in the order they were created (by id)."""
        ...

    async def find(
        self, filters: dict[str, str], limit: int, offset: int
    ) -> tuple[list[ContentItem], int]:
        """A page of the items equal on every filter named in ``LIST_FILTERS`` (others are
        ignored), newest first (by id), and how many match in all."""
        ...

    async def update(
        self, content_id: str, fields: dict[str, Any], expected_version: int | None = None
    ) -> ContentItem:
        """Merge ``fields`` into the current body as the next version, in one transaction
        that also keeps the replaced body as an earlier version: two edits of different
        fields at once both land. ``Conflict`` (with the current version) when
        ``expected_version`` is given and the item is at another one; ``NotFound``."""
        ...

    async def rollback(self, content_id: str, to_version: int | None = None) -> ContentItem:
        """Make the body of ``to_version`` (default: the latest earlier one) current again,
        as a new version, in one transaction; nothing is lost. ``Conflict`` when there is no
        such earlier version; ``NotFound`` for an unknown item."""
        ...

    async def versions(self, content_id: str) -> list[ContentVersion]:
        """Every version of an item, the current one first, then newest to oldest;
        ``NotFound`` for an unknown item."""
        ...

    async def mark_published(self, content_id: str, url: str | None, at: int) -> ContentItem:
        """Record that the item was published at ``at`` (to ``url``); its body and version
        do not change. Returns the item as updated."""
        ...

    async def delete(self, content_id: str) -> None:
        """Delete an item with every earlier version of it; ``NotFound`` when none."""
        ...

    async def page(self, slug: str) -> ContentItem | None:
        """The website item published last under ``slug`` (drafts are never pages)."""
        ...

    async def count_view(self, slug: str, day: str) -> None:
        """Count one view of the page ``slug`` on ``day`` (``YYYY-MM-DD``, UTC). Concurrent
        counts of one slug and day must all be kept (an upsert, not read-then-write)."""
        ...

    async def views(self, slug: str) -> dict[str, int]:
        """The views of a page per day (``YYYY-MM-DD``), days in order."""
        ...
