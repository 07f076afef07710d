"""The content item record: one channel's rendered body, its version and publication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ids import iso, new_id, now_ms


@dataclass(frozen=True, slots=True)
class ContentItem:
    """One stored item; ``body`` is the channel's rendered fields, times are integer ms."""

    id: str
    job_id: str | None
    document_id: str | None
    channel: str
    style: str
    tone: str
    content_type: str
    slug: str | None
    body: dict[str, Any]
    version: int
    status: str
    published_url: str | None
    published_at: int | None
    created_at: int
    updated_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "content_id": self.id, "id": self.id, "job_id": self.job_id,
            "document_id": self.document_id, "channel": self.channel, "style": self.style,
            "tone": self.tone, "content_type": self.content_type, "slug": self.slug,
            "body": self.body, "version": self.version, "status": self.status,
            "published_url": self.published_url, "published_at": iso(self.published_at),
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        }


def new_item(
    channel: str, body: dict[str, Any], *, job_id: str | None, document_id: str | None,
    style: str, tone: str, content_type: str,
) -> ContentItem:
    """A fresh draft at version 1 (its slug, for a page, is the body's)."""
    at = now_ms()
    return ContentItem(new_id("cnt"), job_id, document_id, channel, style, tone, content_type,
                       body.get("slug"), body, 1, "draft", None, None, at, at)
