"""Generation: jobs that turn a document into content per channel; preview and validate.

Every generate path answers 202 with the created job (the client contract's job object).
``/api/v2/content/sync`` also publishes, as does any request with ``"publish": true``; the
other paths store drafts. ``dry_run`` renders into the job's results and stores nothing.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from ..appkeys import CONTENT, CORRELATION_ID
from ..content import batch
from ..content.channels import SOCIAL_CHANNELS
from ..content.request import parse
from ..errors import Invalid
from .contract import given
from .responses import json_response
from .schemas.content import BatchGenerate, ContentToCheck, Generate, GenerateSocial, PreviewQuery


async def _submit(
    request: web.Request, body: Generate, *, publish: bool | None = None,
    social_only: bool = False,
) -> web.Response:
    idempotency = request.headers.get("Idempotency-Key") or body.idempotency_key
    if idempotency is not None and len(idempotency) > 200:
        raise Invalid("Idempotency-Key: longer than 200 characters",
                      {"field": "Idempotency-Key"})
    job = await request.app[CONTENT].submit(
        body, publish=publish, social_only=social_only,
        correlation_id=request.get(CORRELATION_ID), idempotency_key=idempotency)
    return json_response(job.to_json(), status=202)


async def generate(request: web.Request, body: Generate) -> web.Response:
    """Create a generate job; drafts unless ``publish`` is true."""
    return await _submit(request, body)


async def generate_email(request: web.Request, body: Generate) -> web.Response:
    """Create a generate job for the email channel only."""
    return await _submit(request, msgspec.structs.replace(body, channels="email", channel=None))


async def generate_social(request: web.Request, body: GenerateSocial) -> web.Response:
    """Create a generate job for social channels (``platforms`` or ``channels``; all three)."""
    wanted = body.platforms or body.channels or ",".join(c.value for c in SOCIAL_CHANNELS)
    return await _submit(request, msgspec.structs.replace(body, channels=wanted),
                         social_only=True)


async def sync(request: web.Request, body: Generate) -> web.Response:
    """Generate and publish (what the original backend's sync did)."""
    return await _submit(request, body, publish=True)


async def batch_generate(request: web.Request, body: BatchGenerate) -> web.Response:
    """Several generate requests at once, ``parallel`` or in order, optionally ``fail_fast``."""
    plan = batch.plan(msgspec.to_builtins(body))
    created = await request.app[CONTENT].submit_batch(
        plan, correlation_id=request.get(CORRELATION_ID))
    return json_response(created, status=202)


async def preview(request: web.Request, query: PreviewQuery) -> web.Response:
    """Render channels of a document (or inline ``title``/``text``) without storing anything."""
    return json_response(await request.app[CONTENT].preview(parse(given(query))))


async def validate(request: web.Request, body: ContentToCheck) -> web.Response:
    """Check content: ``is_valid``, ``issues``, ``warnings`` and ``enhanced_metadata``."""
    return json_response(await request.app[CONTENT].validate(msgspec.to_builtins(body)))
