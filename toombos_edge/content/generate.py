"""The ``generate`` and ``publish`` job kinds and their handlers."""

from __future__ import annotations

from typing import Any

from ..errors import Invalid, NotFound
from ..jobs.kinds import JobContext, JobKind, Outcome, PermanentFailure
from .request import GenerateRequest, parse_recipients, validate_params
from .service import ContentService

GENERATE_TIMEOUT = 300.0
PUBLISH_TIMEOUT = 60.0
PUBLISH_ATTEMPTS = 5


def _final(ctx: JobContext) -> bool:
    return ctx.job.attempts >= ctx.job.max_attempts


def validate_publish(params: dict[str, Any]) -> dict[str, Any]:
    content_id = params.get("content_id")
    if not isinstance(content_id, str) or not content_id:
        raise Invalid("a publish job needs a 'content_id'", {"field": "content_id"})
    return {"content_id": content_id,
            "recipients": list(parse_recipients(params.get("recipients")))}


def kinds(service: ContentService) -> list[JobKind]:
    """The kinds content owns, bound to its service."""

    async def run_generate(ctx: JobContext) -> Outcome:
        request = GenerateRequest.from_params(ctx.params)
        try:
            results, partial = await service.generate(
                request, job_id=ctx.job.id, progress=ctx.progress, final_attempt=_final(ctx))
        except (Invalid, NotFound) as exc:  # the request itself: no retry mends it
            raise PermanentFailure(str(exc)) from exc
        await ctx.progress(100, "done")
        return Outcome(results, partial, request.document_id)

    async def run_publish(ctx: JobContext) -> Outcome:
        params = ctx.params
        item, publication = await service.items.publish_item(
            params["content_id"], tuple(params.get("recipients", [])))
        key = item.channel.removeprefix("social_")
        result = {"status": "success", "error": None, "version": item.version,
                  **publication.to_json()}
        return Outcome({key: result}, False, item.document_id)

    return [
        JobKind("generate", run_generate, timeout=GENERATE_TIMEOUT, validate=validate_params),
        JobKind("publish", run_publish, timeout=PUBLISH_TIMEOUT, max_attempts=PUBLISH_ATTEMPTS,
                validate=validate_publish),
    ]
