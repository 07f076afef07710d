"""Analytics through the real app over a known set of jobs, written by the jobs store's own
statements (insert, claim, save, cancel, requeue) at chosen times: every number exact.
The running job (G) is found through the jobs table, the pending ones (F, I) are the rest."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Client, ClientFactory, auth

from toombos_edge.appkeys import ANALYTICS, DATABASE, ENGINE, METRICS
from toombos_edge.ids import iso, new_id, now_ms
from toombos_edge.jobs import transitions
from toombos_edge.jobs.kinds import JobContext, JobKind, Outcome
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store.jobs import HOUR_MS
from toombos_edge.store.sqlite import job_changes
from toombos_edge.store.sqlite import jobs as store

pytestmark = pytest.mark.backends

DAY = datetime(2025, 3, 10, tzinfo=UTC)  # far enough back to stay out of "recent"
D0 = int(DAY.timestamp() * 1000)
MIN = 60_000


def at(day: int, hour: int, minute: int = 0) -> int:
    return D0 + day * 86_400_000 + hour * HOUR_MS + minute * MIN


@dataclass
class Spec:
    """One job of the known set: when it was made and how it ended (run time in ms)."""

    channels: list[str]
    created: int
    end: str  # completed, partial, failed, pending, in_progress, cancelled, requeued
    run_ms: int = 0
    kind: str = "generate"


KNOWN = [
    Spec(["email", "website"], at(0, 1, 10), "completed", 2000),  # A
    Spec(["email"], at(0, 1, 50), "completed", 4000),  # B
    Spec(["website", "social_twitter"], at(0, 3, 5), "failed", 1500),  # C
    Spec([], at(0, 3, 20), "completed", 500, kind="ingest"),  # D
    Spec(["email"], at(0, 5, 0), "requeued", 1000),  # I: failed, then retried: pending
    Spec(["email"], at(1, 10, 0), "partial", 3000),  # E
    Spec([], at(1, 10, 30), "pending", kind="noop"),  # F
    Spec([], at(1, 11, 0), "in_progress", kind="noop"),  # G
    Spec(["social_twitter"], at(1, 12, 0), "cancelled"),  # H
    Spec(["email"], at(-1, 23, 59), "completed", 700),  # J: the day before the window
]


def write_job(conn: sqlite3.Connection, spec: Spec) -> None:
    """The life of one job through the store, as the engine drives it."""
    job = Job(new_id("job"), spec.kind, JobStatus.pending, spec.created, spec.created,
              channels=spec.channels, max_attempts=1)
    store.insert(conn, [(job, spec.created)])
    if spec.end == "pending":
        return
    if spec.end == "cancelled":
        job_changes.cancel_pending(conn, [job.id], spec.created + MIN)
        return
    started = spec.created + 1000
    claimed = store.claim_one(conn, job.id, started, started + HOUR_MS)
    assert claimed is not None
    if spec.end == "in_progress":
        return
    ended = started + spec.run_ms
    if spec.end in ("failed", "requeued"):
        claimed = transitions.fail(claimed, "no", ended, None)
    else:
        partial = spec.end == "partial"
        outcome = Outcome({"email": {"status": "success"}}, partial)
        claimed = transitions.succeed(claimed, outcome, ended)
    store.save(conn, [(claimed, ended)])
    if spec.end == "requeued":
        assert [j.id for j in store.requeue(conn, [job.id], ended + MIN)] == [job.id]


@pytest.fixture
async def viewer(make_client: ClientFactory, tmp_path: Path) -> tuple[Client, dict[str, str]]:
    """The app (answers never reused: each test reads what it just wrote) and a viewer key."""
    client = await make_client(analytics_cache_seconds=0)
    secret = (tmp_path / "data" / "admin.key").read_text().strip()
    return client, auth(secret)


async def seed(client: Client, specs: list[Spec]) -> None:
    for spec in specs:
        await client.app[DATABASE].write(lambda conn, spec=spec: write_job(conn, spec))


async def get(client: Client, path: str, headers: dict[str, str], status: int = 200) -> Any:
    response = await client.get(path, headers={**headers, "Content-Type": "application/json"})
    assert response.status == status, await response.text()
    return await response.json()


WINDOW = f"start_date={iso(at(0, 0))}&end_date={iso(at(1, 23, 59))}"


async def test_job_analytics_per_day_are_exact(viewer: tuple[Client, dict[str, str]]) -> None:
    client, headers = viewer
    await seed(client, KNOWN)
    body = await get(client, f"/api/v2/analytics/jobs?{WINDOW}&granularity=day", headers)
    assert {k: v for k, v in body.items() if k != "jobs_over_time"} == {
        "total_jobs": 9,
        "pending_jobs": 2, "in_progress_jobs": 1, "completed_jobs": 3, "partial_jobs": 1,
        "failed_jobs": 1, "cancelled_jobs": 1,
        "success_rate": 33.33,  # 3 of 9 completed
        "avg_processing_time_seconds": 2.2,  # (2 + 4 + 1.5 + 0.5 + 3) s / 5 that ran
        "jobs_by_channel": {"email": 4, "website": 2, "social_twitter": 2},
        "jobs_by_status": {"pending": 2, "in_progress": 1, "completed": 3, "partial": 1,
                           "failed": 1, "cancelled": 1},
        "start_date": "2025-03-10T00:00:00.000Z", "end_date": "2025-03-11T23:59:59.999Z",
        "granularity": "day",
    }
    assert body["jobs_over_time"] == [
        {"timestamp": "2025-03-10T00:00:00.000Z", "count": 5},
        {"timestamp": "2025-03-11T00:00:00.000Z", "count": 4},
    ]


async def test_job_analytics_per_hour_include_empty_hours(
    viewer: tuple[Client, dict[str, str]]
) -> None:
    client, headers = viewer
    await seed(client, KNOWN)
    query = f"start_date={iso(at(0, 0, 30))}&end_date={iso(at(0, 5, 1))}&granularity=hour"
    body = await get(client, f"/api/v2/analytics/jobs?{query}", headers)
    counts = [(point["timestamp"][11:16], point["count"]) for point in body["jobs_over_time"]]
    assert counts == [("00:00", 0), ("01:00", 2), ("02:00", 0), ("03:00", 2), ("04:00", 0),
                      ("05:00", 1)]
    assert body["total_jobs"] == 5 and body["jobs_by_status"]["pending"] == 1  # I, requeued
    assert body["avg_processing_time_seconds"] == 2.0  # A, B, C, D ran 8 s; I's run undone


@dataclass(frozen=True)
class Requests:
    """What the request metrics report (the shape ``request_stats`` returns)."""

    avg_ms: float
    p95_ms: float
    p99_ms: float
    error_rate: float


async def test_the_overview_is_the_dashboards_shape_with_exact_numbers(
    viewer: tuple[Client, dict[str, str]]
) -> None:
    client, headers = viewer
    now = now_ms()
    recent = [Spec([], now - days * 86_400_000, "pending", kind="noop") for days in (0, 3, 10, 40)]
    await seed(client, KNOWN + recent)
    for path in ("/api/v2/analytics", "/api/analytics"):
        body = await get(client, f"{path}?{WINDOW}&granularity=day", headers)
        assert set(body) == {"job_analytics", "performance_metrics", "channel_performance",
                             "recent_activity"}
        assert body["job_analytics"]["total_jobs"] == 9
        assert body["channel_performance"] == {
            "email": {"total_jobs": 4, "success_rate": 50.0,  # A, B of A, B, E, I
                      "avg_processing_time_seconds": 3.0},  # A 2 s, B 4 s, E 3 s
            "website": {"total_jobs": 2, "success_rate": 50.0,
                        "avg_processing_time_seconds": 1.75},  # A 2 s, C 1.5 s
            "social_twitter": {"total_jobs": 2, "success_rate": 0.0,
                               "avg_processing_time_seconds": 1.5},  # C; H never ran
        }
        assert body["recent_activity"] == {"last_24h": 1, "last_7d": 2, "last_30d": 3}
        performance = body["performance_metrics"]  # the request metrics: see the next test
        assert performance["success_rate"] == round(100 - performance["error_rate"], 3)


async def test_performance_is_the_servers_own_request_metrics(
    viewer: tuple[Client, dict[str, str]]
) -> None:
    client, headers = viewer
    for _ in range(20):
        assert (await client.get("/health")).status == 200
    assert (await client.get("/api/jobs/job_unknown", headers=headers)).status == 404
    seen = client.app[METRICS].latency()  # what the requests above left in the histogram
    assert seen["avg_ms"] > 0 and seen["p99_ms"] >= seen["p95_ms"] > 0
    body = await get(client, "/api/v2/analytics", headers)
    assert body["performance_metrics"] == {
        "avg_response_time_ms": round(seen["avg_ms"], 3),
        "p95_response_time_ms": round(seen["p95_ms"], 3),
        "p99_response_time_ms": round(seen["p99_ms"], 3),
        "error_rate": round(seen["error_rate"] * 100, 3),
        "success_rate": round(100 - seen["error_rate"] * 100, 3)}


async def test_performance_comes_from_the_request_metrics(
    viewer: tuple[Client, dict[str, str]]
) -> None:
    client, headers = viewer
    expected = {"avg_response_time_ms": 12.346, "p95_response_time_ms": 40.0,
                "p99_response_time_ms": 81.25, "error_rate": 1.25, "success_rate": 98.75}
    client.app[ANALYTICS].request_stats = lambda: Requests(12.34567, 40.0, 81.25, 0.0125)
    body = await get(client, "/api/v2/analytics", headers)
    assert body["performance_metrics"] == expected
    # A summary given as a mapping (what a metrics module may return) reads the same.
    client.app[ANALYTICS].request_stats = lambda: {
        "avg_ms": 12.34567, "p95_ms": 40.0, "p99_ms": 81.25, "error_rate": 0.0125}
    body = await get(client, "/api/v2/analytics", headers)
    assert body["performance_metrics"] == expected


async def test_without_dates_the_last_30_days(viewer: tuple[Client, dict[str, str]]) -> None:
    client, headers = viewer
    now = now_ms()
    await seed(client, [Spec(["email"], now - days * 86_400_000, "pending")
                        for days in (0, 29, 31)])
    body = await get(client, "/api/v2/analytics/jobs", headers)
    assert body["total_jobs"] == 2 and body["granularity"] == "day"
    assert len(body["jobs_over_time"]) in (30, 31)  # the days the 30 x 24 hours touch
    assert sum(point["count"] for point in body["jobs_over_time"]) == 2


@pytest.mark.parametrize(("query", "named"), [
    ("start_date=yesterday", "start_date: expected an ISO 8601 time"),
    ("end_date=2025-13-40", "end_date: expected an ISO 8601 time"),
    ("granularity=week", "granularity: expected one of day, hour, got 'week'"),
    ("start_date=2025-03-11&end_date=2025-03-10", "'start_date' is after 'end_date'"),
    ("start_date=1970-01-01&end_date=2100-01-01&granularity=hour", "'start_date' to 'end_date'"),
])
async def test_a_bad_parameter_is_a_422_naming_it(
    viewer: tuple[Client, dict[str, str]], query: str, named: str
) -> None:
    client, headers = viewer
    for path in ("/api/v2/analytics/jobs", "/api/v2/analytics", "/api/analytics"):
        body = await get(client, f"{path}?{query}", headers, status=422)
        assert named in body["detail"], body


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_answers_are_reused_for_a_few_seconds(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client()
    headers = auth((tmp_path / "data" / "admin.key").read_text().strip())
    service = client.app[ANALYTICS]
    first = await get(client, f"/api/v2/analytics/jobs?{WINDOW}", headers)
    await seed(client, KNOWN)
    again = await get(client, f"/api/v2/analytics/jobs?{WINDOW}", headers)
    assert again == first and (service.queries, service.reused) == (1, 1)


async def done(ctx: JobContext) -> Outcome:
    return Outcome({"sink": {"status": "success"}})


async def refused(ctx: JobContext) -> None:
    raise ValueError("down")


def recount(conn: sqlite3.Connection) -> dict[tuple[str, str, int], tuple[int, int, int]]:
    """What job_hours must hold, counted from the jobs themselves, in Python."""
    found: dict[tuple[str, str, int], list[int]] = {}
    rows = conn.execute("SELECT channels, status, created_at, started_at, completed_at FROM jobs")
    for channels, status, created, started, ended in rows:
        ran = status in ("completed", "partial", "failed") and started and ended
        for channel in ["", *orjson.loads(channels)]:
            keys = [(channel, "", created // HOUR_MS)]
            if status in ("completed", "partial", "failed", "cancelled"):
                keys.append((channel, status, created // HOUR_MS))
            for key in keys:
                sums = found.setdefault(key, [0, 0, 0])
                sums[0] += 1
                if ran and key[1]:
                    sums[1] += ended - started
                    sums[2] += 1
    return {key: (n, run, runs) for key, (n, run, runs) in found.items()}


def rolled_up(conn: sqlite3.Connection) -> dict[tuple[str, str, int], tuple[int, int, int]]:
    rows = conn.execute("SELECT channel, status, hour, n, run_ms, runs FROM job_hours "
                        "WHERE n <> 0 OR run_ms <> 0 OR runs <> 0").fetchall()
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_the_roll_up_matches_a_recount_after_real_jobs(
    viewer: tuple[Client, dict[str, str]]
) -> None:
    """Jobs run by the real engine (completed, failed, retried, cancelled, still waiting)
    leave job_hours exactly as a count over the jobs table would."""
    client, headers = viewer
    engine = client.app[ENGINE]
    engine.registry.register(JobKind("done", done))
    engine.registry.register(JobKind("refused", refused, max_attempts=1))
    failing = []
    for n in range(5):
        await engine.submit("done", channels=["email", "website"][: n % 3])
        failing.append((await engine.submit("refused", channels=["social_twitter"])).id)
    later = await engine.submit("done", channels=["email"], scheduled_for=now_ms() + 3_600_000)
    await engine.join()
    assert len((await engine.retry_many(failing[:2])).touched) == 2
    await engine.cancel(later.id)
    await engine.join()
    db = client.app[DATABASE]
    assert await db.read(rolled_up) == await db.read(recount)
    body = await get(client, "/api/v2/analytics/jobs", headers)
    assert body["total_jobs"] == 11 and body["cancelled_jobs"] == 1
    assert body["completed_jobs"] == 5 and body["failed_jobs"] == 5
    assert body["jobs_by_channel"] == {"email": 4, "website": 1, "social_twitter": 5}


@pytest.mark.sqlite_only  # reads the SQLite file itself
def test_every_query_reads_a_range_of_the_primary_key(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN: each statement searches job_hours by its key; none scans it."""
    from toombos_edge.store.sqlite import analytics as sql
    from toombos_edge.store.sqlite.database import apply_migrations

    conn = sqlite3.connect(tmp_path / "plans.db", isolation_level=None)
    apply_migrations(conn)
    for statement, params in [(sql.CHANNELS, ()), (sql.BY_STATUS, ("", 1, 2)),
                              (sql.OVER_TIME, (24, 1, 2)), (sql.SINCE, (1,))]:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", params)]
        reads = [step for step in plan if "job_hours" in step]
        assert reads and all(step.startswith("SEARCH job_hours USING PRIMARY KEY")
                             for step in reads), plan
    # Running jobs: the status index's range for in_progress (as many rows as workers).
    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql.RUNNING}", (1, 2))]
    assert plan == ["SEARCH jobs USING INDEX jobs_status (status=?)"], plan
    conn.close()
