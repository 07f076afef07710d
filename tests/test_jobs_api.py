"""The jobs API through the real app: submit, list with filters, transitions, batches, export."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from conftest import Client, auth

from toombos_edge.appkeys import ENGINE
from toombos_edge.jobs.kinds import JobContext, JobKind

pytestmark = pytest.mark.backends

MakeKey = Callable[[str], Awaitable[str]]


async def noop(ctx: JobContext) -> None:
    return None


async def boom(ctx: JobContext) -> None:
    raise ValueError("no good")


@pytest.fixture
async def operator(client: Client, make_key: MakeKey) -> dict[str, str]:
    kinds = client.app[ENGINE].registry
    kinds.register(JobKind("noop", noop))
    kinds.register(JobKind("boom", boom, max_attempts=1))
    return auth(await make_key("operator"))


async def post_job(client: Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/api/jobs", json=body, headers=headers)
    assert response.status == 202, await response.text()
    job: dict[str, Any] = await response.json()
    return job


async def settle(client: Client) -> None:
    await client.app[ENGINE].join()


async def test_submit_then_read_under_every_alias(client: Client, operator: dict[str, str]) -> None:
    job = await post_job(client, operator, kind="noop", params={"a": 1}, priority=3,
                         metadata={"team": "x"}, document_id="doc_1", channels=["email"])
    assert job["status"] in {"pending", "in_progress"} and job["job_id"].startswith("job_")
    await settle(client)
    for path in ("/api/jobs/", "/api/v2/jobs/", "/api/status/"):
        response = await client.get(path + job["job_id"], headers=operator)
        body = await response.json()
        assert response.status == 200 and body["status"] == "completed"
        assert (body["document_id"], body["channels"], body["metadata"]) == (
            "doc_1", ["email"], {"team": "x"}
        )


async def test_bad_submissions_are_clear_4xx(client: Client, operator: dict[str, str]) -> None:
    cases: list[tuple[Any, int, str]] = [
        ({"kind": "nope"}, 422, "unknown job kind"),
        ({}, 422, "kind: required"),
        ({"kind": "noop", "params": [1]}, 422, "params: expected object | null, got array"),
        ({"kind": "noop", "priority": "high"}, 422, "priority: expected int"),
        ({"kind": "noop", "scheduled_for": "soon"}, 422, "scheduled_for: expected an ISO"),
    ]
    for body, status, words in cases:
        response = await client.post("/api/jobs", json=body, headers=operator)
        detail = (await response.json())["detail"]
        assert (response.status, words in detail) == (status, True), detail
    response = await client.post("/api/jobs", data=b"{oops", headers=operator)
    assert response.status == 400
    listed = await (await client.get("/api/jobs", headers=operator)).json()
    assert listed["total"] == 0


async def test_idempotency_key_by_body_or_header(client: Client, operator: dict[str, str]) -> None:
    first = await post_job(client, operator, kind="noop", idempotency_key="once")
    again = await post_job(client, operator, kind="noop", idempotency_key="once")
    headers = {**operator, "Idempotency-Key": "once"}
    third = await post_job(client, headers, kind="noop")
    assert first["job_id"] == again["job_id"] == third["job_id"]


async def test_list_filters_paging_and_cursor(client: Client, operator: dict[str, str]) -> None:
    ok = [await post_job(client, operator, kind="noop", document_id=f"doc_a{n}",
                         correlation_id=f"corr-{n}") for n in range(5)]
    bad = [await post_job(client, operator, kind="boom") for _ in range(3)]
    await settle(client)

    async def listing(query: str) -> dict[str, Any]:
        response = await client.get("/api/v2/jobs?" + query, headers=operator)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    everything = await listing("limit=500")
    assert everything["total"] == 8 and everything["total_exact"]
    ids = [job["job_id"] for job in everything["jobs"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    failed = await listing("status=failed")
    assert {j["job_id"] for j in failed["jobs"]} == {j["job_id"] for j in bad}
    both = await listing("status=failed,completed&limit=3")
    assert both["total"] == 8 and len(both["jobs"]) == 3 and both["jobs"][0]["job_id"] == ids[0]
    assert (await listing("status=failed&status=completed"))["total"] == 8
    assert (await listing("kind=boom"))["total"] == 3
    assert [j["job_id"] for j in (await listing("q=doc_a3"))["jobs"]] == [ok[3]["job_id"]]
    assert [j["job_id"] for j in (await listing("q=corr-1"))["jobs"]] == [ok[1]["job_id"]]
    assert (await listing("q=" + ok[2]["job_id"]))["jobs"][0]["job_id"] == ok[2]["job_id"]
    assert (await listing("q=doc_a"))["total"] == 5
    start, end = ok[1]["created_at"], ok[3]["created_at"]
    window = await listing(f"from={start}&to={end}")
    assert {j["job_id"] for j in window["jobs"]} >= {ok[1]["job_id"], ok[3]["job_id"]}
    assert ok[4]["job_id"] not in {j["job_id"] for j in window["jobs"]} or ok[4][
        "created_at"] == end
    page2 = await listing("limit=3&offset=3")
    assert (page2["page"], page2["page_size"]) == (2, 3)
    assert [j["job_id"] for j in page2["jobs"]] == ids[3:6]
    walked: list[str] = []
    cursor = ""
    while True:
        body = await listing(f"limit=3&cursor={cursor}" if cursor else "limit=3")
        walked += [j["job_id"] for j in body["jobs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert walked == ids


async def test_list_refuses_bad_parameters(client: Client, operator: dict[str, str]) -> None:
    for query, status in [("limit=501", 422), ("limit=x", 422), ("status=done", 422),
                          ("from=yesterday", 422), ("cursor=abc", 422),
                          ("offset=3&cursor=job_00000000000000000000000000", 422)]:
        response = await client.get("/api/jobs?" + query, headers=operator)
        assert response.status == status, query
        assert (await response.json())["error"]["status"] == status


async def test_retry_and_cancel_with_409_for_illegal_moves(
    client: Client, operator: dict[str, str]
) -> None:
    failed = await post_job(client, operator, kind="boom")
    done = await post_job(client, operator, kind="noop")
    await settle(client)
    response = await client.post(f"/api/jobs/{done['job_id']}/retry", headers=operator)
    assert response.status == 409 and "completed" in (await response.json())["detail"]
    response = await client.post(f"/api/jobs/{done['job_id']}/cancel", headers=operator)
    assert response.status == 409 and "already completed" in (await response.json())["detail"]
    response = await client.post(f"/api/v2/jobs/{failed['job_id']}/retry", headers=operator)
    assert response.status == 200 and (await response.json())["job_id"] == failed["job_id"]
    await settle(client)
    missing = await client.post("/api/jobs/job_00000000000000000000000000/retry",
                                headers=operator)
    assert missing.status == 404


async def test_cancel_pending_under_both_paths(client: Client, operator: dict[str, str]) -> None:
    client.app[ENGINE].pause()
    first = await post_job(client, operator, kind="noop")
    second = await post_job(client, operator, kind="noop")
    response = await client.post(f"/api/v2/jobs/{first['job_id']}/cancel", headers=operator)
    assert (await response.json())["status"] == "cancelled"
    response = await client.delete(f"/api/v2/content/sync/{second['job_id']}", headers=operator)
    body = await response.json()
    assert response.status == 200 and body["cancelled"] is True
    response = await client.delete(f"/api/v2/content/sync/{second['job_id']}", headers=operator)
    assert response.status == 409


async def test_batch_by_ids_and_by_filter(client: Client, operator: dict[str, str]) -> None:
    client.app[ENGINE].pause()
    waiting = [await post_job(client, operator, kind="noop") for _ in range(4)]
    response = await client.post("/api/jobs/batch/cancel", headers=operator, json={
        "job_ids": [waiting[0]["job_id"], "job_00000000000000000000000000"]})
    body = await response.json()
    assert (body["touched"], body["refused"]) == (1, 1)
    assert body["refusals"]["job_00000000000000000000000000"].startswith("no job")
    response = await client.post("/api/jobs/batch/cancel", headers=operator, json={})
    assert response.status == 422  # an empty body never means "every job"
    for empty in ({"status": ""}, {"status": []}, {"kind": " "}, {"q": "", "from": None}):
        response = await client.post("/api/jobs/batch/cancel", headers=operator, json=empty)
        assert response.status == 422, empty  # nor do filter fields left empty
    response = await client.post("/api/jobs/batch/cancel", headers=operator,
                                 json={"filter": {"status": ["pending", "cancelled"]}})
    body = await response.json()
    assert (body["touched"], body["refused"]) == (3, 1)
    response = await client.post("/api/jobs/batch/retry", headers=operator,
                                 json={"status": "cancelled", "kind": "noop"})
    body = await response.json()
    assert (body["touched"], body["refused"]) == (4, 0)
    client.app[ENGINE].resume()
    await settle(client)
    listed = await (await client.get("/api/jobs?status=completed", headers=operator)).json()
    assert listed["total"] == 4


async def test_export_csv_and_json(client: Client, operator: dict[str, str]) -> None:
    jobs = [await post_job(client, operator, kind="noop", correlation_id="=cmd")
            for _ in range(3)]
    await settle(client)
    response = await client.get("/api/jobs/export?format=csv&kind=noop", headers=operator)
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert {row["job_id"] for row in rows} == {job["job_id"] for job in jobs}
    assert rows[0]["status"] == "completed" and rows[0]["correlation_id"] == "'=cmd"
    response = await client.get("/api/jobs/export?format=json&status=failed", headers=operator)
    assert orjson.loads(await response.read()) == []
    response = await client.get("/api/jobs/export?format=json", headers=operator)
    assert len(orjson.loads(await response.read())) == 3
    assert (await client.get("/api/jobs/export?format=xml", headers=operator)).status == 422


async def test_roles_and_queue_pause(
    client: Client, operator: dict[str, str], make_key: MakeKey, admin_key: str
) -> None:
    viewer = auth(await make_key("viewer"))
    assert (await client.get("/api/jobs", headers=viewer)).status == 200
    assert (await client.post("/api/jobs", json={"kind": "noop"}, headers=viewer)).status == 403
    assert (await client.post("/admin/queue/pause", headers=operator)).status == 403
    response = await client.post("/admin/queue/pause", headers=auth(admin_key))
    assert (await response.json())["paused"] is True
    job = await post_job(client, operator, kind="noop")
    await settle(client)
    health = await (await client.get("/health/detailed", headers=viewer)).json()
    assert health["checks"]["jobs"]["status"] == "warn"
    response = await client.post("/admin/queue/resume", headers=auth(admin_key))
    assert (await response.json())["paused"] is False
    await settle(client)
    body = await (await client.get(f"/api/jobs/{job['job_id']}", headers=viewer)).json()
    assert body["status"] == "completed"


async def test_ready_only_after_workers_started(client: Client) -> None:
    order = [ctx.__name__ for ctx in client.app.cleanup_ctx]
    assert order.index("engine_ctx") < order.index("workers_ctx") < order.index("ready_ctx")
    assert client.app[ENGINE].stats()["workers"] >= 1
    assert (await (await client.get("/ready")).json()) == {"ready": True}


async def test_export_streams_page_by_page(client: Client, operator: dict[str, str]) -> None:
    engine = client.app[ENGINE]
    engine.pause()
    ids = {(await engine.submit("noop", {"n": n})).id for n in range(1200)}
    response = await client.get("/api/jobs/export?format=csv&status=pending", headers=operator)
    assert response.headers["Transfer-Encoding"] == "chunked"
    chunks = [chunk async for chunk in response.content.iter_any()]
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert {row["job_id"] for row in rows} == ids
    response = await client.get("/api/jobs/export?format=json", headers=operator)
    assert len(orjson.loads(await response.read())) == 1200
