"""Run the real ingest handler on a real app's services, as a worker would."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from toombos_edge.appkeys import DOCUMENTS, INGESTOR
from toombos_edge.documents.uploads import Upload
from toombos_edge.ids import new_id, now_ms
from toombos_edge.jobs.kinds import JobContext, Outcome
from toombos_edge.records.job import Job, JobStatus


async def stage(app: web.Application, data: bytes, filename: str,
                content_type: str = "application/octet-stream") -> Upload:
    """Stream bytes into the uploads folder as POST /api/ingest does."""
    sink = app[DOCUMENTS].uploads.sink(len(data) + 1, filename, content_type)
    for start in range(0, len(data), 65536):
        await sink.write(data[start : start + 65536])
    return await sink.finish()


async def run_ingest(app: web.Application, params: dict[str, Any]) -> tuple[Outcome, list[float]]:
    """The ingest handler on a fresh job; returns its outcome and the progress it reported."""
    kind = app[INGESTOR].kind()
    now = now_ms()
    job = Job(id=new_id("job"), kind=kind.name, status=JobStatus.in_progress, created_at=now,
              updated_at=now, params=kind.validate(params), attempts=1,
              max_attempts=kind.max_attempts)
    progress: list[float] = []

    async def report(percent: float, message: str) -> None:
        progress.append(percent)

    ctx = JobContext(job=job, log=logging.LoggerAdapter(
        logging.getLogger("test.ingest"), {}), on_progress=report)
    outcome = await kind.run(ctx)
    assert outcome is not None
    return outcome, progress


async def ingest_bytes(app: web.Application, data: bytes, filename: str,
                       **params: Any) -> dict[str, Any]:
    upload = await stage(app, data, filename)
    outcome, _ = await run_ingest(app, {"upload": upload.to_json(), **params})
    return dict(outcome.output)
