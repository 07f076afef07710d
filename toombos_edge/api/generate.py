"""Generation: jobs that turn a document into content per channel; preview and validate.

Every generate path answers 202 with the created job (the client contract's job object).
``/api/v2/content/sync`` also publishes, as does any request with ``"publish": true``; the
other paths store drafts. ``dry_run`` renders into the job's results and stores nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..appkeys import CONTENT, CORRELATION_ID
from ..content import batch
from ..content.channels import SOCIAL_CHANNELS
from ..content.request import parse
from ..errors import Invalid
from .responses import json_object, json_response

_QUERY_FIELDS = ("document_id", "living_doc_id", "title", "text", "content_type",
                 "template_style", "style", "tone", "link")


async def _submit(request: web.Request, body: dict[str, Any], publish: bool | None) -> web.Response:
    parsed = parse(body, publish=publish)
    idempotency = request.headers.get("Idempotency-Key") or body.get("idempotency_key")
    if idempotency is not None and (not isinstance(idempotency, str) or len(idempotency) > 200):
        raise Invalid("'idempotency_key' must be a string of at most 200 characters")
    job = await request.app[CONTENT].submit(
        parsed, correlation_id=request.get(CORRELATION_ID), idempotency_key=idempotency)
    return json_response(job.to_json(), status=202)


async def generate(request: web.Request) -> web.Response:
    """Create a generate job; drafts unless ``publish`` is true."""
    return await _submit(request, await json_object(request), publish=None)


async def generate_email(request: web.Request) -> web.Response:
    """Create a generate job for the email channel only."""
    body = await json_object(request)
    return await _submit(request, {**body, "channels": ["email"]}, publish=None)


async def generate_social(request: web.Request) -> web.Response:
    """Create a generate job for social channels (``platforms`` or ``channels``; all three)."""
    body = await json_object(request)
    wanted = body.get("platforms", body.get("channels")) or [c.value for c in SOCIAL_CHANNELS]
    body = {**body, "channels": wanted}
    parsed = parse(body)
    if any(not c.is_social for c in parsed.channels):
        raise Invalid("this path makes social posts only", {"field": "channels"})
    return await _submit(request, body, publish=None)


async def sync(request: web.Request) -> web.Response:
    """Generate and publish (what the original backend's sync did)."""
    return await _submit(request, await json_object(request), publish=True)


async def batch_generate(request: web.Request) -> web.Response:
    """Several generate requests at once, ``parallel`` or in order, optionally ``fail_fast``."""
    plan = batch.plan(await json_object(request))
    created = await request.app[CONTENT].submit_batch(
        plan, correlation_id=request.get(CORRELATION_ID))
    return json_response(created, status=202)


async def preview(request: web.Request) -> web.Response:
    """Render channels of a document (or inline ``title``/``text``) without storing anything."""
    query = request.query
    body: dict[str, Any] = {name: query[name] for name in _QUERY_FIELDS if name in query}
    if "channels" in query or "channel" in query:
        body["channels"] = query.get("channels", query.get("channel", ""))
    if "tags" in query:
        body["tags"] = query["tags"]
    return json_response(await request.app[CONTENT].preview(parse(body)))


async def validate(request: web.Request) -> web.Response:
    """Check content: ``is_valid``, ``issues``, ``warnings`` and ``enhanced_metadata``."""
    return json_response(await request.app[CONTENT].validate(await json_object(request)))
