"""The PostgreSQL peers of bench/pg_jobs.py, run by each peer's own venv (no project import):

    <venv>/bin/python bench/peers/pg_peer.py pgqueuer|procrastinate URL JOBS WORKERS

The same shape as ours: JOBS no-op jobs enqueued one per call from 256 concurrent
producers (as a web server's requests would) while the peer's worker runs with WORKERS
jobs at once, timed from the first enqueue until every job's outcome is committed (the
worker has stopped, its buffers flushed); then the database is asked that every job ended
well. Prints one JSON line.

PgQueuer runs as its docs run it (``PgQueuer.from_asyncpg_pool``, its batched dequeue and
LISTEN/NOTIFY), the pool the same size as ours (10), ``max_concurrent_tasks=WORKERS`` and
the largest batch that allows (WORKERS // 2). procrastinate runs its async worker
(``run_worker_async(concurrency=WORKERS)``, LISTEN/NOTIFY on) over its psycopg connector
(pool of 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from importlib import metadata
from typing import Any

PRODUCERS = 256
POOL = 10
CHECK_SQL = "SELECT current_setting('synchronous_commit'), current_setting('fsync')"


async def _produce(total: int, enqueue: Any) -> None:
    async def producer(count: int) -> None:
        for _ in range(count):
            await enqueue()

    await asyncio.gather(*(producer(total // PRODUCERS) for _ in range(PRODUCERS)))


async def pgqueuer_run(url: str, jobs: int, workers: int) -> dict[str, Any]:
    import asyncpg
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver
    from pgqueuer.queries import Queries

    admin = await asyncpg.connect(url)
    await Queries(AsyncpgDriver(admin)).install()
    pool = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL)
    settings = list(await pool.fetchrow(CHECK_SQL))
    pgq = PgQueuer.from_asyncpg_pool(pool)
    queries = Queries(AsyncpgPoolDriver(pool))
    total, done = jobs // PRODUCERS * PRODUCERS, 0

    @pgq.entrypoint("noop")
    async def noop(job: Any) -> None:
        nonlocal done
        done += 1
        if done == total:
            pgq.shutdown.set()  # run() returns once every status is flushed

    batch = max(1, workers // 2)
    began, cpu = time.perf_counter(), time.process_time()
    runner = asyncio.create_task(pgq.run(batch_size=batch, max_concurrent_tasks=workers))
    await _produce(total, lambda: queries.enqueue("noop", None))
    submitted = time.perf_counter() - began
    await runner
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    left = await admin.fetchval("SELECT count(*) FROM pgqueuer")
    logged = await admin.fetchval(
        "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")
    log_rows = {row["status"]: row["n"] for row in await admin.fetch(
        "SELECT status::text, count(*) AS n FROM pgqueuer_log GROUP BY status")}
    persistence = {row["relname"]: row["relpersistence"] for row in await admin.fetch(
        "SELECT relname, relpersistence::text FROM pg_class WHERE relname IN "
        "('pgqueuer', 'pgqueuer_log', 'pgqueuer_statistics')")}
    await pool.close()
    await admin.close()
    assert left == 0 and logged == total, (left, logged, total)
    assert set(persistence.values()) == {"p"}, persistence  # logged (WAL) tables, not UNLOGGED
    return {"jobs_per_s": total / elapsed, "submits_per_s": total / submitted,
            "cpu_us_per_job": cpu / total * 1e6, "settings": settings,
            "version": metadata.version("pgqueuer"), "asyncpg": metadata.version("asyncpg"),
            "batch_size": batch, "max_concurrent_tasks": workers,
            "log_rows_per_job": {status: n / total for status, n in log_rows.items()}}


async def procrastinate_run(url: str, jobs: int, workers: int) -> dict[str, Any]:
    import procrastinate
    import psycopg

    conninfo = url
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=conninfo, min_size=POOL, max_size=POOL))
    total, done = jobs // PRODUCERS * PRODUCERS, asyncio.Event()
    ran = 0

    @app.task(name="noop")
    async def noop() -> None:
        nonlocal ran
        ran += 1
        if ran == total:
            done.set()

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as admin:
            row = await app.connector.execute_query_one_async(  # on the worker's pool
                "SELECT current_setting('synchronous_commit') AS s, "
                "current_setting('fsync') AS f")
            settings = [row["s"], row["f"]]
            began, cpu = time.perf_counter(), time.process_time()
            worker = asyncio.create_task(app.run_worker_async(
                concurrency=workers, install_signal_handlers=False))
            await _produce(total, noop.defer_async)
            submitted = time.perf_counter() - began
            await done.wait()
            worker.cancel()  # a graceful stop: the jobs running finish and are recorded
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
            succeeded = (await (await admin.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            )).fetchone())[0]
            events = (await (await admin.execute(
                "SELECT count(*) FROM procrastinate_events")).fetchone())[0]
    assert succeeded == total, (succeeded, total)
    return {"jobs_per_s": total / elapsed, "submits_per_s": total / submitted,
            "cpu_us_per_job": cpu / total * 1e6, "settings": settings,
            "version": metadata.version("procrastinate"), "psycopg": metadata.version("psycopg"),
            "events_per_job": events / total}


def main() -> None:
    peer, url, jobs, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    try:
        import uvloop
    except ImportError:
        loop_name = "asyncio"
    else:
        uvloop.install()
        loop_name = "uvloop"
    run = {"pgqueuer": pgqueuer_run, "procrastinate": procrastinate_run}[peer]
    result = asyncio.run(run(url, jobs, workers))
    print(json.dumps({**result, "loop": loop_name}))


if __name__ == "__main__":
    main()
