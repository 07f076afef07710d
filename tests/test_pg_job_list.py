"""The jobs list's ``q`` on PostgreSQL, whatever collation the database was created with.

``q`` is a prefix of a job's id, document id or correlation id. A user searching a million
jobs must get an answer as fast as on SQLite, so PostgreSQL must answer it from the
columns' indexes (a range, as SQLite does), not by reading every job; and it must find
exactly the jobs whose value starts with ``q``, character for character, also on a
database whose collation does not sort by bytes (here ICU's en-US, where case and
punctuation sort otherwise).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from toombos_edge.ids import new_id, now_ms
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store.jobs import JobFilter
from toombos_edge.store.postgres import job_query
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.jobs import PgJobStore
from toombos_edge.store.postgres.jobs_sql import COLUMNS

NOW = now_ms()


def new(**fields: object) -> Job:
    return Job(new_id("job"), "noop", JobStatus.pending, NOW, NOW, **fields)  # type: ignore[arg-type]


@pytest.fixture
async def en_us_database(postgres_cluster: object) -> AsyncIterator[PgDatabase]:
    """A migrated database created with ICU's en-US collation (not byte order)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_cluster.url())  # type: ignore[attr-defined]
    try:
        await admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 "
                            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
        database = PgDatabase(postgres_cluster.url(name))  # type: ignore[attr-defined]
        await database.open()
        try:
            yield database
        finally:
            await database.close()
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_q_finds_exactly_the_jobs_starting_with_it_in_any_collation(
        en_us_database: PgDatabase) -> None:
    store = PgJobStore(en_us_database)
    correlations = ["order-1", "Order-2", "order_3", "orderZ", "order-", "ordeR-4",
                    "order-\u00e9", "order\u00e9"]
    jobs = [new(correlation_id=value) for value in correlations]
    jobs += [new(document_id="doc_Ab"), new(document_id="doc_ab"), new(document_id="doc_a")]
    await store.insert([(job, NOW) for job in jobs])
    for q in ["order-", "order", "Order", "orde", "order-\u00e9", "doc_a", "doc_A",
              "doc_ab", jobs[3].id, jobs[3].id[:-3], "ORDER", "zzz"]:
        page = await store.page(JobFilter(q=q), 50)
        expected = {job.id for job in jobs if any(
            value is not None and value.startswith(q)
            for value in (job.id, job.document_id, job.correlation_id))}
        assert {job.id for job in page.jobs} == expected, q
        assert page.total == len(expected), q


def _scans_without_an_index_condition(node: dict[str, Any]) -> list[str]:
    """The plan's scans of ``jobs`` that read rows without an index bounding them."""
    found = []
    if node.get("Relation Name") == "jobs" and not (
            "Index Cond" in node or "Recheck Cond" in node):
        found.append(f"{node['Node Type']} {node.get('Index Name', '')}".strip())
    for child in node.get("Plans", []):
        found += _scans_without_an_index_condition(child)
    return found


async def test_q_is_answered_from_the_indexes_not_by_reading_every_job(
        en_us_database: PgDatabase) -> None:
    store = PgJobStore(en_us_database)
    jobs = [new(correlation_id=f"c-{n}", document_id=f"doc_{n}") for n in range(2000)]
    await store.insert([(job, NOW) for job in jobs])
    conn = await asyncpg.connect(en_us_database.url)
    try:
        await conn.execute("ANALYZE jobs")
        for q in ["c-1999", "doc_1999", jobs[7].id]:
            sql, params = job_query._page_sql(JobFilter(q=q), COLUMNS, 100, 0, None)
            plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *params))
            assert _scans_without_an_index_condition(plan[0]["Plan"]) == [], (q, plan)
    finally:
        await conn.close()
