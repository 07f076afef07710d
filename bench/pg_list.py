"""The jobs list on 1,000,000 jobs in PostgreSQL: p50/p99 per filter (goal: p99 < 20 ms).

    .venv/bin/python -m bench.pg_jobs --skip inproc,nodes [--rows 1000000] [--requests 300]

The rows are bench/jobs.py's (``job_rows``: the same ids, statuses, kinds, documents over
30 days) and so are the filters (``list_queries``). They are loaded with COPY, the list's
indexes dropped first and built again after (as the migration defines them), the per-status
counts written as the store keeps them, then ``VACUUM ANALYZE`` (what autovacuum would
have done on a live table).

Then the real server (``toombos_edge serve`` with ``TOOMBOS_DATABASE_URL`` and every other
setting at its default, bench/jobs.py's ``Server``) answers ``GET /api/jobs?limit=100&...``
under each filter, sequentially on one keep-alive connection (bench/jobs.py's ``_latency``):
the same requests, counted the same way, as the SQLite row.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import jobs as sqlite_bench

ROOT = Path(__file__).resolve().parent.parent
GOAL_P99_MS = 20.0
COLUMNS = ("id", "kind", "status", "document_id", "correlation_id", "created_at",
           "updated_at", "due_at", "max_attempts", "params", "waiting")


async def fill_postgres(url: str, rows: int) -> dict[str, str]:
    """``rows`` jobs COPYed into the migrated database at ``url``; the sample to filter on."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes "
                                 "WHERE tablename = 'jobs' AND indexname <> 'jobs_pkey'")
        indexes = [row["indexdef"] for row in found]
        await conn.execute("DROP INDEX " + ", ".join(row["indexname"] for row in found))
        sample: dict[str, str] = {}
        for batch in sqlite_bench.job_rows(rows, sample):
            await conn.copy_records_to_table("jobs", columns=COLUMNS, records=[
                (*row, 3, '{"document": "x"}', int(row[2] == "pending")) for row in batch])
        for definition in indexes:
            await conn.execute(definition)
        await conn.execute("INSERT INTO job_counts (kind, status, slot, n) "
                           "SELECT kind, status, 0, count(*) FROM jobs GROUP BY kind, status")
        await conn.execute("VACUUM ANALYZE jobs")
        await conn.execute("VACUUM ANALYZE job_counts")
    finally:
        await conn.close()
    return sample


async def migrate_and_fill(url: str, rows: int) -> dict[str, str]:
    from toombos_edge.store.postgres.database import PgDatabase

    db = PgDatabase(url)
    await db.open()  # migrated, as the server would at its start
    await db.close()
    return await fill_postgres(url, rows)


def report(running: Any, rows: int, requests: int) -> str:
    """Fill a fresh database on ``running``, serve it, list from it over HTTP."""
    from bench import pgcluster
    from bench.common import UNTHROTTLED
    from bench.pg_jobs import fresh

    name, url = fresh(running)
    folder = Path(tempfile.mkdtemp(prefix="bench-pglist-"))
    print(f"(c) GET /api/jobs?limit=100 on {rows:,} jobs in PostgreSQL, {requests} "
          "sequential requests per filter, server in its default configuration but "
          "TOOMBOS_DATABASE_URL:", flush=True)
    try:
        began = time.perf_counter()
        sample = asyncio.run(migrate_and_fill(url, rows))
        print(f"  filled {rows:,} rows in {time.perf_counter() - began:.0f} s", flush=True)
        server = sqlite_bench.Server(folder / "data", sqlite_bench.make_plugin(
            folder / "plugin"), {**UNTHROTTLED, "TOOMBOS_DATABASE_URL": url})
        try:
            cursor = server.get("/api/jobs?limit=100&offset=1000")["next_cursor"]
            results = {name: sqlite_bench._latency(server, query, requests)
                       for name, query in sqlite_bench.list_queries(sample, cursor).items()}
        finally:
            server.stop()
    finally:
        pgcluster.drop_database(running, name)
        shutil.rmtree(folder, ignore_errors=True)
    for filter_name, (p50, p99) in results.items():
        print(f"  {filter_name:28s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    worst = max(results, key=lambda key: results[key][1])
    p99 = results[worst][1]
    return (f"(c) list latency on PostgreSQL, {rows:,} jobs: ours worst p99 {p99:.2f} ms "
            f"({worst}) over {len(results)} filters | peer: none | ratio: - | "
            f"goal: p99 < {GOAL_P99_MS:g} ms on every filter "
            f"{'met' if p99 < GOAL_P99_MS else 'NOT met'} | server default configuration "
            f"but TOOMBOS_DATABASE_URL (access log on), {requests} requests per filter on "
            "one keep-alive connection")


if __name__ == "__main__":
    print("run it as: .venv/bin/python -m bench.pg_jobs --skip inproc,nodes")
