"""Durations, ages, latencies and rates in every JSON answer are rounded to what a person
reads (milliseconds: at most three decimals), never ``2.0429999999999993``. Every GET route
of the table is walked after real jobs, renders, cache hits and a search."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import Client, auth, finished

from toombos_edge.appkeys import ENGINE
from toombos_edge.ids import new_id, now_ms
from toombos_edge.jobs.kinds import JobContext, JobKind
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.routes import ROUTES

pytestmark = pytest.mark.backends

TEXT = "Readable numbers: a latency of 2.043 ms, not 2.0429999999999993. " * 10
#: Floats that are not measurements: a search rank is compared, not read.
NOT_MEASURED = {"score"}


async def thirds(ctx: JobContext) -> None:
    await ctx.progress(100 / 3, "a third")


def long_floats(value: Any, path: str = "") -> list[tuple[str, float]]:
    """(where, value) of each float with more than three decimals."""
    if isinstance(value, float):
        decimals = repr(value).partition(".")[2]
        return [(path, value)] if len(decimals) > 3 or "e" in repr(value) else []
    if isinstance(value, dict):
        return [found for key, item in value.items() if key not in NOT_MEASURED
                for found in long_floats(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for index, item in enumerate(value)
                for found in long_floats(item, f"{path}[{index}]")]
    return []


async def test_every_get_route_answers_readable_numbers(client: Client, admin_key: str) -> None:
    headers = {**auth(admin_key), "Content-Type": "application/json"}
    client.app[ENGINE].registry.register(JobKind("thirds", thirds))
    ingest = await (await client.post("/api/ingest", headers=headers,
                                      json={"title": "Numbers", "text": TEXT})).json()
    body = {"channels": ["email", "website"], "title": "Numbers", "text": TEXT}
    generate = await (await client.post("/api/v2/content/sync", headers=headers,
                                        json=body)).json()
    again = await (await client.post("/api/v2/content/sync", headers=headers,
                                     json=body)).json()  # cache hits: ages, rates
    thirds_job = await client.app[ENGINE].submit("thirds")
    for job_id in (ingest["job_id"], generate["job_id"], again["job_id"], thirds_job.id):
        await finished(client, job_id)
    done = await finished(client, generate["job_id"])
    document = (await finished(client, ingest["job_id"]))["document_id"]
    values = {"job_id": thirds_job.id, "doc_id": document, "slug": "numbers",
              "content_id": done["results"]["email"]["content_id"]}
    walked = 0
    for route in ROUTES:
        if route.method != "GET" or route.gated:
            continue
        path = route.path
        for name, value in values.items():
            path = path.replace(f"{{{name}}}", value)
        path += "?q=numbers" if path == "/api/search" else ""
        response = await client.get(path, headers=headers)
        if response.content_type != "application/json":
            continue
        assert response.status < 500, path
        walked += 1
        assert long_floats(await response.json()) == [], path
    assert walked > 30


async def test_progress_is_kept_to_three_decimals(client: Client) -> None:
    reported: list[float] = []

    async def report(percent: float, message: str) -> None:
        reported.append(percent)

    job = Job(new_id("job"), "thirds", JobStatus.in_progress, now_ms(), now_ms())
    ctx = JobContext(job=job, log=logging.LoggerAdapter(logging.getLogger("test"), {}),
                     on_progress=report)
    await ctx.progress(100 / 3)
    await ctx.progress(250)
    assert reported == [33.333, 100.0]
