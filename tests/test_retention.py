"""Retention prunes exactly what its settings say, in small batches, and nothing else."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest
from conftest import ClientFactory, auth, finished

from toombos_edge.appkeys import DATABASE, RETENTION
from toombos_edge.documents.blobs import BlobStore
from toombos_edge.documents.service import DocumentService
from toombos_edge.documents.uploads import UploadFolder
from toombos_edge.events import EventBus
from toombos_edge.ids import new_id, now_ms
from toombos_edge.records.content import new_item
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.retention import DAY_MS, Policy, Retention
from toombos_edge.store import Database
from toombos_edge.store.sqlite import jobs as store
from toombos_edge.store.sqlite.content import SqliteContentStore
from toombos_edge.store.sqlite.documents import SqliteDocumentStore
from toombos_edge.store.sqlite.retention import SqliteRetentionStore

pytestmark = pytest.mark.backends

# "Now" for retention is 200 days ahead of the wall clock: the jobs made below, created
# now, are then as old as each test needs (their ids hold their real creation time).
NOW = now_ms() + 200 * DAY_MS


def exact_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """The counters per kind and status, checked against a count of the table itself."""
    counted = dict(conn.execute("SELECT kind || '/' || status, n FROM job_counts WHERE n <> 0"))
    real = dict(conn.execute(
        "SELECT kind || '/' || status, count(*) FROM jobs GROUP BY kind, status"))
    assert counted == real
    return counted


async def add_job(db: Database, status: str, ended_days_ago: float | None, kind: str = "noop",
                  params: dict[str, object] | None = None) -> str:
    created = now_ms()
    job = Job(new_id("job"), kind, JobStatus(status), created, created, params=params or {})
    ended = None if ended_days_ago is None else NOW - int(ended_days_ago * DAY_MS)

    def put(conn: sqlite3.Connection) -> None:
        store.insert(conn, [(job, created)])
        conn.execute("UPDATE jobs SET completed_at = ? WHERE id = ?", (ended, job.id))

    await db.write(put)
    return job.id


async def job_ids(db: Database) -> set[str]:
    return {row[0] for row in await db.read(lambda c: c.execute("SELECT id FROM jobs").fetchall())}


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_jobs_go_by_age_and_status_only(db: Database) -> None:
    keep = {
        await add_job(db, "completed", 10),  # finished, but not for long enough
        await add_job(db, "completed", 1),
        await add_job(db, "failed", 40),  # dead jobs are kept 90 days
        await add_job(db, "pending", None),  # not finished, however old
        await add_job(db, "in_progress", None),
    }
    gone = {await add_job(db, status, 31, kind)
            for status in ("completed", "partial", "cancelled") for kind in ("noop", "boom")}
    gone |= {await add_job(db, "failed", 91), await add_job(db, "failed", 150, "boom")}
    gone |= {await add_job(db, "completed", 45) for _ in range(7)}  # several batches of 2
    retention = Retention(SqliteRetentionStore(db), None,
                          Policy(finished_days=30, dead_days=90, dead_max=0),
                          clock=lambda: NOW, batch=2)

    commits = db.commits
    counts = await retention.run_once()

    assert await job_ids(db) == keep
    assert counts["finished_jobs"] == len(gone) - 2 and counts["dead_jobs"] == 2
    assert db.commits - commits >= len(gone) // 2  # at most 2 rows per transaction
    assert await db.read(exact_counts) == {
        "noop/completed": 2, "noop/failed": 1, "noop/pending": 1, "noop/in_progress": 1}


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_the_dead_set_is_capped_oldest_first(db: Database) -> None:
    dead = [await add_job(db, "failed", 1, kind) for kind in ("a", "b", "a", "b", "a")]
    others = {await add_job(db, "completed", 1), await add_job(db, "cancelled", 1)}
    retention = Retention(SqliteRetentionStore(db), None,
                          Policy(finished_days=0, dead_days=0, dead_max=3),
                          clock=lambda: NOW, batch=500)

    assert (await retention.run_once())["dead_over_cap"] == 2
    assert await job_ids(db) == set(dead[2:]) | others
    assert await db.read(exact_counts) == {
        "a/failed": 2, "b/failed": 1, "noop/completed": 1, "noop/cancelled": 1}
    assert (await retention.run_once())["dead_over_cap"] == 0


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_nothing_goes_when_every_setting_keeps_everything(db: Database) -> None:
    ids = {await add_job(db, status, 1000) for status in ("completed", "failed", "cancelled")}
    content = SqliteContentStore(db)
    item = await content.add(new_item("email", {"subject": "v1"}, job_id=None, document_id=None,
                                      style="s", tone="t", content_type="c"))
    for n in range(2, 6):
        await content.update(item.id, {"subject": f"v{n}"})
    policy = Policy(finished_days=0, dead_days=0, dead_max=0, content_versions=0,
                    content_version_days=0)
    retention = Retention(SqliteRetentionStore(db), None, policy, clock=lambda: NOW)
    counts = await retention.run_once()
    assert await job_ids(db) == ids
    assert len(await content.versions(item.id)) == 5
    assert counts["content_versions"] == 0


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_content_versions_beyond_n_or_older_than_x_go(db: Database) -> None:
    content = SqliteContentStore(db)
    items = []
    for name in ("a", "b"):
        item = await content.add(new_item("email", {"subject": f"{name}1"}, job_id=None,
                                          document_id=None, style="s", tone="t",
                                          content_type="c"))
        for n in range(2, 7):  # versions 1-5 kept as earlier versions, 6 current
            await content.update(item.id, {"subject": f"{name}{n}"})
        items.append(item.id)
    # Item b's version 5 was replaced long ago (as if its clock had been set back).
    await db.write(lambda c: c.execute(
        "UPDATE content_versions SET replaced_at = ? WHERE content_id = ? AND version = 5",
        (now_ms() - 40 * DAY_MS, items[1])))
    retention = Retention(SqliteRetentionStore(db), None,
                          Policy(finished_days=0, dead_days=0, dead_max=0,
                                 content_versions=3, content_version_days=30))

    assert (await retention.run_once())["content_versions"] == 2 + 3

    def remaining(content_id: str) -> list[int]:
        return [v.version for v in content_versions[content_id]]

    content_versions = {cid: await content.versions(cid) for cid in items}
    assert remaining(items[0]) == [6, 5, 4, 3]  # current + the 3 newest earlier ones
    assert remaining(items[1]) == [6, 4, 3]  # and 5 was older than 30 days


def _blob(blobs: BlobStore, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    path = blobs.path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha


@pytest.fixture
def documents(db: Database, tmp_path: Path) -> DocumentService:
    return DocumentService(SqliteDocumentStore(db), EventBus(), BlobStore(tmp_path / "blobs"),
                           UploadFolder(tmp_path / "uploads"))


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_unused_blobs_are_swept_after_the_grace_period(
    db: Database, documents: DocumentService
) -> None:
    blobs = documents.blobs
    used = _blob(blobs, b"a document's original")
    awaited = _blob(blobs, b"an upload an ingest job moved in, then was stopped")
    orphan = _blob(blobs, b"left by a crash between the move and the commit")
    doc = await documents.create(title="t", text="x", fmt="text", metadata={})
    await db.write(lambda c: c.execute(
        "UPDATE documents SET blob_sha256 = ? WHERE id = ?", (used, doc.id)))
    await add_job(db, "pending", None, "ingest", {"upload": {"sha256": awaited}})
    policy = Policy(0, 0, 0, 0, 0)

    pruning = SqliteRetentionStore(db)
    young = Retention(pruning, documents, policy, clock=lambda: NOW)  # default grace: an hour
    assert (await young.run_once())["blobs"] == 0
    assert all(blobs.exists(sha) for sha in (used, awaited, orphan))

    settled = Retention(pruning, documents, policy, clock=lambda: NOW, blob_grace=-60)
    assert (await settled.run_once())["blobs"] == 1
    assert [blobs.exists(sha) for sha in (used, awaited, orphan)] == [True, True, False]


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_freed_pages_go_back_to_the_file_system(db: Database) -> None:
    for _ in range(3):
        await add_job(db, "completed", 100, params={"padding": "x" * 20_000})
    pages_before = await db.read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    retention = Retention(SqliteRetentionStore(db), None, Policy(30, 0, 0, 0, 0),
                          clock=lambda: NOW)

    counts = await retention.run_once()

    def pages(conn: sqlite3.Connection) -> tuple[int, int, int]:
        return (conn.execute("PRAGMA auto_vacuum").fetchone()[0],
                conn.execute("PRAGMA page_count").fetchone()[0],
                conn.execute("PRAGMA freelist_count").fetchone()[0])

    auto_vacuum, pages_after, free = await db.read(pages)
    assert counts["finished_jobs"] == 3 and counts["vacuumed_pages"] >= 15
    assert auto_vacuum == 2 and free == 0
    assert pages_after <= pages_before - 15


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_an_existing_file_is_switched_to_incremental_vacuum_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a file made before: auto_vacuum off
        conn.execute("CREATE TABLE t (x)")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    db = Database(path)
    await db.open()
    try:
        assert await db.read(lambda c: c.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    finally:
        await db.close()


@pytest.mark.sqlite_only  # reads the SQLite file itself
async def test_the_server_runs_retention_on_its_interval(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(retention_interval=1, retain_finished_days=0.00001)
    response = await client.post("/api/ingest", headers=auth(
        (tmp_path / "data" / "admin.key").read_text().strip()), json={"text": "short-lived"})
    job = await finished(client, (await response.json())["job_id"])
    retention = client.app[RETENTION]
    async with asyncio.timeout(30):
        while retention.removed.get("finished_jobs", 0) < 1:
            retention.ran.clear()
            await retention.ran.wait()
    assert await job_ids(client.app[DATABASE]) == set() and job["status"] == "completed"
