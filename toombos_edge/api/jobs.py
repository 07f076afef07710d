"""Jobs over HTTP: list, read, submit, retry, cancel, batches, export, queue pause."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from ..appkeys import CORRELATION_ID, ENGINE, JOBS
from ..jobs.export import CONTENT_TYPES
from .job_params import body_filter, job_ids, new_job, paging, query_fieldset, query_filter
from .responses import json_response
from .schemas.jobs import BatchBody, ExportQuery, JobListQuery, NewJob


async def list_jobs(request: web.Request, query: JobListQuery) -> web.Response:
    """Jobs newest first, filtered by status, kind, q, from/to; offset or cursor paging.

    ``fields=job_id,status,…`` returns each job with only those keys (a light list).
    """
    flt, paged, fieldset = query_filter(query), paging(query), query_fieldset(query)
    page = await request.app[JOBS].fields_page(
        flt, fieldset, paged.limit, offset=paged.offset, cursor=paged.cursor)
    return json_response({
        "jobs": page.jobs,
        "total": page.total,
        "total_exact": page.total_exact,
        "page": paged.page,
        "page_size": paged.limit,
        "offset": paged.offset,
        "next_cursor": page.next_cursor,
    })


async def get_job(request: web.Request) -> web.Response:
    """One job with its status, progress, attempts, errors and results."""
    job = await request.app[ENGINE].get(request.match_info["job_id"])
    return json_response(job.to_json())


async def create_job(request: web.Request, body: NewJob) -> web.Response:
    """Submit a job; 202 with the job once it is stored (an unknown kind is a 422)."""
    fields = new_job(body, request.headers.get("Idempotency-Key"))
    if fields["correlation_id"] is None:
        fields["correlation_id"] = request[CORRELATION_ID]
    job = await request.app[ENGINE].submit(**fields)
    return json_response(job.to_json(), status=202)


async def retry_job(request: web.Request) -> web.Response:
    """Run a failed, partial or cancelled job again (same id, attempts reset); else 409."""
    job = await request.app[ENGINE].retry(request.match_info["job_id"])
    return json_response(job.to_json())


async def cancel_job(request: web.Request) -> web.Response:
    """Cancel a pending or running job; 409 when it already ended."""
    job = await request.app[ENGINE].cancel(request.match_info["job_id"])
    return json_response(job.to_json())


async def cancel_sync(request: web.Request) -> web.Response:
    """The dashboard's cancel: ``{"cancelled": true}``; 409 when the job already ended."""
    job = await request.app[ENGINE].cancel(request.match_info["job_id"])
    return json_response({"cancelled": True, "job_id": job.id, "job": job.to_json()})


async def batch_retry(request: web.Request, body: BatchBody) -> web.Response:
    """Retry jobs by ``job_ids`` or by the list's filter; counts what it touched and refused."""
    return await _batch(request, body, "retry")


async def batch_cancel(request: web.Request, body: BatchBody) -> web.Response:
    """Cancel jobs by ``job_ids`` or by the list's filter; counts touched and refused."""
    return await _batch(request, body, "cancel")


async def _batch(
    request: web.Request, body: BatchBody, action: Literal["retry", "cancel"]
) -> web.Response:
    ids = job_ids(body)
    flt = body_filter(body) if ids is None else None
    tally = await request.app[JOBS].batch(action, ids, flt)
    return json_response(tally.to_json())


async def export_jobs(request: web.Request, query: ExportQuery) -> web.StreamResponse:
    """Every matching job as CSV or JSON (``format``), streamed a page at a time."""
    fmt = query.format
    flt, fieldset = query_filter(query), query_fieldset(query)
    response = web.StreamResponse(headers={
        "Content-Type": CONTENT_TYPES[fmt],
        "Content-Disposition": f'attachment; filename="jobs.{fmt}"',
    })
    await response.prepare(request)
    async for chunk in request.app[JOBS].export(flt, fmt, fieldset):
        await response.write(chunk)
    await response.write_eof()
    return response


async def pause_queue(request: web.Request) -> web.Response:
    """Stop starting jobs (running ones finish; urgent ones still run)."""
    engine = request.app[ENGINE]
    engine.pause()
    return json_response({"paused": True, "stats": engine.stats()})


async def resume_queue(request: web.Request) -> web.Response:
    """Start taking jobs again."""
    engine = request.app[ENGINE]
    engine.resume()
    return json_response({"paused": False, "stats": engine.stats()})
