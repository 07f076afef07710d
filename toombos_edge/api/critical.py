"""Critical operations: emergency publishing, rollback, and the state of the system."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..appkeys import CONTENT, CORRELATION_ID, DATABASE, ENGINE, HEALTH
from ..critical import CriticalStatus
from ..errors import Invalid
from .responses import json_object, json_response


async def emergency_publish(request: web.Request) -> web.Response:
    """Publish now, ahead of every queued job and even while the queue is paused."""
    body = await json_object(request)
    jobs = await request.app[CONTENT].emergency(body, correlation_id=request.get(CORRELATION_ID))
    return json_response({"status": "accepted", "urgent": True,
                          "jobs": [job.to_json() for job in jobs]}, status=202)


async def rollback(request: web.Request) -> web.Response:
    """Restore the previous version of ``content_id`` (or every item of ``job_id``)."""
    body = await json_object(request)
    content_id, job_id = body.get("content_id"), body.get("job_id")
    to_version, republish = body.get("to_version"), body.get("republish", True)
    _check(content_id, job_id, to_version, republish)
    service = request.app[CONTENT]
    if isinstance(content_id, str):
        rolled = [await service.rollback(content_id, to_version, republish)]
    else:
        rolled = await service.rollback_job(str(job_id), republish)
    return json_response({"rolled_back": rolled, "total": len(rolled)})


async def status(request: web.Request) -> web.Response:
    """Queue state, failing jobs, their last errors and the components not passing."""
    report = CriticalStatus(request.app[ENGINE], request.app[HEALTH], request.app[DATABASE])
    return json_response(await report.report())


def _check(content_id: Any, job_id: Any, to_version: Any, republish: Any) -> None:
    if not isinstance(content_id, str) and not isinstance(job_id, str):
        raise Invalid("give a 'content_id' or a 'job_id' to roll back")
    if to_version is not None and (not isinstance(to_version, int) or isinstance(to_version, bool)
                                   or to_version < 1):
        raise Invalid("'to_version' must be a positive integer")
    if not isinstance(republish, bool):
        raise Invalid("'republish' must be true or false")
