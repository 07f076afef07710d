"""PostgreSQL, for real (tests/postgres.py starts it): the migrations, `migrate` and `check`
from the command line, the tables taking the rows SQLite's take, and the job claim that
lets several nodes share one queue."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env
from postgres import SERVER_OPTIONS, start_cluster

from toombos_edge.errors import DatabaseUnavailable, SchemaTooNew
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store import apply_migrations as sqlite_migrations
from toombos_edge.store.postgres import jobs_sql
from toombos_edge.store.postgres import migrate as pg

#: The first test to use the server may install Debian's postgresql package first.
pytestmark = pytest.mark.timeout(900)

NOW = 1_780_000_000_000
LEASE = NOW + 60_000


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``toombos-edge ARGS`` as a process; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "toombos_edge", *args, env={**clean_env(), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def connected(url: str) -> Any:
    return await pg.connect(url)


def sqlite_columns() -> dict[str, list[str]]:
    """Each table SQLite's migrations make (FTS shadow tables aside), with its columns."""
    conn = sqlite3.connect(":memory:")
    sqlite_migrations(conn)
    tables = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'documents_fts%'")]
    return {t: [row[1] for row in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


async def test_migrations_make_sqlites_tables_and_run_once(postgres_url: str) -> None:
    first = await pg.migrate(postgres_url)
    assert (first.version, first.current) == (pg.latest(), True)
    assert first.applied == tuple(m.name for m in pg.migrations())
    conn = await connected(postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_version'")
    finally:
        await conn.close()
    columns: dict[str, set[str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], set()).add(row["column_name"])
    expected = {table: set(names) for table, names in sqlite_columns().items()}
    expected["documents"].add("search")  # the tsvector of the full-text index
    expected["job_counts"].add("slot")  # one counter row per writer (jobs_sql.claim)
    expected["job_hours"].add("slot")  # and one tally row per writer (job_write.py)
    # Originals and waiting uploads in the database, for nodes sharing no directory
    # (SQLite keeps them as files in the data dir).
    expected |= {"blobs": {"sha256", "size", "stored_at"},
                 "blob_chunks": {"sha256", "seq", "data"},
                 "uploads": {"name", "sha256", "size", "stored_at"},
                 "upload_chunks": {"name", "seq", "data"}}
    assert columns == expected

    again = await pg.migrate(postgres_url)
    assert (again.version, again.applied) == (first.version, ())
    assert await pg.inspect(postgres_url) == pg.SchemaState(first.version, pg.latest())


async def test_two_nodes_migrating_at_once_apply_the_schema_once(postgres_url: str) -> None:
    states = await asyncio.gather(pg.migrate(postgres_url), pg.migrate(postgres_url))
    assert sorted(len(s.applied) for s in states) == [0, len(pg.migrations())]
    assert {s.version for s in states} == {pg.latest()}
    conn = await connected(postgres_url)
    try:
        applied = await conn.fetch("SELECT version, name FROM schema_version ORDER BY version")
    finally:
        await conn.close()
    assert [(r["version"], r["name"]) for r in applied] == [
        (m.number, m.name) for m in pg.migrations()]


async def test_a_newer_schema_is_refused(postgres_url: str, tmp_path: Path) -> None:
    await pg.migrate(postgres_url)
    newer = pg.latest() + 1
    conn = await connected(postgres_url)
    try:
        await conn.execute("INSERT INTO schema_version VALUES ($1, '9999_future.sql', 0)", newer)
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew, match=f"version {newer} is newer than this server knows"):
        await pg.migrate(postgres_url)
    with pytest.raises(SchemaTooNew):
        await pg.inspect(postgres_url)
    for command in ("migrate", "check"):
        status, _out, err = await cli(command, "--database-url", postgres_url)
        assert status == 1 and f"schema version {newer} is newer" in err, err
    status, out, err = await cli("serve", "--database-url", postgres_url, "--port", "0",
                                 "--data-dir", str(tmp_path / "data"))
    assert status == 1 and f"schema version {newer} is newer" in out + err, out + err


async def test_check_and_migrate_from_the_command_line(postgres_url: str) -> None:
    env = {"TOOMBOS_DATABASE_URL": postgres_url}
    status, out, err = await cli("check", env=env)
    assert status == 1, out + err
    assert f"at schema version 0 of {pg.latest()}: run `toombos-edge migrate`" in err

    status, out, err = await cli("migrate", "--database-url", postgres_url)
    assert status == 0, err
    assert f"schema version {pg.latest()} (applied {pg.migrations()[0].name}" in out

    status, out, err = await cli("check", env=env)
    assert status == 0, err
    assert f"is at schema version {pg.latest()} (current)" in out
    status, out, err = await cli("migrate", env=env)
    assert (status, "applied" in out) == (0, False), out + err


async def test_an_unreachable_database_is_a_clear_error_without_its_password() -> None:
    url = "postgresql://edge:hunter2@/edge?host=/nonexistent-socket-dir"
    with pytest.raises(DatabaseUnavailable, match="cannot connect to"):
        await pg.migrate(url)
    status, out, err = await cli("migrate", "--database-url", url)
    assert status == 1 and "toombos-edge: cannot connect to postgresql://edge:***@" in err
    assert "hunter2" not in out + err


async def test_backups_refuse_the_url_and_keys_are_managed_in_postgres(
    postgres_url: str,
) -> None:
    """backup and restore copy the SQLite file: with a URL set they would copy the wrong
    data. Keys, like every other command, work on the database named."""
    for args in (("backup", "/tmp/nowhere"), ("restore", "/tmp/nowhere")):
        status, _out, err = await cli(*args, env={"TOOMBOS_DATABASE_URL": "postgresql://x@/y"})
        assert status == 2, err
        assert "Back up PostgreSQL with its own tools (pg_dump" in err
    env = {"TOOMBOS_DATABASE_URL": postgres_url}
    status, out, err = await cli("keys", "create", "--name", "ci", "--role", "operator", env=env)
    assert status == 0 and out.startswith("tbe_"), err
    status, out, err = await cli("keys", "list", env=env)
    assert status == 0 and "\toperator\tactive\tci" in out, err
    conn = await connected(postgres_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_keys WHERE name = 'ci'") == 1
    finally:
        await conn.close()
    status, _out, err = await cli("check", "--database-url", "mysql://x/y")
    assert status == 2 and "expected empty or a postgresql:// URL" in err


def job(ident: str, *, priority: int = 0, urgent: bool = False, **fields: Any) -> Job:
    return Job(id=ident, kind="generate", status=JobStatus.pending, created_at=NOW,
               updated_at=NOW, priority=priority, urgent=urgent, **fields)


async def test_a_job_row_keeps_its_json_and_a_document_is_found_by_its_words(
    postgres_url: str,
) -> None:
    await pg.migrate(postgres_url)
    stored = job("job_1", channels=["email", "blog"], params={"topic": "ö", "n": [1, 2.5]},
                 metadata={"by": {"team": "x"}}, idempotency_key="k1", correlation_id="c1")
    conn = await connected(postgres_url)
    try:
        await jobs_sql.insert(conn, [(stored, NOW)], slot=0)
        row = await conn.fetchrow(f"SELECT {jobs_sql.COLUMNS} FROM jobs WHERE id = 'job_1'")
        assert jobs_sql.row_to_job(row) == stored
        assert await conn.fetchval("SELECT params -> 'n' ->> 1 FROM jobs") == "2.5"  # jsonb
        with pytest.raises(Exception, match="jobs_idempotency"):
            await jobs_sql.insert(conn, [(job("job_2", idempotency_key="k1"), NOW)], slot=0)
        await conn.execute(
            "INSERT INTO documents (id, title, body, format, sha256, size, source, created_at, "
            "updated_at) VALUES ('doc_1', 'Harbour notes', 'Ferries leave at dawn', 'text', "
            "'00', 21, 'api', $1, $1)", NOW)
        found = await conn.fetch("SELECT id FROM documents WHERE search @@ "
                                 "plainto_tsquery('simple', 'FERRIES harbour')")
        missing = await conn.fetch("SELECT id FROM documents WHERE search @@ "
                                   "plainto_tsquery('simple', 'trains')")
    finally:
        await conn.close()
    assert ([r["id"] for r in found], missing) == (["doc_1"], [])


async def test_concurrent_claims_take_different_jobs_in_queue_order(postgres_url: str) -> None:
    """Two nodes' claims at once: neither waits for the other, no job is taken twice, each
    takes the head of what the other does not hold; counts stay exact."""
    await pg.migrate(postgres_url)
    a, b = await connected(postgres_url), await connected(postgres_url)
    try:
        jobs = [job(f"job_{i:02}", priority=i % 3) for i in range(10)]
        jobs.append(job("job_urgent", urgent=True))
        later = job("job_later", priority=9)
        await jobs_sql.insert(a, [(j, NOW) for j in jobs] + [(later, NOW + 5_000)], slot=0)
        queue = sorted(jobs, key=lambda j: (not j.urgent, -j.priority, j.id))

        async with a.transaction(), b.transaction():
            first = await jobs_sql.claim(a, NOW, 3, LEASE, slot=1)
            # While a's claim is not committed, b's must neither wait for it nor see its jobs.
            second = await asyncio.wait_for(jobs_sql.claim(b, NOW, 3, LEASE, slot=2), 10)
        assert [j.id for j in first] == [j.id for j in queue[:3]]
        assert [j.id for j in second] == [j.id for j in queue[3:6]]
        assert all(j.status is JobStatus.in_progress and j.attempts == 1
                   and j.lease_until == LEASE and j.started_at == NOW for j in first + second)

        rest = await jobs_sql.claim(a, NOW, 100, LEASE, slot=1)
        assert [j.id for j in rest] == [j.id for j in queue[6:]]  # not job_later: not due yet
        assert await jobs_sql.claim(b, NOW + 4_999, 100, LEASE, slot=2) == []
        due = await jobs_sql.claim(b, NOW + 5_000, 100, LEASE, slot=2)
        assert [j.id for j in due] == ["job_later"]
        assert await jobs_sql.counts(a) == {("generate", "in_progress"): 12}
        slots = await a.fetchval("SELECT count(DISTINCT slot) FROM job_counts")
        assert slots == 3
    finally:
        await a.close()
        await b.close()


def test_a_server_that_cannot_start_fails_with_its_log_and_leaves_nothing() -> None:
    # A folder of its own (readable by the postgres user), so that other clusters coming
    # and going in the system's temporary folder meanwhile do not count.
    parent = Path(tempfile.mkdtemp(prefix="toombos-pg-test-"))
    try:
        parent.chmod(0o755)
        with pytest.raises(AssertionError, match="no_such_setting"):
            start_cluster(SERVER_OPTIONS + " -c no_such_setting=1", parent=parent)
        assert list(parent.iterdir()) == []
    finally:
        shutil.rmtree(parent, ignore_errors=True)
