"""Sparse fieldsets on the jobs list and export (``?fields=``), through the real app."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from conftest import Client, auth

from toombos_edge.appkeys import ENGINE
from toombos_edge.jobs.kinds import JobContext, JobKind, Outcome
from toombos_edge.store.jobs import JOB_FIELDS

MakeKey = Callable[[str], Awaitable[str]]
LIGHT = ("job_id", "kind", "status", "priority", "document_id", "attempts", "created_at",
         "updated_at", "started_at", "completed_at")


async def works(ctx: JobContext) -> Outcome:
    await ctx.progress(100 / 3, "a third")
    return Outcome(results={"email": {"sent": 2}, "note": "ok"})


async def boom(ctx: JobContext) -> None:
    raise ValueError("no good")


@pytest.fixture
async def viewer(client: Client, make_key: MakeKey) -> dict[str, str]:
    """Eight finished jobs with every kind of value, and a viewer's headers."""
    engine = client.app[ENGINE]
    engine.registry.register(JobKind("works", works))
    engine.registry.register(JobKind("boom", boom, max_attempts=1))
    for n in range(6):
        await engine.submit("works", {"n": n, "text": "é\n\""}, priority=n,
                            metadata={"team": n}, document_id=f"doc_{n}",
                            channels=["email", "website"][: n % 3], correlation_id=f"c-{n}",
                            idempotency_key=f"k-{n}")
    for _ in range(2):
        await engine.submit("boom", {}, scheduled_for=None)
    await engine.join()
    return auth(await make_key("viewer"))


async def get_json(client: Client, path: str, headers: dict[str, str]) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    return orjson.loads(await response.read())


async def test_fields_are_exactly_those_asked_with_the_full_values(
    client: Client, viewer: dict[str, str]
) -> None:
    full = (await get_json(client, "/api/jobs?limit=500", viewer))["jobs"]
    assert len(full) == 8 and set(full[0]) == set(JOB_FIELDS)
    # The list renders rows without building a Job: each entry is the engine's job object.
    for job in full:
        assert job == await get_json(client, f"/api/jobs/{job['job_id']}", viewer)
        assert list(job) == list(JOB_FIELDS)
    for fields in [LIGHT, JOB_FIELDS, ("progress", "errors"), ("status",), ("results", "params",
                   "metadata", "channels", "last_error", "scheduled_for", "idempotency_key")]:
        for path in ("/api/jobs", "/api/v2/jobs"):
            light = await get_json(client, f"{path}?limit=500&fields={','.join(fields)}", viewer)
            wanted = {"job_id", *fields}
            # Same jobs, same order, each with exactly the asked keys and the full object's
            # values, keys in the full object's order.
            assert [list(job) for job in light["jobs"]] == [
                [key for key in full_job if key in wanted] for full_job in full
            ]
            assert light["jobs"] == [
                {key: value for key, value in job.items() if key in wanted} for job in full
            ]
    progress = (await get_json(client, "/api/jobs?fields=progress&kind=works", viewer))["jobs"]
    assert progress[0]["progress"] == {"percent": 100.0, "message": "a third"}


async def test_fields_are_trimmed_repeated_and_deduplicated(
    client: Client, viewer: dict[str, str]
) -> None:
    one = await get_json(client, "/api/jobs?fields= status , kind,status&fields=kind", viewer)
    assert list(one["jobs"][0]) == ["job_id", "kind", "status"]
    empty = await get_json(client, "/api/jobs?fields=", viewer)  # no names: the whole object
    assert set(empty["jobs"][0]) == set(JOB_FIELDS)


async def test_unknown_fields_are_a_422_naming_them(
    client: Client, viewer: dict[str, str]
) -> None:
    for path in ("/api/jobs", "/api/jobs/export"):
        response = await client.get(f"{path}?fields=status,secret,id,progress", headers=viewer)
        body = await response.json()
        assert response.status == 422
        assert body["detail"].startswith("fields[1]: expected one of attempts, ")
        assert body["detail"].endswith(", got 'secret'")
        assert "created_at" in body["detail"]
        assert body["error"]["details"] == {"field": "fields[1]"}


async def test_filters_offset_and_cursor_work_with_fields(
    client: Client, viewer: dict[str, str]
) -> None:
    full = (await get_json(client, "/api/jobs?limit=500", viewer))["jobs"]
    ids = [job["job_id"] for job in full]

    async def ids_of(query: str) -> tuple[list[str], dict[str, Any]]:
        body = await get_json(client, f"/api/jobs?fields=status&{query}", viewer)
        return [job["job_id"] for job in body["jobs"]], body

    failed, body = await ids_of("status=failed")
    assert failed == [job["job_id"] for job in full if job["status"] == "failed"]
    assert (body["total"], body["total_exact"]) == (2, True)
    both, body = await ids_of("status=failed,completed&limit=3")
    assert both == ids[:3] and body["total"] == 8
    assert (await ids_of("kind=boom"))[1]["total"] == 2
    assert (await ids_of("q=doc_3"))[0] == [job["job_id"] for job in full
                                            if job["document_id"] == "doc_3"]
    second, body = await ids_of("limit=3&page=2")
    assert second == ids[3:6] and (body["page"], body["page_size"], body["offset"]) == (2, 3, 3)
    walked: list[str] = []
    cursor = None
    while True:
        page, body = await ids_of(f"limit=3&cursor={cursor}" if cursor else "limit=3")
        walked += page
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert walked == ids


async def test_export_honours_fields(client: Client, viewer: dict[str, str]) -> None:
    full = (await get_json(client, "/api/jobs?limit=500", viewer))["jobs"]
    exported = await get_json(client, "/api/jobs/export?format=json&fields=status,progress",
                              viewer)
    assert exported == [
        {"job_id": job["job_id"], "status": job["status"], "progress": job["progress"]}
        for job in full
    ]
    response = await client.get(
        "/api/jobs/export?format=csv&fields=channels,results,progress", headers=viewer
    )
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    # CSV keeps its own columns only (no nested objects): results has no column.
    assert list(rows[0]) == ["job_id", "channels", "progress"]
    assert [row["channels"] for row in rows] == [" ".join(job["channels"]) for job in full]
    assert [float(row["progress"]) for row in rows] == [job["progress"]["percent"]
                                                        for job in full]
