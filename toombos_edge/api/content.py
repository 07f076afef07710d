"""Stored content: read, edit (each edit keeps the prior version), delete, versions."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from ..appkeys import CONTENT, CORRELATION_ID
from ..content.store import LIST_FILTERS
from .contract import given
from .responses import json_response
from .schemas.content import ContentEdit, ContentQuery, PublishBody


async def list_content(request: web.Request, query: ContentQuery) -> web.Response:
    """Content items, newest first, by ``job_id``, ``document_id``, ``channel``, ``status``."""
    limit, offset = query.limit, query.offset
    asked = given(query)
    filters = {name: asked[name] for name in LIST_FILTERS if name in asked}
    items, total = await request.app[CONTENT].store.find(filters, limit, offset)
    return json_response({"content": [item.to_json() for item in items], "total": total,
                          "limit": limit, "offset": offset})


async def get_content(request: web.Request) -> web.Response:
    """One content item with its current body, version and publication state."""
    service = request.app[CONTENT]
    item = await service.store.get(request.match_info["content_id"])
    body: dict[str, Any] = item.to_json()
    if item.channel == "website" and item.slug:
        views = await service.store.views(item.slug)
        body["views"] = {"total": sum(views.values()), "by_day": views}
    return json_response(body)


async def update_content(request: web.Request, body: ContentEdit) -> web.Response:
    """Change fields of the body (``subject``, ``html``, ``posts`` …) as a new version."""
    changes = msgspec.to_builtins(body)
    item = await request.app[CONTENT].update(request.match_info["content_id"], changes)
    return json_response(item.to_json())


async def publish_content(request: web.Request, body: PublishBody) -> web.Response:
    """Publish a stored item through a ``publish`` job (retried if its sink fails)."""
    job = await request.app[CONTENT].submit_publish(
        request.match_info["content_id"], body.recipients or [],
        correlation_id=request.get(CORRELATION_ID))
    return json_response(job.to_json(), status=202)


async def delete_content(request: web.Request) -> web.Response:
    """Delete an item and all its versions."""
    content_id = request.match_info["content_id"]
    await request.app[CONTENT].store.delete(content_id)
    return json_response({"deleted": True, "content_id": content_id})


async def versions(request: web.Request) -> web.Response:
    """Every version of an item, newest (current) first."""
    content_id = request.match_info["content_id"]
    found = await request.app[CONTENT].store.versions(content_id)
    return json_response({"content_id": content_id, "versions": found, "total": len(found)})


async def templates(request: web.Request) -> web.Response:
    """The templates per channel and style, with their variables and where they come from."""
    return json_response(await request.app[CONTENT].templates())
