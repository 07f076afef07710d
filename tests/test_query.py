"""Every filter the job list offers is answered from an index, never a table scan."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from toombos_edge.ids import now_ms
from toombos_edge.store import apply_migrations
from toombos_edge.store.jobs import JobFilter
from toombos_edge.store.sqlite.job_query import count_sql, page_sql

NOW = now_ms()
FILTERS = {
    "none": JobFilter(),
    "status": JobFilter(statuses=("failed",)),
    "statuses": JobFilter(statuses=("failed", "pending", "cancelled")),
    "kind": JobFilter(kind="generate"),
    "q": JobFilter(q="doc_01"),
    "from/to": JobFilter(since=NOW - 3_600_000, until=NOW),
    "status+kind": JobFilter(statuses=("completed",), kind="ingest"),
    "statuses+from": JobFilter(statuses=("completed", "failed"), since=NOW - 60_000),
    "status+q": JobFilter(statuses=("failed",), q="job_01"),
}


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    path: Path = tmp_path_factory.mktemp("plan") / "edge.db"
    connection = sqlite3.connect(path, isolation_level=None)
    apply_migrations(connection)
    connection.execute("ANALYZE")
    return connection


def plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def assert_indexed(steps: list[str]) -> None:
    for step in steps:
        if step.startswith(("SCAN", "SEARCH")) and " jobs" in step:
            assert "INDEX" in step or "PRIMARY KEY" in step, steps


@pytest.mark.parametrize("name", FILTERS)
def test_each_list_filter_uses_an_index(conn: sqlite3.Connection, name: str) -> None:
    flt = FILTERS[name]
    assert_indexed(plan(conn, *page_sql(flt, 100)))
    assert_indexed(plan(conn, *page_sql(flt, 100, before="job_01m806hgbq74e089kqp6d2ndms")))
    assert_indexed(plan(conn, *count_sql(flt)))


def test_a_single_filter_never_sorts(conn: sqlite3.Connection) -> None:
    for name in ("none", "status", "from/to", "status+kind"):
        steps = plan(conn, *page_sql(FILTERS[name], 100))
        assert not any("TEMP B-TREE" in step for step in steps), (name, steps)
