"""Critical operations: emergency publishing, rollback, and the state of the system."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import CONTENT, CORRELATION_ID, CRITICAL
from ..errors import Invalid
from .contract import given
from .responses import json_response
from .schemas.critical import Emergency, Rollback


async def emergency_publish(request: web.Request, body: Emergency) -> web.Response:
    """Publish now, ahead of every queued job and even while the queue is paused."""
    jobs = await request.app[CONTENT].emergency(given(body),
                                                correlation_id=request.get(CORRELATION_ID))
    return json_response({"status": "accepted", "urgent": True,
                          "jobs": [job.to_json() for job in jobs]}, status=202)


async def rollback(request: web.Request, body: Rollback) -> web.Response:
    """Restore the previous version of ``content_id`` (or every item of ``job_id``)."""
    items = request.app[CONTENT].items
    if body.content_id is not None:
        rolled = [await items.rollback(body.content_id, body.to_version, body.republish)]
    elif body.job_id is not None:
        rolled = await items.rollback_job(body.job_id, body.republish)
    else:
        raise Invalid("content_id: give a 'content_id' or a 'job_id' to roll back",
                      {"field": "content_id"})
    return json_response({"rolled_back": rolled, "total": len(rolled)})


async def status(request: web.Request) -> web.Response:
    """Queue state, failing jobs, their last errors and the components not passing."""
    return json_response(await request.app[CRITICAL].report())
