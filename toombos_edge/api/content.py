"""Stored content: read, edit (each edit keeps the prior version), delete, versions."""

from __future__ import annotations

import msgspec
from aiohttp import web

from ..appkeys import CONTENT, CORRELATION_ID
from .contract import given
from .responses import json_response
from .schemas.content import ContentEdit, ContentQuery, PublishBody


async def list_content(request: web.Request, query: ContentQuery) -> web.Response:
    """Content items, newest first, by ``job_id``, ``document_id``, ``channel``, ``status``."""
    page = await request.app[CONTENT].items.find(given(query), query.limit, query.offset)
    return json_response(page)


async def get_content(request: web.Request) -> web.Response:
    """One content item with its current body, version and publication state."""
    return json_response(await request.app[CONTENT].items.show(request.match_info["content_id"]))


async def update_content(request: web.Request, body: ContentEdit) -> web.Response:
    """Change fields of the body (``subject``, ``html``, ``posts`` …) as a new version."""
    changes = msgspec.to_builtins(body)
    item = await request.app[CONTENT].items.update(request.match_info["content_id"], changes)
    return json_response(item.to_json())


async def publish_content(request: web.Request, body: PublishBody) -> web.Response:
    """Publish a stored item through a ``publish`` job (retried if its sink fails)."""
    job = await request.app[CONTENT].items.submit_publish(
        request.match_info["content_id"], body.recipients or [],
        correlation_id=request.get(CORRELATION_ID))
    return json_response(job.to_json(), status=202)


async def delete_content(request: web.Request) -> web.Response:
    """Delete an item and all its versions."""
    content_id = request.match_info["content_id"]
    await request.app[CONTENT].items.delete(content_id)
    return json_response({"deleted": True, "content_id": content_id})


async def versions(request: web.Request) -> web.Response:
    """Every version of an item, newest (current) first."""
    found = await request.app[CONTENT].items.versions(request.match_info["content_id"])
    return json_response(found)


async def templates(request: web.Request) -> web.Response:
    """The templates per channel and style, with their variables and where they come from."""
    return json_response(await request.app[CONTENT].templates())
